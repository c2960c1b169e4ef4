package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/apply"
)

// TestMapModes pins the patch and replace semantics of the TypeScript
// adapters (their shared test cases), key filters included.
func TestMapModes(t *testing.T) {
	dropMeta := func(data json.RawMessage, _ *apply.Map[any]) (any, error) {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		delete(m, "meta")
		return m, nil
	}
	tests := []struct {
		name    string // cites the B-ids
		opts    apply.MapOptions[any]
		initial string
		steps   []string
		want    string
	}{
		{"B-ADAPT-07 patch sets present keys", apply.MapOptions[any]{}, `{"a":1,"b":2}`, []string{`{"a":10}`}, `{"a":10,"b":2}`},
		{"B-ADAPT-07 patch adds new keys", apply.MapOptions[any]{}, `{"a":1,"b":2}`, []string{`{"c":3}`}, `{"a":1,"b":2,"c":3}`},
		{"B-ADAPT-07 B-ADAPT-06 patch pickKeys", apply.MapOptions[any]{PickKeys: []string{"a"}}, `{"a":1,"b":2}`, []string{`{"a":10,"b":999}`}, `{"a":10,"b":2}`},
		{"B-ADAPT-07 B-ADAPT-06 patch omitKeys", apply.MapOptions[any]{OmitKeys: []string{"b"}}, `{"a":1,"b":2}`, []string{`{"a":10,"b":999}`}, `{"a":10,"b":2}`},
		{"B-ADAPT-08 patch is shallow", apply.MapOptions[any]{}, `{"config":{"theme":"dark","lang":"en"},"count":0}`, []string{`{"config":{"theme":"light"}}`}, `{"config":{"theme":"light"},"count":0}`},
		{"B-ADAPT-09 empty patch", apply.MapOptions[any]{}, `{"a":1,"b":2}`, []string{`{}`}, `{"a":1,"b":2}`},
		{"B-ADAPT-10 patches accumulate", apply.MapOptions[any]{}, `{}`, []string{`{"a":10}`, `{"b":20}`, `{"a":100}`}, `{"a":100,"b":20}`},
		{"B-ADAPT-07 patch sets null", apply.MapOptions[any]{}, `{"a":1,"b":2}`, []string{`{"a":null}`}, `{"a":null,"b":2}`},
		{"B-ADAPT-11 replace removes absent keys", apply.MapOptions[any]{Mode: apply.Replace}, `{"a":1,"b":2}`, []string{`{"a":123}`}, `{"a":123}`},
		{"B-ADAPT-11 replace with a zero value", apply.MapOptions[any]{Mode: apply.Replace}, `{"a":1,"b":2}`, []string{`{"a":0}`}, `{"a":0}`},
		{"B-ADAPT-11 replace: allowed removed, disallowed kept", apply.MapOptions[any]{Mode: apply.Replace, PickKeys: []string{"a", "c"}}, `{"a":1,"b":2,"c":3}`, []string{`{"a":5,"b":7}`}, `{"a":5,"b":2}`},
		{"B-ADAPT-12 replace omitKeys", apply.MapOptions[any]{Mode: apply.Replace, OmitKeys: []string{"b"}}, `{"a":1,"b":2}`, []string{`{"a":10}`}, `{"a":10,"b":2}`},
		{"B-ADAPT-12 replace pickKeys", apply.MapOptions[any]{Mode: apply.Replace, PickKeys: []string{"a"}}, `{"a":1,"b":2}`, []string{`{"a":100}`}, `{"a":100,"b":2}`},
		{"B-ADAPT-13 empty replace empties", apply.MapOptions[any]{Mode: apply.Replace}, `{"a":1,"b":2}`, []string{`{}`}, `{}`},
		{"B-ADAPT-15 B-ADAPT-03 toState mapping, patch", apply.MapOptions[any]{ToState: dropMeta}, `{"a":1,"b":2}`, []string{`{"a":7,"meta":"x"}`}, `{"a":7,"b":2}`},
		{"B-ADAPT-15 toState mapping, replace", apply.MapOptions[any]{Mode: apply.Replace, ToState: dropMeta}, `{"a":1,"b":2}`, []string{`{"a":7,"meta":"x"}`}, `{"a":7}`},
		{"B-ADAPT-06 filter acts on the mapped result", apply.MapOptions[any]{
			PickKeys: []string{"total"},
			ToState: func(data json.RawMessage, _ *apply.Map[any]) (any, error) {
				var xs []float64
				if err := json.Unmarshal(data, &xs); err != nil {
					return nil, err
				}
				sum := 0.0
				for _, x := range xs {
					sum += x
				}
				return map[string]any{"total": sum, "count": len(xs)}, nil
			},
		}, `{"a":1}`, []string{`[1,2,3]`}, `{"a":1,"total":6}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Initial = obj(t, tt.initial)
			m, err := apply.NewMap(&opts)
			if err != nil {
				t.Fatalf("NewMap: %v", err)
			}
			applyAll(t, m, tt.steps...)
			if got, want := m.Load(), obj(t, tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("Load() = %v; want %v", got, want)
			}
			if got, want := m.Revision(), statesync.Revision(len(tt.steps)); got != want {
				t.Errorf("Revision() = %d; want %d", got, want)
			}
		})
	}
}

// TestMapDefaults pins the defaults: patch, strict, identity mapping, no
// filter (B-DEF-12, B-ADAPT-02).
func TestMapDefaults(t *testing.T) {
	m, err := apply.NewMap[any](nil)
	if err != nil {
		t.Fatalf("NewMap(nil) = %v; want nil", err)
	}
	if got := m.Load(); got == nil || len(got) != 0 {
		t.Errorf("Load() before any apply = %v; want an empty map", got)
	}
	applyAll(t, m, `{"a":1,"b":{"c":2}}`, `{"z":true}`) // identity, every key, patch
	if got, want := m.Load(), obj(t, `{"a":1,"b":{"c":2},"z":true}`); !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %v; want %v", got, want)
	}
	err = m.Apply(context.Background(), snap(3, `[1]`)) // strict
	if !errors.Is(err, apply.ErrNotObject) {
		t.Errorf("Apply([1]) = %v; want ErrNotObject", err)
	}
	if got, want := apply.Mode(0), apply.Patch; got != want {
		t.Errorf("Mode(0) = %v; want %v", got, want)
	}
}

// TestMapNotObject pins strict and lenient handling of data, or ToState
// results, that are not JSON objects (B-ADAPT-03, B-ADAPT-04, B-ADAPT-05).
func TestMapNotObject(t *testing.T) {
	for _, data := range []string{`"str"`, `[1,2,3]`, `null`, `42`, `true`, ``} {
		for _, viaToState := range []bool{false, true} {
			for _, lenient := range []bool{false, true} {
				name := fmt.Sprintf("%s/toState=%v/lenient=%v", data, viaToState, lenient)
				t.Run(name, func(t *testing.T) {
					opts := &apply.MapOptions[any]{Initial: map[string]any{"a": 1.0}, Lenient: lenient}
					input := data
					if viaToState {
						// the data is an object; the mapping makes it something else
						input = `{"x":1}`
						opts.ToState = func(json.RawMessage, *apply.Map[any]) (any, error) {
							return json.RawMessage(data), nil
						}
					}
					m, err := apply.NewMap(opts)
					if err != nil {
						t.Fatal(err)
					}
					var changes int
					m.OnChange(func(_, _ map[string]any) { changes++ })
					err = m.Apply(context.Background(), snap(5, input))
					if lenient {
						if err != nil {
							t.Errorf("Apply(%s) = %v; want nil (ignored)", input, err) // B-ADAPT-05
						}
					} else if !errors.Is(err, apply.ErrNotObject) {
						t.Errorf("Apply(%s) = %v; want ErrNotObject", input, err) // B-ADAPT-04
					}
					if got, want := m.Load(), map[string]any{"a": 1.0}; !reflect.DeepEqual(got, want) {
						t.Errorf("Load() = %v; want %v (unchanged)", got, want)
					}
					if got := m.Revision(); got != 0 {
						t.Errorf("Revision() = %d; want 0 (unchanged)", got)
					}
					if changes != 0 {
						t.Errorf("OnChange calls = %d; want 0", changes)
					}
				})
			}
		}
	}
}

// TestMapToStateResults pins the results ToState may return: anything that
// encodes to a JSON object; Go nil and non-object values are not objects
// (B-ADAPT-03, B-ADAPT-27).
func TestMapToStateResults(t *testing.T) {
	type pair struct {
		A int `json:"a"`
		B int `json:"b"`
	}
	tests := []struct {
		res         any
		want        map[string]any
		notAnObject bool
	}{
		{map[string]any{"a": 1}, map[string]any{"a": 1.0}, false},
		{map[string]json.RawMessage{"a": json.RawMessage(`1`)}, map[string]any{"a": 1.0}, false},
		{json.RawMessage(`{"a":1}`), map[string]any{"a": 1.0}, false},
		{[]byte(`{"a":1}`), map[string]any{"a": 1.0}, false},
		{pair{A: 1, B: 2}, map[string]any{"a": 1.0, "b": 2.0}, false},
		{&pair{A: 3}, map[string]any{"a": 3.0, "b": 0.0}, false},
		{nil, nil, true},
		{map[string]any(nil), nil, true}, // encodes to null
		{"str", nil, true},
		{[]int{1, 2, 3}, nil, true},
		{7, nil, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%T", tt.res), func(t *testing.T) {
			m, err := apply.NewMap(&apply.MapOptions[any]{
				Mode:    apply.Replace,
				ToState: func(json.RawMessage, *apply.Map[any]) (any, error) { return tt.res, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			err = m.Apply(context.Background(), snap(1, `{}`))
			if tt.notAnObject {
				if !errors.Is(err, apply.ErrNotObject) {
					t.Errorf("Apply with ToState result %#v = %v; want ErrNotObject", tt.res, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply with ToState result %#v = %v; want nil", tt.res, err)
			}
			if got := m.Load(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load() = %v; want %v", got, tt.want)
			}
		})
	}
}

// TestMapToStateError pins that an error from ToState is returned as is and
// changes nothing (B-ADAPT-27).
func TestMapToStateError(t *testing.T) {
	boom := errors.New("boom")
	m, _ := apply.NewMap(&apply.MapOptions[any]{
		Initial: map[string]any{"a": 1.0},
		ToState: func(json.RawMessage, *apply.Map[any]) (any, error) { return nil, boom },
	})
	if err := m.Apply(context.Background(), snap(1, `{"a":2}`)); err != boom {
		t.Errorf("Apply = %v; want the ToState error itself", err)
	}
	if got, want := m.Load(), map[string]any{"a": 1.0}; !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %v; want %v", got, want)
	}
}

// TestMapToStateTarget pins that ToState receives the container it was
// given to, in both modes, and that the container stays the same across
// applies, an empty replace included (B-ADAPT-14, B-ADAPT-20, B-ADAPT-22).
func TestMapToStateTarget(t *testing.T) {
	for _, mode := range []apply.Mode{apply.Patch, apply.Replace} {
		t.Run(mode.String(), func(t *testing.T) {
			var targets []*apply.Map[any]
			var seen []map[string]any
			m, err := apply.NewMap(&apply.MapOptions[any]{
				Mode:    mode,
				Initial: map[string]any{"a": 1.0},
				ToState: func(data json.RawMessage, target *apply.Map[any]) (any, error) {
					targets = append(targets, target)
					seen = append(seen, target.Load()) // the state before this apply
					return data, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			applyAll(t, m, `{"a":2}`, `{}`, `{"b":3}`)
			for i, got := range targets {
				if got != m {
					t.Errorf("ToState call %d: target = %p; want the Map %p", i, got, m)
				}
			}
			if len(targets) != 3 {
				t.Errorf("ToState calls = %d; want 3", len(targets))
			}
			want := []map[string]any{{"a": 1.0}, {"a": 2.0}, {"a": 2.0}}
			if mode == apply.Replace {
				want[2] = map[string]any{}
			}
			if !reflect.DeepEqual(seen, want) {
				t.Errorf("states seen by ToState = %v; want %v", seen, want)
			}
		})
	}
}

// TestMapNewStateEachApply pins copy-on-write: every apply, an empty patch
// included, publishes a new map, and a map handed out earlier never changes
// (B-ADAPT-24, B-ADAPT-21, B-ADAPT-22 ref).
func TestMapNewStateEachApply(t *testing.T) {
	m, _ := apply.NewMap(&apply.MapOptions[any]{Initial: map[string]any{"a": 1.0}})
	m0 := m.Load()
	applyAll(t, m, `{"a":2}`)
	m1 := m.Load()
	if err := m.Apply(context.Background(), snap(2, `{}`)); err != nil {
		t.Fatal(err)
	}
	m2 := m.Load()
	if err := m.Apply(context.Background(), snap(3, `{"b":{"c":1}}`)); err != nil {
		t.Fatal(err)
	}
	m3 := m.Load()
	ptrs := map[uintptr]int{}
	for i, mm := range []map[string]any{m0, m1, m2, m3} {
		p := reflect.ValueOf(mm).Pointer()
		if j, ok := ptrs[p]; ok {
			t.Errorf("Load() after apply %d is the same map as after apply %d; want a new one each time", i, j)
		}
		ptrs[p] = i
	}
	if want := map[string]any{"a": 1.0}; !reflect.DeepEqual(m0, want) {
		t.Errorf("map loaded before the applies = %v; want it unchanged %v", m0, want)
	}
	if want := map[string]any{"a": 2.0}; !reflect.DeepEqual(m1, want) || !reflect.DeepEqual(m2, want) {
		t.Errorf("maps loaded at revisions 1, 2 = %v, %v; want both unchanged %v", m1, m2, want)
	}
	if v, ok := m.Get("b"); !ok || !reflect.DeepEqual(v, map[string]any{"c": 1.0}) {
		t.Errorf("Get(%q) = %v, %v; want map[c:1], true", "b", v, ok)
	}
	if _, ok := m.Get("zz"); ok {
		t.Errorf("Get(%q) found a value; want none", "zz")
	}
}

// TestMapInitialCopied pins that the Initial map is copied, not adopted
// (B-ADAPT-28).
func TestMapInitialCopied(t *testing.T) {
	init := map[string]any{"a": 1.0}
	m, _ := apply.NewMap(&apply.MapOptions[any]{Initial: init})
	init["a"] = 99.0
	if got, _ := m.Get("a"); got != 1.0 {
		t.Errorf("Get(%q) = %v; want 1 (Initial copied)", "a", got)
	}
}

// TestMapNoAliasing pins that applied values never share memory with the
// snapshot data nor with another container applying the same snapshot
// (B-ADAPT-28).
func TestMapNoAliasing(t *testing.T) {
	data := []byte(`{"raw":{"x":1},"obj":{"y":2}}`)
	raw, _ := apply.NewMap[json.RawMessage](nil)
	a, _ := apply.NewMap[any](nil)
	b, _ := apply.NewMap[any](nil)
	s := statesync.Snapshot{Revision: 1, Data: data}
	for _, ap := range []statesync.Applier{raw, a, b} {
		if err := ap.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	for i := range data {
		data[i] = ' ' // the provider reuses its buffer
	}
	if got, _ := raw.Get("raw"); string(got) != `{"x":1}` {
		t.Errorf("Get(%q) after the snapshot bytes changed = %s; want {\"x\":1}", "raw", got)
	}
	objA, _ := a.Get("obj")
	objA.(map[string]any)["y"] = "mutated by a reader of a"
	if got, _ := b.Get("obj"); !reflect.DeepEqual(got, map[string]any{"y": 2.0}) {
		t.Errorf("b.Get(%q) = %v; want map[y:2] (not shared with a)", "obj", got)
	}
}

// TestMapTypedValues pins decoding into a concrete V and the error for a
// value of another type, which changes nothing (B-ADAPT-17).
func TestMapTypedValues(t *testing.T) {
	m, _ := apply.NewMap(&apply.MapOptions[int]{Initial: map[string]int{"a": 1}})
	applyAll(t, m, `{"b":2}`)
	if got, want := m.Load(), map[string]int{"a": 1, "b": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %v; want %v", got, want)
	}
	err := m.Apply(context.Background(), snap(2, `{"a":5,"c":"three"}`))
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		t.Errorf("Apply with a string for an int = %v; want a *json.UnmarshalTypeError", err)
	}
	if got, want := m.Load(), map[string]int{"a": 1, "b": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("Load() after a failed apply = %v; want %v", got, want)
	}
	if got := m.Revision(); got != 1 {
		t.Errorf("Revision() after a failed apply = %d; want 1", got)
	}
}

// TestNewMapErrors pins the constructor's checks (B-ADAPT-16).
func TestNewMapErrors(t *testing.T) {
	tests := []struct {
		name string
		opts apply.MapOptions[any]
		want error
	}{
		{"B-ADAPT-16 pick and omit", apply.MapOptions[any]{PickKeys: []string{"a"}, OmitKeys: []string{"b"}}, apply.ErrConflictingKeyFilters},
		{"B-ADAPT-16 pick and omit, replace", apply.MapOptions[any]{Mode: apply.Replace, PickKeys: []string{"a"}, OmitKeys: []string{"a"}}, apply.ErrConflictingKeyFilters},
		{"unknown mode", apply.MapOptions[any]{Mode: 7}, apply.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := apply.NewMap(&tt.opts)
			if !errors.Is(err, tt.want) || m != nil {
				t.Errorf("NewMap(%+v) = %v, %v; want nil, %v", tt.opts, m, err, tt.want)
			}
		})
	}
	// Empty lists are no filter, so an empty one with the other is fine.
	if _, err := apply.NewMap(&apply.MapOptions[any]{PickKeys: []string{}, OmitKeys: []string{"b"}}); err != nil {
		t.Errorf("NewMap with an empty PickKeys and an OmitKeys = %v; want nil", err)
	}
}

// TestMapConcurrentReaders pins that readers never see a half-applied
// snapshot while applies replace and patch keys that always hold equal
// values (B-ADAPT-23, B-ADAPT-18, B-ADAPT-19, B-GO-01). Run with -race.
func TestMapConcurrentReaders(t *testing.T) {
	for _, mode := range []apply.Mode{apply.Patch, apply.Replace} {
		t.Run(mode.String(), func(t *testing.T) {
			m, _ := apply.NewMap(&apply.MapOptions[int]{Mode: mode, OmitKeys: []string{"keep"}, Initial: map[string]int{"keep": -1}})
			const applies = 500
			var wg sync.WaitGroup
			done := make(chan struct{})
			for range 4 {
				wg.Go(func() {
					for {
						s := m.Load()
						rev := m.Revision() // read after s: at least s's revision
						a, b, keep := s["a"], s["b"], s["keep"]
						if a != b || keep != -1 || statesync.Revision(a) > rev {
							t.Errorf("Load() = %v at revision ≥ %d; want a == b ≤ revision and keep == -1", s, rev)
							return
						}
						select {
						case <-done:
							return
						default:
						}
					}
				})
			}
			for i := 1; i <= applies; i++ {
				data := fmt.Sprintf(`{"a":%d,"b":%d,"keep":0}`, i, i)
				if i%2 == 0 {
					data = fmt.Sprintf(`{"b":%d,"a":%d,"keep":0}`, i, i)
				}
				if err := m.Apply(context.Background(), snap(statesync.Revision(i), data)); err != nil {
					t.Fatal(err)
				}
			}
			close(done)
			wg.Wait()
			if got, want := m.Load(), map[string]int{"a": applies, "b": applies, "keep": -1}; !reflect.DeepEqual(got, want) {
				t.Errorf("Load() = %v; want %v", got, want)
			}
		})
	}
}
