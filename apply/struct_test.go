package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/apply"
)

type prefs struct {
	Theme string `json:"theme,omitempty"`
	Lang  string `json:"lang,omitempty"`
}

type settings struct {
	A      int               `json:"a"`
	B      int               `json:"b"`
	C      int               `json:"c"`
	Config prefs             `json:"config"`
	Tags   map[string]string `json:"tags"`
	List   []int             `json:"list"`
	Ptr    *prefs            `json:"ptr"`
	Count  int64             `json:"count,string"`
	local  int               // not a JSON field
}

// TestStructModes pins the patch and replace semantics for structs: keys
// are the JSON field names, presence decides, replace resets absent allowed
// fields to zero and keeps filtered-out ones (B-ADAPT-25, B-ADAPT-07..13).
func TestStructModes(t *testing.T) {
	ab := settings{A: 1, B: 2}
	tests := []struct {
		name    string
		opts    apply.StructOptions[settings]
		initial settings
		steps   []string
		want    settings
	}{
		{"B-ADAPT-07 patch sets present fields", apply.StructOptions[settings]{}, ab, []string{`{"a":10}`}, settings{A: 10, B: 2}},
		{"B-ADAPT-25 patch by presence, not zero values", apply.StructOptions[settings]{}, ab, []string{`{"a":0}`}, settings{A: 0, B: 2}},
		{"B-ADAPT-07 patch pickKeys", apply.StructOptions[settings]{PickKeys: []string{"a"}}, ab, []string{`{"a":10,"b":999}`}, settings{A: 10, B: 2}},
		{"B-ADAPT-07 patch omitKeys", apply.StructOptions[settings]{OmitKeys: []string{"b"}}, ab, []string{`{"a":10,"b":999}`}, settings{A: 10, B: 2}},
		{"B-ADAPT-08 patch is shallow", apply.StructOptions[settings]{}, settings{Config: prefs{"dark", "en"}}, []string{`{"config":{"theme":"light"}}`}, settings{Config: prefs{Theme: "light"}}},
		{"B-ADAPT-09 empty patch", apply.StructOptions[settings]{}, ab, []string{`{}`}, ab},
		{"B-ADAPT-10 patches accumulate", apply.StructOptions[settings]{}, settings{}, []string{`{"a":10}`, `{"b":20}`, `{"a":100}`}, settings{A: 100, B: 20}},
		{"B-ADAPT-25 null sets the zero value", apply.StructOptions[settings]{}, settings{A: 1, Ptr: &prefs{Theme: "x"}}, []string{`{"a":null,"ptr":null}`}, settings{}},
		{"B-ADAPT-25 unknown and other-case keys are ignored", apply.StructOptions[settings]{}, ab, []string{`{"zzz":1,"A":5,"local":3}`}, ab},
		{"B-ADAPT-25 tag options apply (,string)", apply.StructOptions[settings]{}, settings{}, []string{`{"count":"12"}`}, settings{Count: 12}},
		{"B-ADAPT-11 B-ADAPT-25 replace zeroes absent fields", apply.StructOptions[settings]{Mode: apply.Replace}, settings{A: 1, B: 2, Tags: map[string]string{"x": "y"}, local: 7}, []string{`{"a":123}`}, settings{A: 123, local: 7}},
		{"B-ADAPT-11 replace with a zero value", apply.StructOptions[settings]{Mode: apply.Replace}, ab, []string{`{"a":0}`}, settings{}},
		{"B-ADAPT-11 replace: allowed reset, disallowed kept", apply.StructOptions[settings]{Mode: apply.Replace, PickKeys: []string{"a", "c"}}, settings{A: 1, B: 2, C: 3}, []string{`{"a":5,"b":7}`}, settings{A: 5, B: 2}},
		{"B-ADAPT-12 replace omitKeys", apply.StructOptions[settings]{Mode: apply.Replace, OmitKeys: []string{"b"}}, ab, []string{`{"a":10}`}, settings{A: 10, B: 2}},
		{"B-ADAPT-12 replace pickKeys", apply.StructOptions[settings]{Mode: apply.Replace, PickKeys: []string{"a"}}, ab, []string{`{"a":100}`}, settings{A: 100, B: 2}},
		{"B-ADAPT-13 empty replace resets every field", apply.StructOptions[settings]{Mode: apply.Replace}, settings{A: 1, B: 2, List: []int{1}, local: 7}, []string{`{}`}, settings{local: 7}},
		{"B-ADAPT-15 toState mapping", apply.StructOptions[settings]{ToState: func(data json.RawMessage, _ *apply.Struct[settings]) (any, error) {
			var in struct{ A int }
			err := json.Unmarshal(data, &in)
			return map[string]int{"a": in.A}, err
		}}, ab, []string{`{"a":7,"meta":"x"}`}, settings{A: 7, B: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Initial = tt.initial
			s, err := apply.NewStruct(&opts)
			if err != nil {
				t.Fatalf("NewStruct: %v", err)
			}
			applyAll(t, s, tt.steps...)
			if got := s.Load(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load() = %+v; want %+v", got, tt.want)
			}
			if got, want := s.Revision(), statesync.Revision(len(tt.steps)); got != want {
				t.Errorf("Revision() = %d; want %d", got, want)
			}
		})
	}
}

// TestStructNoAliasing pins that a present map, slice or pointer field is
// decoded afresh, never merged into nor written through the previous
// state's value, and never shares the snapshot's bytes (B-ADAPT-08,
// B-ADAPT-24, B-ADAPT-28).
func TestStructNoAliasing(t *testing.T) {
	oldTags := map[string]string{"x": "1"}
	oldList := make([]int, 3, 10)
	copy(oldList, []int{1, 2, 3})
	oldPtr := &prefs{Theme: "dark", Lang: "en"}
	s, _ := apply.NewStruct(&apply.StructOptions[settings]{Initial: settings{Tags: oldTags, List: oldList, Ptr: oldPtr}})
	before := s.Load()
	data := []byte(`{"tags":{"y":"2"},"list":[9],"ptr":{"theme":"light"}}`)
	if err := s.Apply(context.Background(), statesync.Snapshot{Revision: 1, Data: data}); err != nil {
		t.Fatal(err)
	}
	clear(data)
	got := s.Load()
	if want := map[string]string{"y": "2"}; !reflect.DeepEqual(got.Tags, want) {
		t.Errorf("Tags = %v; want %v (replaced whole, not merged)", got.Tags, want)
	}
	if want := []int{9}; !reflect.DeepEqual(got.List, want) {
		t.Errorf("List = %v; want %v", got.List, want)
	}
	if want := (prefs{Theme: "light"}); got.Ptr == nil || *got.Ptr != want {
		t.Errorf("Ptr = %v; want &%v", got.Ptr, want)
	}
	if want := map[string]string{"x": "1"}; !reflect.DeepEqual(oldTags, want) || !reflect.DeepEqual(before.Tags, want) {
		t.Errorf("previous Tags = %v; want unchanged %v", oldTags, want)
	}
	if want := []int{1, 2, 3}; !reflect.DeepEqual(oldList, want) || !reflect.DeepEqual(oldList[:1:1], []int{1}) {
		t.Errorf("previous List = %v; want unchanged %v", oldList, want)
	}
	if want := (prefs{"dark", "en"}); *oldPtr != want {
		t.Errorf("previous *Ptr = %v; want unchanged %v", *oldPtr, want)
	}
}

type base struct {
	ID string `json:"id"`
}

type Extra struct {
	Note string `json:"note"`
}

type hidden struct {
	H int `json:"h"`
}

type embedding struct {
	base
	*Extra
	*hidden        // unexported embedded pointer: encoding/json cannot set h
	Name    string `json:"name"`
}

// TestStructEmbedded pins promoted fields of embedded structs, copy-on-write
// through an embedded pointer, and the exclusion of fields behind an
// unexported embedded pointer (which encoding/json cannot decode into)
// (B-ADAPT-25, B-ADAPT-26).
func TestStructEmbedded(t *testing.T) {
	oldExtra := &Extra{Note: "old"}
	s, err := apply.NewStruct(&apply.StructOptions[embedding]{Initial: embedding{base: base{ID: "1"}, Extra: oldExtra, Name: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Keys(), []string{"id", "name", "note"}; !slices.Equal(got, want) {
		t.Errorf("Keys() = %q; want %q", got, want)
	}
	applyAll(t, s, `{"id":"2","note":"new","h":5}`)
	got := s.Load()
	if got.ID != "2" || got.Extra == nil || got.Note != "new" || got.Name != "n" || got.hidden != nil {
		t.Errorf("Load() = %+v (Extra %v); want id 2, note new, name n, no hidden", got, got.Extra)
	}
	if oldExtra.Note != "old" {
		t.Errorf("previous embedded *Extra Note = %q; want %q (copied before writing)", oldExtra.Note, "old")
	}

	r, _ := apply.NewStruct(&apply.StructOptions[embedding]{Mode: apply.Replace})
	applyAll(t, r, `{"name":"x"}`) // absent note behind a nil pointer: nothing to reset
	if got := r.Load(); got.Extra != nil || got.Name != "x" {
		t.Errorf("Load() = %+v; want name x and a nil *Extra", got)
	}
	if _, err := apply.NewStruct(&apply.StructOptions[embedding]{PickKeys: []string{"h"}}); !errors.Is(err, apply.ErrUnknownKey) {
		t.Errorf("NewStruct with PickKeys [h] = %v; want ErrUnknownKey", err)
	}
}

type inner1 struct {
	X int
	Y int `json:"y"`
}

type inner2 struct {
	X int
	Z int
}

type common struct{ K int }
type wrap1 struct{ common }
type wrap2 struct{ common }

type complexFields struct {
	inner1
	inner2
	wrap1
	wrap2
	Z    int `json:"zz"`
	Skip int `json:"-"`
	//lint:ignore SA5008 pins encoding/json's rule: "-," names the field "-"
	Dash int `json:"-,"`
	W    int `json:",omitempty"`
	//lint:ignore SA5008 pins encoding/json's rule: an invalid name falls back to the Go name
	Bad     int `json:"a\"b"`
	Shadow  int `json:"y"` // shallower than inner1.Y: wins
	private int
}

// TestStructKeysMatchEncodingJSON pins that the struct's keys are exactly
// the top-level names encoding/json uses, conflict rules included, and that
// applying a struct's own JSON reproduces it (B-ADAPT-25).
func TestStructKeysMatchEncodingJSON(t *testing.T) {
	v := complexFields{inner1{1, 2}, inner2{3, 4}, wrap1{common{5}}, wrap2{common{6}}, 7, 8, 9, 10, 11, 12, 13}
	enc, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(enc, &top); err != nil {
		t.Fatal(err)
	}
	s, err := apply.NewStruct[complexFields](nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Keys(), slices.Sorted(maps.Keys(top)); !slices.Equal(got, want) {
		t.Errorf("Keys() = %q; want encoding/json's %q", got, want)
	}
	applyAll(t, s, string(enc))
	var want complexFields
	if err := json.Unmarshal(enc, &want); err != nil {
		t.Fatal(err)
	}
	if got := s.Load(); !reflect.DeepEqual(got, want) {
		t.Errorf("Load() after applying %s = %+v; want %+v", enc, got, want)
	}
}

// TestStructNotObject pins strict and lenient handling of non-object data
// (B-ADAPT-04, B-ADAPT-05).
func TestStructNotObject(t *testing.T) {
	for _, data := range []string{`"str"`, `[1,2,3]`, `null`, `1`} {
		for _, lenient := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/lenient=%v", data, lenient), func(t *testing.T) {
				s, _ := apply.NewStruct(&apply.StructOptions[settings]{Lenient: lenient, Initial: settings{A: 1}})
				err := s.Apply(context.Background(), snap(1, data))
				if lenient && err != nil {
					t.Errorf("Apply(%s) = %v; want nil", data, err)
				}
				if !lenient && !errors.Is(err, apply.ErrNotObject) {
					t.Errorf("Apply(%s) = %v; want ErrNotObject", data, err)
				}
				if got := s.Load(); !reflect.DeepEqual(got, settings{A: 1}) || s.Revision() != 0 {
					t.Errorf("Load(), Revision() = %+v, %d; want unchanged", got, s.Revision())
				}
			})
		}
	}
}

// TestStructDecodeErrorChangesNothing pins that a field that fails to decode
// fails the whole apply, leaving every field as it was (B-ADAPT-17).
func TestStructDecodeErrorChangesNothing(t *testing.T) {
	s, _ := apply.NewStruct(&apply.StructOptions[settings]{Initial: settings{A: 1, B: 2}})
	err := s.Apply(context.Background(), snap(1, `{"a":10,"b":"two"}`))
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		t.Errorf("Apply = %v; want a *json.UnmarshalTypeError", err)
	}
	if got, want := s.Load(), (settings{A: 1, B: 2}); !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v; want %+v", got, want)
	}
}

// TestStructToStateTarget pins that ToState receives the Struct itself in
// both modes (B-ADAPT-14) and that its error is returned as is (B-ADAPT-27).
func TestStructToStateTarget(t *testing.T) {
	boom := errors.New("boom")
	for _, mode := range []apply.Mode{apply.Patch, apply.Replace} {
		var got *apply.Struct[settings]
		s, _ := apply.NewStruct(&apply.StructOptions[settings]{Mode: mode, ToState: func(data json.RawMessage, target *apply.Struct[settings]) (any, error) {
			got = target
			if string(data) == `"fail"` {
				return nil, boom
			}
			return data, nil
		}})
		applyAll(t, s, `{"a":1}`)
		if got != s {
			t.Errorf("%v: ToState target = %p; want the Struct %p", mode, got, s)
		}
		if err := s.Apply(context.Background(), snap(2, `"fail"`)); err != boom {
			t.Errorf("%v: Apply = %v; want the ToState error itself", mode, err)
		}
	}
}

// TestNewStructErrors pins the constructor's checks (B-ADAPT-16,
// B-ADAPT-26).
func TestNewStructErrors(t *testing.T) {
	tests := []struct {
		name string
		new  func() error
		want error
	}{
		{"B-ADAPT-16 pick and omit", func() error {
			_, err := apply.NewStruct(&apply.StructOptions[settings]{PickKeys: []string{"a"}, OmitKeys: []string{"b"}})
			return err
		}, apply.ErrConflictingKeyFilters},
		{"B-ADAPT-26 unknown pick key", func() error {
			_, err := apply.NewStruct(&apply.StructOptions[settings]{PickKeys: []string{"a", "nope"}})
			return err
		}, apply.ErrUnknownKey},
		{"B-ADAPT-26 Go name instead of JSON name", func() error {
			_, err := apply.NewStruct(&apply.StructOptions[settings]{OmitKeys: []string{"A"}})
			return err
		}, apply.ErrUnknownKey},
		{"B-ADAPT-26 unexported field", func() error {
			_, err := apply.NewStruct(&apply.StructOptions[settings]{OmitKeys: []string{"local"}})
			return err
		}, apply.ErrUnknownKey},
		{"not a struct", func() error {
			_, err := apply.NewStruct[map[string]any](nil)
			return err
		}, apply.ErrInvalidOptions},
		{"decodes itself", func() error {
			_, err := apply.NewStruct[selfDecoding](nil)
			return err
		}, apply.ErrInvalidOptions},
		{"unknown mode", func() error {
			_, err := apply.NewStruct(&apply.StructOptions[settings]{Mode: -1})
			return err
		}, apply.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.new(); !errors.Is(err, tt.want) {
				t.Errorf("NewStruct = %v; want %v", err, tt.want)
			}
		})
	}
}

type selfDecoding struct{ V int }

func (s *selfDecoding) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &s.V) }

// TestStructDefaults pins the defaults (B-DEF-12): patch, strict, identity,
// no filter, and the zero S before any apply.
func TestStructDefaults(t *testing.T) {
	s, err := apply.NewStruct[settings](nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Load(); !reflect.DeepEqual(got, settings{}) {
		t.Errorf("Load() = %+v; want the zero value", got)
	}
	applyAll(t, s, `{"a":1,"b":2}`, `{"c":3}`)
	if got, want := s.Load(), (settings{A: 1, B: 2, C: 3}); !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v; want %+v", got, want)
	}
	if err := s.Apply(context.Background(), snap(3, `null`)); !errors.Is(err, apply.ErrNotObject) {
		t.Errorf("Apply(null) = %v; want ErrNotObject", err)
	}
}

// TestStructConcurrentReaders pins consistent lock-free reads while applies
// run (B-ADAPT-23, B-GO-01). Run with -race.
func TestStructConcurrentReaders(t *testing.T) {
	s, _ := apply.NewStruct(&apply.StructOptions[settings]{Mode: apply.Replace, OmitKeys: []string{"c"}, Initial: settings{C: -1}})
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				v := s.Load()
				if v.A != v.B || v.A != len(v.List) || v.C != -1 {
					t.Errorf("Load() = %+v; want a == b == len(list) and c == -1", v)
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
	list := ""
	for i := 1; i <= 300; i++ {
		list += fmt.Sprint(",", i)
		if err := s.Apply(context.Background(), snap(statesync.Revision(i), fmt.Sprintf(`{"a":%d,"b":%d,"c":0,"list":[%s]}`, i, i, list[1:]))); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
}
