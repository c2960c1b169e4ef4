package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/apply"
)

type theme struct {
	Theme string   `json:"theme"`
	Size  int      `json:"size"`
	Tags  []string `json:"tags"`
}

// TestValueApply pins that a Value decodes each snapshot whole into a new T
// and records its revision, and that a failed decode changes nothing
// (B-ADAPT-01, B-ADAPT-17).
func TestValueApply(t *testing.T) {
	v := apply.NewValue(&apply.ValueOptions[theme]{Initial: theme{Theme: "default"}})
	if got, want := v.Load(), (theme{Theme: "default"}); !reflect.DeepEqual(got, want) || v.Revision() != 0 {
		t.Errorf("Load(), Revision() = %+v, %d; want %+v, 0", got, v.Revision(), want)
	}
	if err := v.Apply(context.Background(), snap(4, `{"theme":"dark","size":2,"tags":["a"]}`)); err != nil {
		t.Fatal(err)
	}
	if err := v.Apply(context.Background(), snap(5, `{"size":3}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := v.Load(), (theme{Size: 3}); !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v; want %+v (each snapshot replaces the value whole)", got, want)
	}
	err := v.Apply(context.Background(), snap(6, `{"size":"big"}`))
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		t.Errorf("Apply(size: string) = %v; want a *json.UnmarshalTypeError", err)
	}
	if got, want := v.Load(), (theme{Size: 3}); !reflect.DeepEqual(got, want) || v.Revision() != 5 {
		t.Errorf("Load(), Revision() after a failed apply = %+v, %d; want %+v, 5", got, v.Revision(), want)
	}
	if err := v.Apply(context.Background(), statesync.Snapshot{Revision: 7}); err != nil { // nil Data is null
		t.Errorf("Apply(nil data) = %v; want nil", err)
	}
	if got := v.Load(); !reflect.DeepEqual(got, theme{}) {
		t.Errorf("Load() after null = %+v; want the zero value", got)
	}
}

// TestValueToState pins the ToState mapping and that its error is returned
// as is, changing nothing (B-ADAPT-27).
func TestValueToState(t *testing.T) {
	boom := errors.New("boom")
	v := apply.NewValue(&apply.ValueOptions[int]{ToState: func(data json.RawMessage) (int, error) {
		if string(data) == `"fail"` {
			return 0, boom
		}
		return len(data), nil
	}})
	applyAll(t, v, `"abc"`)
	if got := v.Load(); got != 5 {
		t.Errorf("Load() = %d; want 5", got)
	}
	if err := v.Apply(context.Background(), snap(2, `"fail"`)); err != boom {
		t.Errorf("Apply = %v; want the ToState error itself", err)
	}
	if got, rev := v.Load(), v.Revision(); got != 5 || rev != 1 {
		t.Errorf("Load(), Revision() = %d, %d; want 5, 1", got, rev)
	}
}

// TestValueNoAliasing pins that the value never shares the snapshot's
// bytes (B-ADAPT-28).
func TestValueNoAliasing(t *testing.T) {
	raw := apply.NewValue[json.RawMessage](nil)
	tags := apply.NewValue[theme](nil)
	data := []byte(`{"tags":["x"]}`)
	for _, a := range []statesync.Applier{raw, tags} {
		if err := a.Apply(context.Background(), statesync.Snapshot{Revision: 1, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	copy(data, `{"tags":["y"]}`)
	if got := string(raw.Load()); got != `{"tags":["x"]}` {
		t.Errorf("Load() = %s; want the bytes as applied", got)
	}
	if got := tags.Load().Tags; !reflect.DeepEqual(got, []string{"x"}) {
		t.Errorf("Load().Tags = %q; want [x]", got)
	}
}

// TestOnChange pins change callbacks: called once per successful apply
// with the previous and new values, after the store, in registration
// order, not for failed applies, not after removal (B-ADAPT-29).
func TestOnChange(t *testing.T) {
	v := apply.NewValue(&apply.ValueOptions[int]{Initial: -1})
	var calls []string
	removeA := v.OnChange(func(old, new int) {
		calls = append(calls, fmt.Sprintf("a %d→%d load=%d rev=%d", old, new, v.Load(), v.Revision()))
	})
	v.OnChange(func(old, new int) { calls = append(calls, fmt.Sprintf("b %d→%d", old, new)) })
	applyAll(t, v, `1`, `2`)
	if err := v.Apply(context.Background(), snap(3, `"x"`)); err == nil {
		t.Fatal("Apply(\"x\") into an int = nil; want an error")
	}
	removeA()
	removeA() // idempotent
	if err := v.Apply(context.Background(), snap(4, `4`)); err != nil {
		t.Fatal(err)
	}
	want := []string{"a -1→1 load=1 rev=1", "b -1→1", "a 1→2 load=2 rev=2", "b 1→2", "b 2→4"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("callback calls = %q; want %q", calls, want)
	}
}

// TestOnChangeOutsideLocks pins that callbacks run outside the container's
// locks: a callback may apply again, register callbacks and open channels
// without deadlock (B-ADAPT-29, B-GO-03).
func TestOnChangeOutsideLocks(t *testing.T) {
	m, _ := apply.NewMap[any](nil)
	var seen []string
	m.OnChange(func(old, new map[string]any) {
		seen = append(seen, fmt.Sprint(new["n"]))
		if new["n"] == 1.0 {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			<-m.Changes(ctx) // primed with the current map
			m.OnChange(func(_, _ map[string]any) {})()
			if err := m.Apply(context.Background(), snap(2, `{"n":2}`)); err != nil {
				t.Errorf("re-entrant Apply = %v; want nil", err)
			}
		}
	})
	applyAll(t, m, `{"n":1}`)
	if got, want := seen, []string{"1", "2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("callback saw %q; want %q", got, want)
	}
	if got := m.Revision(); got != 2 {
		t.Errorf("Revision() = %d; want 2", got)
	}
}

// TestOnChangePanic pins the decision for a panicking callback: it is
// recovered, the other callbacks still run, the value stays stored, and
// Apply returns an error wrapping ErrCallbackPanicked and the panic value
// (B-ADAPT-29).
func TestOnChangePanic(t *testing.T) {
	v := apply.NewValue[int](nil)
	v.OnChange(func(_, _ int) { panic("kaput") })
	var after int
	v.OnChange(func(_, n int) { after = n })
	err := v.Apply(context.Background(), snap(1, `7`))
	var pe *statesync.PanicError
	if !errors.Is(err, apply.ErrCallbackPanicked) || !errors.As(err, &pe) || pe.Value != "kaput" {
		t.Errorf("Apply = %v; want ErrCallbackPanicked wrapping PanicError{kaput}", err)
	}
	if after != 7 {
		t.Errorf("second callback saw %d; want 7", after)
	}
	if got, rev := v.Load(), v.Revision(); got != 7 || rev != 1 {
		t.Errorf("Load(), Revision() = %d, %d; want 7, 1 (stored before the callbacks)", got, rev)
	}
	defer func() {
		if recover() == nil {
			t.Error("OnChange(nil) did not panic")
		}
	}()
	v.OnChange(nil)
}

// TestChangesLatestOnly pins that a Changes channel never blocks Apply and
// holds only the latest value: a slow reader skips to it (B-ADAPT-29).
func TestChangesLatestOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := apply.NewValue[int](nil)
	ch := v.Changes(ctx)
	select {
	case x := <-ch:
		t.Fatalf("Changes() before any apply holds %d; want nothing", x)
	default:
	}
	for i := 1; i <= 100; i++ { // nobody reads: Apply must not block
		if err := v.Apply(ctx, snap(statesync.Revision(i), strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-ch; got != 100 {
		t.Errorf("<-Changes() = %d; want 100, the latest", got)
	}
	select {
	case x := <-ch:
		t.Errorf("Changes() holds %d after the latest was received; want nothing", x)
	default:
	}
	late := v.Changes(ctx)
	if got := <-late; got != 100 {
		t.Errorf("<-Changes() opened after applies = %d; want the current 100", got)
	}
}

// TestChangesClosedWithContext pins that a Changes channel is closed once
// its context is done and that later applies skip it (B-ADAPT-29).
func TestChangesClosedWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := apply.NewValue[int](nil)
		ctx, cancel := context.WithCancel(t.Context())
		ch := v.Changes(ctx)
		applyAll(t, v, `1`)
		cancel()
		synctest.Wait()
		if err := v.Apply(t.Context(), snap(2, `2`)); err != nil {
			t.Fatal(err)
		}
		var got []int
		for x := range ch {
			got = append(got, x)
		}
		if want := []int{1}; !reflect.DeepEqual(got, want) {
			t.Errorf("values received until close = %v; want %v", got, want)
		}
	})
}

// TestChangesConcurrent pins that concurrent Changes readers, applies and
// cancellations are race-free, and that each reader ends with the latest
// value (B-GO-01). Run with -race.
func TestChangesConcurrent(t *testing.T) {
	v := apply.NewValue[int](nil)
	const n = 300
	var wg sync.WaitGroup
	for range 4 {
		ctx, cancel := context.WithCancel(context.Background())
		ch := v.Changes(ctx)
		wg.Go(func() {
			defer cancel()
			last := 0
			for x := range ch {
				if x < last {
					t.Errorf("<-Changes() = %d after %d; want increasing values", x, last)
				}
				last = x
				if x == n {
					return
				}
			}
		})
	}
	for i := 1; i <= n; i++ {
		if err := v.Apply(context.Background(), snap(statesync.Revision(i), strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// TestWait pins Wait: it blocks until an applied value satisfies pred and
// returns it; a nil pred waits for the first apply, not the initial value;
// a done context returns its error (B-ADAPT-29, B-GO-07).
func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := apply.NewValue(&apply.ValueOptions[int]{Initial: 10})
		type result struct {
			v   int
			err error
		}
		first, big := make(chan result, 1), make(chan result, 1)
		go func() {
			x, err := v.Wait(t.Context(), nil)
			first <- result{x, err}
		}()
		go func() {
			x, err := v.Wait(t.Context(), func(x int, rev statesync.Revision) bool { return x >= 5 && rev >= 2 })
			big <- result{x, err}
		}()
		synctest.Wait()
		if len(first) != 0 || len(big) != 0 {
			t.Fatal("Wait returned before any apply; want it blocked")
		}
		applyAll(t, v, `3`)
		synctest.Wait()
		if r := <-first; r.v != 3 || r.err != nil {
			t.Errorf("Wait(nil) = %d, %v; want 3, nil", r.v, r.err)
		}
		if len(big) != 0 {
			t.Fatal("Wait(≥5) returned at 3; want it blocked")
		}
		if err := v.Apply(t.Context(), snap(2, `8`)); err != nil {
			t.Fatal(err)
		}
		if r := <-big; r.v != 8 || r.err != nil {
			t.Errorf("Wait(≥5) = %d, %v; want 8, nil", r.v, r.err)
		}
		if x, err := v.Wait(t.Context(), nil); x != 8 || err != nil { // already satisfied
			t.Errorf("Wait(nil) after applies = %d, %v; want 8, nil", x, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if x, err := v.Wait(ctx, func(int, statesync.Revision) bool { return false }); x != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("Wait(never) with a cancelled ctx = %d, %v; want 0, context.Canceled", x, err)
		}
	})
}

// TestValueConcurrentReaders pins lock-free reads of Load, Revision and
// Wait while applies run (B-GO-01, B-GO-05). Run with -race.
func TestValueConcurrentReaders(t *testing.T) {
	v := apply.NewValue[[]int](nil)
	var wg sync.WaitGroup
	const n = 300
	for range 3 {
		wg.Go(func() {
			for {
				s := v.Load()
				for i, x := range s {
					if x != i+1 {
						t.Errorf("Load() = %v; want 1..len", s)
						return
					}
				}
				if len(s) == n {
					return
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := v.Wait(context.Background(), func(_ []int, rev statesync.Revision) bool { return rev == n }); err != nil {
			t.Error(err)
		}
	})
	list := ""
	for i := 1; i <= n; i++ {
		list += "," + strconv.Itoa(i)
		if err := v.Apply(context.Background(), snap(statesync.Revision(i), "["+list[1:]+"]")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
