package statesynctest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/statesynctest"
)

// B-TRANS-10, B-E2E-50, B-E2E-55, B-E2E-59, B-GATE-06..08, B-HARN-09:
// 20 consumers over an in-process bus wrapped in a Chaos that drops,
// duplicates, reorders, delays and corrupts invalidations and fails and
// stalls snapshot calls, while two writers make 200 compare-and-set
// increments. Once the faults stop and one invalidation gets through,
// every consumer converges on the last revision and its data, having
// applied strictly increasing revisions, one apply at a time.
func TestChaosConvergence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		const topic, consumers, writers, increments = "chaos", 20, 2, 100

		store := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1})
		defer store.Close()
		src, err := statesync.NewSource(store, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		bus := memsync.New(src)
		defer bus.Close()
		ch := statesynctest.NewChaos(bus, bus, statesynctest.ChaosOptions{
			Seed: 20260101, Drop: 0.2, Duplicate: 0.2, Reorder: 0.2, MaxDelay: 20 * time.Millisecond,
			Garbage: 0.05, FailRate: 0.2, StallRate: 0.1, Stall: 300 * time.Millisecond, Logf: t.Logf,
		})
		defer ch.Close()

		hist := statesynctest.NewHistory()
		var (
			mu     sync.Mutex
			phases = map[statesync.Phase]int{}
		)
		onError := func(e *statesync.Error) {
			mu.Lock()
			phases[e.Phase]++
			mu.Unlock()
		}
		var cs []*statesync.Consumer
		for i := range consumers {
			opts := &statesync.ConsumerOptions{OnError: onError}
			if i%2 == 0 { // half retry, with a timeout that cuts stalls short
				opts.FetchTimeout = 50 * time.Millisecond
				opts.Retry = &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 5 * time.Millisecond, Jitter: 0.5}
			}
			c, err := statesync.NewConsumer(topic, ch, ch, hist.Applier(fmt.Sprintf("c%02d", i), nil), opts)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
			// Start fails when the chaos fails its first fetch; try again,
			// as an application would.
			for attempt := 1; ; attempt++ {
				if err := c.Start(ctx); err == nil {
					break
				} else if attempt == 20 {
					t.Fatalf("consumer %d: Start failed %d times, last: %v", i, attempt, err)
				}
			}
		}
		defer func() {
			for _, c := range cs {
				c.Stop()
			}
			for _, c := range cs {
				if err := c.Wait(ctx); err != nil {
					t.Errorf("Wait after Stop: %v", err)
				}
			}
		}()

		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range increments {
					_, err := src.Update(ctx, topic, func(cur statesync.Snapshot) (json.RawMessage, error) {
						var v struct{ N int }
						if len(cur.Data) > 0 && string(cur.Data) != "null" {
							if err := json.Unmarshal(cur.Data, &v); err != nil {
								return nil, err
							}
						}
						return json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1)), nil
					})
					if err != nil {
						t.Errorf("writer %d: Update %d error: %v", w, i, err)
						return
					}
					time.Sleep(time.Duration(w+1) * time.Millisecond)
				}
			})
		}
		wg.Wait()

		ch.Quiesce()
		final, err := src.Snapshot(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"n":%d}`, writers*increments); string(final.Data) != want {
			t.Fatalf("Get(%q).Data = %s after %d increments; want %s", topic, final.Data, writers*increments, want)
		}
		bus.Publish(statesync.Invalidation{Topic: topic, Revision: final.Revision, Epoch: final.Epoch})

		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := hist.WaitConverged(wctx, final.Revision, final.Epoch); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the consumers adopt the revision just after their applier returns
		hist.Check(t)
		for _, name := range hist.Names() {
			if last, _ := hist.Last(name); string(last.Data) != string(final.Data) {
				t.Errorf("consumer %s last applied %s; want %s", name, last.Data, final.Data)
			}
		}
		for i, c := range cs {
			if c.Revision() != final.Revision || c.Epoch() != final.Epoch {
				t.Errorf("consumer %d: Revision() = %d, Epoch() = %q; want %d, %q", i, c.Revision(), c.Epoch(), final.Revision, final.Epoch)
			}
		}

		// The run must really have been chaotic.
		st := ch.Stats()
		t.Logf("chaos: %+v", st)
		for name, n := range map[string]int64{"dropped": st.Dropped, "duplicated": st.Duplicated, "reordered": st.Reordered,
			"delayed": st.Delayed, "garbage": st.Garbage, "failed": st.Failed, "stalled": st.Stalled} {
			if n == 0 {
				t.Errorf("chaos %s nothing; want every fault injected", name)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		t.Logf("errors by phase: %v", phases)
		if phases[statesync.PhaseGetSnapshot] == 0 || phases[statesync.PhaseProtocol]+phases[statesync.PhaseInvalidation] == 0 {
			t.Errorf("errors by phase %v; want getSnapshot and protocol errors reported", phases)
		}
		if n := phases[statesync.PhaseApply]; n != 0 {
			t.Errorf("%d apply errors; want none", n)
		}
	})
}
