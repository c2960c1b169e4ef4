package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/apply"
	"github.com/statesync-go/statesync/memsync"
)

type appSettings struct {
	Theme string `json:"theme"`
	Lang  string `json:"lang"`
	N     int    `json:"n"`
}

// newSource returns a memory Source whose first write is revision 1 and
// an in-process bus that follows it, closed at the end of the test.
func newSource(t testing.TB) (*statesync.Source, *memsync.Bus) {
	t.Helper()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		t.Fatal(err)
	}
	bus := memsync.New(src)
	t.Cleanup(func() {
		bus.Close()
		src.Close()
	})
	return src, bus
}

func put(t testing.TB, src *statesync.Source, topic, data string) statesync.Revision {
	t.Helper()
	s, err := src.Put(context.Background(), topic, json.RawMessage(data))
	if err != nil {
		t.Fatalf("Put(%q, %s): %v", topic, data, err)
	}
	return s.Revision
}

// TestConsumerFollowsSource is the end-to-end check: a Source writes, and
// a Value, a Map and a Struct fed by real Consumers over memsync follow it,
// while readers load them concurrently (B-ADAPT-01, B-ADAPT-17,
// B-ADAPT-29, B-GO-01).
func TestConsumerFollowsSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	src, bus := newSource(t)
	put(t, src, "settings", `{"theme":"dark","lang":"en","n":0}`)

	value := apply.NewValue[appSettings](nil)
	mp, err := apply.NewMap(&apply.MapOptions[any]{OmitKeys: []string{"lang"}, Initial: map[string]any{"lang": "local"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := apply.NewStruct(&apply.StructOptions[appSettings]{Mode: apply.Replace, PickKeys: []string{"theme", "n"}, Initial: appSettings{Lang: "local"}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		changes []int
	)
	value.OnChange(func(_, v appSettings) {
		mu.Lock()
		changes = append(changes, v.N)
		mu.Unlock()
	})
	changed := mp.Changes(ctx)
	var consumers []*statesync.Consumer
	for _, a := range []statesync.Applier{value, mp, st} {
		c, err := statesync.NewConsumer("settings", bus, bus, a, &statesync.ConsumerOptions{
			OnError: func(e *statesync.Error) { t.Errorf("OnError(%v)", e) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
		t.Cleanup(c.Stop)
		consumers = append(consumers, c)
	}
	// The appliers neither subscribe nor fetch: one subscription per consumer.
	if got := bus.Subscribers("settings"); got != 3 {
		t.Errorf("Subscribers(%q) = %d; want 3", "settings", got)
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() { // a reader on another goroutine
		for {
			v, m, s := value.Load(), mp.Load(), st.Load()
			if m["lang"] != "local" || s.Lang != "local" || v.Lang != "en" {
				t.Errorf("Load() = %+v, %v, %+v; want lang en, local, local", v, m, s)
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})
	var last statesync.Revision
	for i := 1; i <= 5; i++ {
		last = put(t, src, "settings", fmt.Sprintf(`{"theme":"t%d","lang":"en","n":%d}`, i, i))
	}
	if _, err := value.Wait(ctx, func(_ appSettings, rev statesync.Revision) bool { return rev == last }); err != nil {
		t.Fatalf("Value.Wait(revision %d): %v", last, err)
	}
	if _, err := mp.Wait(ctx, func(_ map[string]any, rev statesync.Revision) bool { return rev == last }); err != nil {
		t.Fatalf("Map.Wait(revision %d): %v", last, err)
	}
	if _, err := st.Wait(ctx, func(_ appSettings, rev statesync.Revision) bool { return rev == last }); err != nil {
		t.Fatalf("Struct.Wait(revision %d): %v", last, err)
	}
	close(done)
	wg.Wait()
	for _, c := range consumers {
		c.Stop() // no apply, hence no callback, after Stop returns
	}

	if got, want := value.Load(), (appSettings{"t5", "en", 5}); got != want || value.Revision() != last {
		t.Errorf("Value: Load(), Revision() = %+v, %d; want %+v, %d", got, value.Revision(), want, last)
	}
	if got, want := mp.Load(), map[string]any{"theme": "t5", "lang": "local", "n": 5.0}; !reflect.DeepEqual(got, want) || mp.Revision() != last {
		t.Errorf("Map: Load(), Revision() = %v, %d; want %v, %d", got, mp.Revision(), want, last)
	}
	if got, want := st.Load(), (appSettings{"t5", "local", 5}); got != want || st.Revision() != last {
		t.Errorf("Struct: Load(), Revision() = %+v, %d; want %+v, %d", got, st.Revision(), want, last)
	}
	// The engine coalesces invalidations, so some revisions may be skipped;
	// those applied are seen once each, in order, ending with the latest.
	if len(changes) < 2 || changes[0] != 0 || changes[len(changes)-1] != 5 || !slices.IsSorted(changes) || len(slices.Compact(slices.Clone(changes))) != len(changes) {
		t.Errorf("OnChange saw n = %v; want strictly increasing from 0 to 5", changes)
	}
	if got := <-changed; got["n"] != 5.0 {
		t.Errorf("<-Changes() = %v; want the latest, n 5", got)
	}
}

// TestConsumerApplyError pins that an applier's error becomes the engine's
// apply phase, the state and the consumer's revision staying where they
// were (B-ADAPT-17, B-ADAPT-04).
func TestConsumerApplyError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, bus := newSource(t)
		put(t, src, "t", `{"a":1}`)
		m, _ := apply.NewMap[any](nil)
		var errs []*statesync.Error
		c, err := statesync.NewConsumer("t", bus, bus, m, &statesync.ConsumerOptions{
			OnError: func(e *statesync.Error) { errs = append(errs, e) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		rev := c.Revision()
		put(t, src, "t", `[1,2,3]`)
		synctest.Wait()
		if len(errs) != 1 || errs[0].Phase != statesync.PhaseApply || !errors.Is(errs[0], apply.ErrNotObject) {
			t.Fatalf("OnError calls = %v; want one apply-phase error wrapping ErrNotObject", errs)
		}
		if got, want := m.Load(), map[string]any{"a": 1.0}; !reflect.DeepEqual(got, want) || m.Revision() != rev || c.Revision() != rev {
			t.Errorf("Load(), Map.Revision(), Consumer.Revision() = %v, %d, %d; want %v, %d, %d", got, m.Revision(), c.Revision(), want, rev, rev)
		}
		next := put(t, src, "t", `{"b":2}`)
		synctest.Wait()
		if got, want := m.Load(), map[string]any{"a": 1.0, "b": 2.0}; !reflect.DeepEqual(got, want) || c.Revision() != next {
			t.Errorf("after a good write: Load(), Consumer.Revision() = %v, %d; want %v, %d", got, c.Revision(), want, next)
		}
	})
}

// TestConsumerNeverWrittenTopic pins the documented caveat: a strict Map
// cannot start on a topic whose data is null (never written), a Lenient one
// can (B-ADAPT-04, B-ADAPT-05).
func TestConsumerNeverWrittenTopic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, bus := newSource(t)
		for _, lenient := range []bool{false, true} {
			m, _ := apply.NewMap(&apply.MapOptions[any]{Lenient: lenient})
			c, err := statesync.NewConsumer("empty", bus, bus, m, &statesync.ConsumerOptions{OnError: func(*statesync.Error) {}})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Start(t.Context())
			if lenient && err != nil {
				t.Errorf("Start with a Lenient Map = %v; want nil", err)
			}
			if !lenient && !errors.Is(err, apply.ErrNotObject) {
				t.Errorf("Start with a strict Map = %v; want ErrNotObject", err)
			}
			c.Stop()
		}
	})
}
