package e2e_test

// Scenarios B-E2E-14..35: load tests and edge cases.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/e2e"
	"github.com/statesync-go/statesync/internal/sleep"
)

// B-E2E-14, B-COAL-04: 5 windows with 1 ms providers and a synchronous
// burst of 50 mutations from rotating sources: all converge, with fewer
// than 250 provider calls. Each burst lands while the window's first fetch
// is in flight, so coalescing leaves at most 2 calls per window.
func TestE2E14_FiveWindowsFiftyMutations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		var ws []*e2e.Window[int]
		for i := range 5 {
			ws = append(ws, bus.NewWindow("W"+strconv.Itoa(i), nil))
		}
		startAll(t, ws...)
		for _, w := range ws {
			w.ResetProviderCalls()
		}

		for i := 1; i <= 50; i++ {
			bus.MutateFrom(ws[i%len(ws)].ID, i)
		}
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, ws...)
		total := 0
		for _, w := range ws {
			n := w.ProviderCalls()
			total += n
			if n > 2 {
				t.Errorf("%s made %d provider calls for one burst; want at most 2", w.ID, n)
			}
		}
		if total >= 250 {
			t.Errorf("total provider calls = %d; want < 250", total)
		}
	})
}

// B-E2E-15: random 10–100 ms providers, 20 mutations 5 ms apart: all
// converge within 10 s.
func TestE2E15_RandomIPCDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		var ws []*e2e.Window[int]
		for i := range 3 {
			ws = append(ws, bus.NewWindow("W"+strconv.Itoa(i), &e2e.WindowConfig[int]{
				Provider: delayedProvider(bus, func() time.Duration { return bus.Between(10*ms, 100*ms) }),
			}))
		}
		startAll(t, ws...)

		for i := 1; i <= 20; i++ {
			bus.MutateFrom(ws[i%len(ws)].ID, i)
			time.Sleep(5 * ms)
		}
		bus.WaitForConvergence(10 * time.Second)

		wantAtStore(t, bus, ws...)
		for _, w := range ws {
			wantLast(t, w, 20)
		}
	})
}

// B-E2E-16, B-LIFE-15: B is stopped while a fetch is in flight; when the
// fetch returns, nothing is applied. The provider ignores its context on
// purpose (the harder case).
func TestE2E16_StopDuringInFlightFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "initial", nil)
		release := make(chan struct{})
		var calls atomic.Int32
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{
			Provider: statesync.ProviderFunc(func(ctx context.Context, _ string) (statesync.Snapshot, error) {
				if calls.Add(1) > 1 {
					<-release
				}
				return bus.Snapshot(), nil
			}),
		})
		startAll(t, a, b)
		before := b.Applies()

		bus.MutateFrom("A", "should-not-apply")
		time.Sleep(20 * ms)
		synctest.Wait()
		if n := calls.Load(); n != 2 {
			t.Fatalf("B's provider was called %d times; want 2 (start, then the blocked fetch)", n)
		}
		b.Stop()
		close(release)
		time.Sleep(50 * ms)

		if n := b.Applies(); n != before {
			t.Errorf("B applied %d snapshots; want %d (nothing after Stop)", n, before)
		}
		wantRevision(t, b, 0)
		if err := b.Wait(t.Context()); err != nil {
			t.Errorf("B.Wait() = %v; want nil", err)
		}
	})
}

// B-E2E-17, B-LIFE-06: a mutation 10 ms into a 50 ms start is not missed.
// The provider reads the store when the call begins, so the start applies
// the old data and only the invalidation received during Start can bring
// during-start.
func TestE2E17_MutationDuringStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "v0", nil)
		a := bus.NewWindow("A", nil)
		startAll(t, a)
		var first atomic.Bool
		first.Store(true)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{
			Provider: statesync.ProviderFunc(func(ctx context.Context, _ string) (statesync.Snapshot, error) {
				s := bus.Snapshot()
				if first.CompareAndSwap(true, false) {
					if err := sleep.For(ctx, 50*ms); err != nil {
						return statesync.Snapshot{}, err
					}
				}
				return s, nil
			}),
		})

		errc := make(chan error, 1)
		go func() { errc <- b.Start(context.Background()) }()
		time.Sleep(10 * ms)
		bus.MutateFrom("A", "during-start")
		if err := <-errc; err != nil {
			t.Fatalf("B.Start() = %v; want nil", err)
		}
		time.Sleep(200 * ms)

		wantLast(t, b, "during-start")
		wantRevision(t, b, 1)
		if got, want := e2e.Revisions(b.Applied()), []statesync.Revision{0, 1}; !slices.Equal(got, want) {
			t.Errorf("B applied revisions %v; want %v", got, want)
		}
	})
}

// B-E2E-18: the whole cluster is stopped, the store changes, new windows
// start with the new data.
func TestE2E18_FullClusterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "epoch-1", nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)
		bus.Mutate("epoch-1-data")
		bus.WaitForConvergence(0)

		bus.DestroyWindow("A")
		bus.DestroyWindow("B")
		bus.Mutate("epoch-2-data")

		a2, b2 := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a2, b2)
		for _, w := range []*e2e.Window[string]{a2, b2} {
			wantLast(t, w, "epoch-2-data")
			wantRevision(t, w, 2)
			if n := w.Applies(); n != 1 {
				t.Errorf("%s applied %d snapshots; want 1", w.ID, n)
			}
		}
		wantLast(t, a, "epoch-1-data")
	})
}

// B-E2E-19, B-GATE-10: identical data at three revisions; the gate goes by
// revision, so everyone reaches revision 3.
func TestE2E19_IdenticalDataAdvancesRevision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "same", nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		bus.Mutate("same")
		bus.Mutate("same")
		bus.Mutate("same")
		bus.WaitForConvergence(0)

		if got := bus.Revision(); got != 3 {
			t.Errorf("bus.Revision() = %d; want 3", got)
		}
		wantRevision(t, a, 3)
		wantRevision(t, b, 3)
	})
}

// B-E2E-20: five cycles of mutate, start a new window, check it, destroy it.
func TestE2E20_RapidStopRestartCycles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		a := bus.NewWindow("A", nil)
		startAll(t, a)

		for cycle := 1; cycle <= 5; cycle++ {
			bus.Mutate(cycle * 10)
			b := bus.NewWindow("B-"+strconv.Itoa(cycle), nil)
			startAll(t, b)
			wantLast(t, b, cycle*10)
			wantRevision(t, b, bus.Revision())
			bus.DestroyWindow(b.ID)
		}
		bus.WaitForConvergence(0)
		wantLast(t, a, 50)
	})
}

// B-E2E-21: without mutations, windows stay at the initial state with one
// apply and one provider call each (no spurious refresh).
func TestE2E21_NoMutationsNoRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "pristine", nil)
		ws := []*e2e.Window[string]{bus.NewWindow("A", nil), bus.NewWindow("B", nil), bus.NewWindow("C", nil)}
		startAll(t, ws...)
		time.Sleep(100 * ms)

		for _, w := range ws {
			wantRevision(t, w, 0)
			if n := w.Applies(); n != 1 {
				t.Errorf("%s applied %d snapshots; want 1", w.ID, n)
			}
			if n := w.ProviderCalls(); n != 1 {
				t.Errorf("%s made %d provider calls; want 1", w.ID, n)
			}
			wantLast(t, w, "pristine")
		}
	})
}

// B-E2E-22: burst, 200 ms of calm, burst again.
func TestE2E22_BurstSilenceBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		for i := 1; i <= 10; i++ {
			bus.Mutate(i)
		}
		bus.WaitForConvergence(0)
		wantStore(t, bus, 10)
		wantLast(t, b, 10)

		time.Sleep(200 * ms)
		for i := 11; i <= 20; i++ {
			bus.Mutate(i)
		}
		bus.WaitForConvergence(0)
		wantStore(t, bus, 20)
		wantAtStore(t, bus, a, b)
		wantLast(t, a, 20)
		wantLast(t, b, 20)
	})
}

// B-E2E-23: a slow window destroyed while its fetch is in flight does not
// hold the others back, and applies nothing more.
func TestE2E23_DestroyedMidConvergence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "start", nil)
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{IPCDelay: new(50 * ms)})
		c := bus.NewWindow("C", nil)
		startAll(t, a, b, c)

		bus.Mutate("target")
		time.Sleep(10 * ms)
		bus.DestroyWindow("B")
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, a, c)
		time.Sleep(100 * ms)
		if n := b.Applies(); n != 1 {
			t.Errorf("destroyed B applied %d snapshots; want 1 (its start)", n)
		}
		wantRevision(t, b, 0)
	})
}

// B-E2E-24: a slow window is made fast at run time and catches up.
func TestE2E24_ReconfigureDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "v0", nil)
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{IPCDelay: new(200 * ms)})
		startAll(t, a, b)

		bus.Mutate("slow-phase")
		time.Sleep(300 * ms)
		wantLast(t, b, "slow-phase")

		bus.ConfigureWindow("B", e2e.WindowPatch{IPCDelay: new(time.Duration(0))})
		bus.Mutate("fast-phase")
		start := time.Now()
		bus.WaitForConvergence(0)
		if d := time.Since(start); d >= 200*ms {
			t.Errorf("B converged after %v; want less than its old 200 ms delay", d)
		}
		wantLast(t, b, "fast-phase")
	})
}

// B-E2E-25: fan-out of one mutation to 10 windows.
func TestE2E25_FanOutTenWindows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "zero", nil)
		var ws []*e2e.Window[string]
		for i := range 10 {
			ws = append(ws, bus.NewWindow("W"+strconv.Itoa(i), nil))
		}
		startAll(t, ws...)

		bus.Mutate("single")
		bus.WaitForConvergence(0)

		for _, w := range ws {
			wantRevision(t, w, bus.Revision())
			wantLast(t, w, "single")
		}
	})
}

// B-E2E-26: windows of 30, 20 and 10 ms start in parallel, then follow a
// mutation.
func TestE2E26_ConcurrentStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "concurrent", nil)
		a := bus.NewWindow("A", &e2e.WindowConfig[string]{IPCDelay: new(30 * ms)})
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{IPCDelay: new(20 * ms)})
		c := bus.NewWindow("C", &e2e.WindowConfig[string]{IPCDelay: new(10 * ms)})
		startConcurrently(t, a, b, c)
		wantAtStore(t, bus, a, b, c)

		bus.Mutate("after-concurrent-start")
		bus.WaitForConvergence(0)
		wantAtStore(t, bus, a, b, c)
		wantLast(t, a, "after-concurrent-start")
	})
}

// B-E2E-27: chain A→B→C: B reacts to chain:1 with chain:2, C reacts to
// chain:2 with chain:3.
func TestE2E27_DoubleCascadeChain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "idle", nil)
		react := func(id, on, then string) *e2e.WindowConfig[string] {
			return &e2e.WindowConfig[string]{OnApply: func(s e2e.Applied[string]) {
				if s.Data == on {
					bus.MutateFrom(id, then)
				}
			}}
		}
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", react("B", "chain:1", "chain:2"))
		c := bus.NewWindow("C", react("C", "chain:2", "chain:3"))
		startAll(t, a, b, c)

		bus.MutateFrom("A", "chain:1")
		time.Sleep(500 * ms)
		bus.WaitForConvergence(0)

		wantStore(t, bus, "chain:3")
		if got := bus.Revision(); got != 3 {
			t.Errorf("bus.Revision() = %d; want 3", got)
		}
		wantAtStore(t, bus, a, b, c)
		wantLast(t, a, "chain:3")
	})
}

type labeled struct {
	Count int    `json:"count"`
	Label string `json:"label"`
}

// B-E2E-28: B's provider interceptor rewrites label; the applier gets
// exactly what the provider returned.
func TestE2E28_SnapshotInterceptor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, labeled{0, "raw"}, nil)
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[labeled]{Interceptor: func(s statesync.Snapshot) statesync.Snapshot {
			var v map[string]any
			if err := json.Unmarshal(s.Data, &v); err != nil {
				panic(err)
			}
			v["label"] = "intercepted"
			s.Data, _ = json.Marshal(v)
			return s
		}})
		startAll(t, a, b)

		bus.Mutate(labeled{42, "raw"})
		bus.WaitForConvergence(0)

		wantLast(t, a, labeled{42, "raw"})
		wantLast(t, b, labeled{42, "intercepted"})
		wantNoErrors(t, a, b)
	})
}

var errIPC = errors.New("ipc failure")

// B-E2E-29, B-ERR-03, B-ERR-07: B's provider fails on calls 2 and 4 during
// 8 mutations 10 ms apart: B converges and reported each failure once, as
// getSnapshot errors.
func TestE2E29_IntermittentIPCFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		var calls atomic.Int32
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[int]{
			Provider: statesync.ProviderFunc(func(ctx context.Context, _ string) (statesync.Snapshot, error) {
				if n := calls.Add(1); n == 2 || n == 4 {
					return statesync.Snapshot{}, fmt.Errorf("%w #%d", errIPC, n)
				}
				if err := sleep.For(ctx, ms); err != nil {
					return statesync.Snapshot{}, err
				}
				return bus.Snapshot(), nil
			}),
		})
		startAll(t, a, b)

		for i := 1; i <= 8; i++ {
			bus.Mutate(i)
			time.Sleep(10 * ms)
		}
		bus.WaitForConvergence(0)

		wantRevision(t, b, bus.Revision())
		wantLast(t, b, 8)
		errs := b.Errors()
		if len(errs) != 2 {
			t.Fatalf("B reported %d errors (%v); want 2", len(errs), errs)
		}
		for _, e := range errs {
			if e.Phase != statesync.PhaseGetSnapshot || !errors.Is(e, errIPC) {
				t.Errorf("B reported %v (phase %q); want a getSnapshot error wrapping errIPC", e, e.Phase)
			}
		}
	})
}

// B-E2E-30: a fast (1 ms) and a slow (80 ms) window under a burst of 20:
// both converge on 20, the fast one applying at least as often.
func TestE2E30_AsymmetricDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		fast := bus.NewWindow("fast", &e2e.WindowConfig[int]{Provider: delayedProvider(bus, fixed(ms))})
		slow := bus.NewWindow("slow", &e2e.WindowConfig[int]{Provider: delayedProvider(bus, fixed(80*ms))})
		startAll(t, fast, slow)

		for i := 1; i <= 20; i++ {
			bus.Mutate(i)
		}
		bus.WaitForConvergence(10 * time.Second)

		wantAtStore(t, bus, fast, slow)
		if f, s := fast.Applies(), slow.Applies(); f < s {
			t.Errorf("fast applied %d snapshots, slow %d; want fast >= slow", f, s)
		}
		wantLast(t, fast, 20)
		wantLast(t, slow, 20)
	})
}

// B-E2E-31: a single window follows its own mutations.
func TestE2E31_SelfMutations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "alone", nil)
		a := bus.NewWindow("A", nil)
		startAll(t, a)

		bus.MutateFrom("A", "self-1")
		bus.MutateFrom("A", "self-2")
		bus.MutateFrom("A", "self-3")
		bus.WaitForConvergence(0)

		wantRevision(t, a, bus.Revision())
		wantLast(t, a, "self-3")
	})
}

// B-E2E-32: 100 synchronous mutations; the final one is not missed.
func TestE2E32_HundredMutations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		for i := 1; i <= 100; i++ {
			bus.Mutate(i)
		}
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, a, b)
		wantLast(t, a, 100)
		wantLast(t, b, 100)
	})
}

// B-E2E-33, B-GATE-09: the backend revision jumps from 0 to 999.
func TestE2E33_RevisionJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "start", nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		bus.Set(999, "jumped")
		bus.BroadcastToAll()
		bus.WaitForConvergence(0)

		wantRevision(t, a, 999)
		wantRevision(t, b, 999)
		wantLast(t, b, "jumped")
	})
}

// B-E2E-34, B-LIFE-13, B-LIFE-18: Stop twice is harmless and the revision
// survives it.
func TestE2E34_StopIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "x", nil)
		a := bus.NewWindow("A", nil)
		startAll(t, a)

		a.Stop()
		a.Stop()

		wantRevision(t, a, bus.Revision())
		if n := bus.Subscribers("A"); n != 0 {
			t.Errorf("bus.Subscribers(A) = %d; want 0", n)
		}
		if err := a.Wait(t.Context()); err != nil {
			t.Errorf("A.Wait() = %v; want nil", err)
		}
		if err := a.Refresh(t.Context()); err != nil {
			t.Errorf("A.Refresh() after Stop = %v; want nil", err)
		}
		if n := a.Applies(); n != 1 {
			t.Errorf("A applied %d snapshots; want 1", n)
		}
	})
}

// B-E2E-35, B-GATE-06: 20 mutations with a 10 ms pause every 5: B's applied
// revisions strictly increase.
func TestE2E35_AppliedRevisionsIncrease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		for i := 1; i <= 20; i++ {
			bus.Mutate(i)
			if i%5 == 0 {
				time.Sleep(10 * ms)
			}
		}
		bus.WaitForConvergence(0)

		wantIncreasing(t, a)
		wantIncreasing(t, b)
		if n := b.Applies(); n < 2 {
			t.Errorf("B applied %d snapshots; want at least 2", n)
		}
		wantLast(t, b, 20)
	})
}
