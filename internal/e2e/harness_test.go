package e2e_test

// Tests of the harness itself (B-HARN-01..09, B-DEF-14): what the scenarios
// rely on must hold, and the checks they use must be able to fail.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/e2e"
	"github.com/statesync-go/statesync/statesynctest"
)

// fakeTB records what the harness reports instead of failing the test.
type fakeTB struct {
	*testing.T
	mu     sync.Mutex
	logs   []string
	errs   []string
	fatals []string
}

func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
}

// exitingTB is a fakeTB whose Fatalf ends the goroutine, as testing.T's does.
type exitingTB struct{ *fakeTB }

func (e exitingTB) Fatalf(format string, args ...any) {
	e.fakeTB.Fatalf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) reported() (logs, errs, fatals []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.logs), slices.Clone(f.errs), slices.Clone(f.fatals)
}

type received struct {
	inv statesync.Invalidation
	at  time.Time
}

// recorder is an InvalidationHandler that records what it receives and when.
type recorder struct {
	mu  sync.Mutex
	got []received
}

func (r *recorder) Invalidate(inv statesync.Invalidation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, received{inv, time.Now()})
}

func (r *recorder) InvalidateRaw([]byte) { panic("InvalidateRaw called by the in-process bus") }

func (r *recorder) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// subscribe registers a recorder as window id's handler.
func subscribe[T any](t *testing.T, bus *e2e.Bus[T], id string) *recorder {
	t.Helper()
	r := &recorder{}
	if _, err := bus.Subscriber(id).Subscribe(t.Context(), bus.Topic(), r); err != nil {
		t.Fatalf("Subscribe(%q) = %v; want nil", id, err)
	}
	return r
}

// B-HARN-01, B-DEF-14: the revision starts at 0, each mutation adds 1 and
// broadcasts {topic, revision, sourceId}.
func TestHarness01_MutateBumpsAndBroadcasts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "v0", nil)
		if bus.Topic() != "test" {
			t.Errorf("Topic() = %q; want test", bus.Topic())
		}
		if bus.Revision() != 0 {
			t.Errorf("Revision() = %d; want 0", bus.Revision())
		}
		r := subscribe(t, bus, "X")

		bus.Mutate("v1")
		bus.MutateFrom("A", "v2")

		if bus.Revision() != 2 || bus.Data() != "v2" {
			t.Errorf("store = %d %q; want 2 v2", bus.Revision(), bus.Data())
		}
		want := []statesync.Invalidation{{Topic: "test", Revision: 1}, {Topic: "test", Revision: 2, SourceID: "A"}}
		var got []statesync.Invalidation
		for _, x := range r.received() {
			got = append(got, x.inv)
		}
		if !slices.Equal(got, want) {
			t.Errorf("broadcasts = %+v; want %+v", got, want)
		}
		if _, err := bus.Subscriber("X").Subscribe(t.Context(), "other", r); err == nil {
			t.Errorf("Subscribe(other topic) = nil; want an error")
		}
	})
}

// B-HARN-02, B-DEF-14: failCount failures come before any delay; then the
// call waits the IPC delay (1 ms by default, the window's override if set),
// reads revision and data together and returns a fresh encoding; the
// interceptor sees and rewrites the result.
func TestHarness02_Provider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "v0", nil)
		p := bus.Provider("W")
		ctx := t.Context()
		bus.ConfigureWindow("W", e2e.WindowPatch{FailCount: new(2)})
		for i := range 2 {
			start := time.Now()
			_, err := p.Snapshot(ctx, "test")
			if !errors.Is(err, e2e.ErrSimulated) || !strings.Contains(err.Error(), "window W") {
				t.Errorf("call %d: Snapshot() = %v; want ErrSimulated for window W", i+1, err)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("call %d failed after %v; want 0 (before any delay)", i+1, d)
			}
		}
		start := time.Now()
		s, err := p.Snapshot(ctx, "test")
		if err != nil || s.Revision != 0 || string(s.Data) != `"v0"` {
			t.Errorf("third call = %v %s, %v; want 0 \"v0\", nil", s.Revision, s.Data, err)
		}
		if d := time.Since(start); d != e2e.DefaultIPCDelay {
			t.Errorf("call took %v; want the default %v", d, e2e.DefaultIPCDelay)
		}

		bus.ConfigureWindow("W", e2e.WindowPatch{IPCDelay: new(7 * ms)})
		start = time.Now()
		errc := make(chan error, 1)
		var got statesync.Snapshot
		go func() {
			var err error
			got, err = p.Snapshot(ctx, "test")
			errc <- err
		}()
		time.Sleep(3 * ms)
		bus.Mutate("v1") // during the call: the call reads after its delay
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 7*ms {
			t.Errorf("call took %v; want the window's 7ms", d)
		}
		if got.Revision != 1 || string(got.Data) != `"v1"` {
			t.Errorf("Snapshot() = %d %s; want 1 \"v1\" (read together after the delay)", got.Revision, got.Data)
		}

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := p.Snapshot(cctx, "test"); !errors.Is(err, context.Canceled) {
			t.Errorf("Snapshot(cancelled ctx) = %v; want context.Canceled", err)
		}

		iw := bus.NewWindow("I", &e2e.WindowConfig[string]{Interceptor: func(s statesync.Snapshot) statesync.Snapshot {
			s.Data = []byte(`"intercepted"`)
			return s
		}})
		startAll(t, iw)
		wantLast(t, iw, "intercepted")
	})
}

// B-HARN-02: each call serialises the data anew, so two windows never share
// bytes; with ShareSnapshots they share the store's (which shows that the
// probe used by the scenarios detects sharing).
func TestHarness02_SerializeSnapshots(t *testing.T) {
	for _, share := range []bool{false, true} {
		t.Run(fmt.Sprintf("share=%v", share), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bus := e2e.NewBus(t, []int{1, 2}, &e2e.BusConfig{ShareSnapshots: share})
				s1, err1 := bus.Provider("A").Snapshot(t.Context(), "test")
				s2, err2 := bus.Provider("B").Snapshot(t.Context(), "test")
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if string(s1.Data) != "[1,2]" || string(s2.Data) != "[1,2]" {
					t.Errorf("data = %s, %s; want [1,2]", s1.Data, s2.Data)
				}
				if got := sharesMemory(s1.Data, s2.Data); got != share {
					t.Errorf("the two calls share memory: %v; want %v", got, share)
				}
				if got := sharesMemory(s1.Data, bus.Snapshot().Data); got != share {
					t.Errorf("a call shares memory with the store: %v; want %v", got, share)
				}
			})
		})
	}
}

// B-HARN-03: delivery knobs, through the bus's statesynctest.Chaos.
// Synchronous by default; drops; duplicates; async delivery after Mutate
// returns; delays 0..MaxDelay, taking precedence over async.
func TestHarness03_Delivery(t *testing.T) {
	t.Run("sync", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, 0, nil)
			r := subscribe(t, bus, "X")
			bus.Mutate(1)
			if n := len(r.received()); n != 1 { // no wait: delivered inside Mutate
				t.Errorf("received %d events when Mutate returned; want 1", n)
			}
		})
	})
	t.Run("drop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, 0, &e2e.BusConfig{Faults: statesynctest.ChaosOptions{Drop: 1}})
			r := subscribe(t, bus, "X")
			for i := range 10 {
				bus.Mutate(i)
			}
			time.Sleep(100 * ms)
			if n := len(r.received()); n != 0 {
				t.Errorf("received %d events; want 0 (all dropped)", n)
			}
		})
	})
	t.Run("duplicate", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, 0, &e2e.BusConfig{Faults: statesynctest.ChaosOptions{Duplicate: 1}})
			r := subscribe(t, bus, "X")
			bus.Mutate(1)
			got := r.received() // no wait: both delivered inside Mutate
			if len(got) != 2 || got[0].inv != got[1].inv {
				t.Fatalf("received %+v when Mutate returned; want the same event twice", got)
			}
			if n := bus.Chaos().Stats().Duplicated; n != 1 {
				t.Errorf("Chaos().Stats().Duplicated = %d; want 1", n)
			}
		})
	})
	t.Run("async", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, 0, &e2e.BusConfig{Async: true})
			gate := make(chan struct{})
			r := &recorder{}
			_, err := bus.Subscriber("X").Subscribe(t.Context(), "test", handlerFunc(func(inv statesync.Invalidation) {
				<-gate // a synchronous delivery would block Mutate forever
				r.Invalidate(inv)
			}))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			bus.Mutate(1)
			close(gate)
			synctest.Wait()
			got := r.received()
			if len(got) != 1 || got[0].at != start {
				t.Errorf("received %+v; want 1 event, at once (next tick)", got)
			}
		})
	})
	t.Run("delay over async", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const jitter = 10 * ms
			bus := e2e.NewBus(t, 0, &e2e.BusConfig{Async: true, Faults: statesynctest.ChaosOptions{MaxDelay: jitter, Seed: 1}})
			var rs []*recorder
			for i := range 20 {
				rs = append(rs, subscribe(t, bus, fmt.Sprint("W", i)))
			}
			start := time.Now()
			bus.Mutate(1)
			time.Sleep(jitter)
			distinct := map[time.Duration]bool{}
			for i, r := range rs {
				got := r.received()
				if len(got) != 1 {
					t.Fatalf("W%d received %d events; want 1", i, len(got))
				}
				d := got[0].at.Sub(start)
				if d < 0 || d >= jitter {
					t.Errorf("W%d received after %v; want within [0, %v)", i, d, jitter)
				}
				distinct[d] = true
			}
			if len(distinct) < 10 {
				t.Errorf("20 deliveries at %d distinct delays; want them spread by the jitter", len(distinct))
			}
		})
	})
}

type handlerFunc func(statesync.Invalidation)

func (f handlerFunc) Invalidate(inv statesync.Invalidation) { f(inv) }
func (f handlerFunc) InvalidateRaw([]byte)                  {}

// B-HARN-04: mutex contention serialises provider calls and adds its delay
// to each.
func TestHarness04_MutexContention(t *testing.T) {
	for _, tc := range []struct {
		contention time.Duration
		want       []time.Duration
	}{
		{0, []time.Duration{ms, ms, ms, ms}},
		{5 * ms, []time.Duration{6 * ms, 12 * ms, 18 * ms, 24 * ms}},
	} {
		t.Run(tc.contention.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bus := e2e.NewBus(t, 0, &e2e.BusConfig{MutexContention: tc.contention})
				start := time.Now()
				var mu sync.Mutex
				var done []time.Duration
				var wg sync.WaitGroup
				for i := range 4 {
					wg.Go(func() {
						if _, err := bus.Provider(fmt.Sprint("W", i)).Snapshot(t.Context(), "test"); err != nil {
							t.Error(err)
						}
						mu.Lock()
						done = append(done, time.Since(start))
						mu.Unlock()
					})
				}
				wg.Wait()
				slices.Sort(done)
				if !slices.Equal(done, tc.want) {
					t.Errorf("calls finished at %v; want %v", done, tc.want)
				}
			})
		})
	}
}

// B-HARN-05: BroadcastToAll delivers the current revision synchronously,
// once, without source id, bypassing drops, duplicates, jitter and async.
func TestHarness05_BroadcastToAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{Async: true, Faults: statesynctest.ChaosOptions{Drop: 1, Duplicate: 1, MaxDelay: 10 * ms}})
		r1, r2 := subscribe(t, bus, "A"), subscribe(t, bus, "B")
		bus.MutateFrom("A", 1) // dropped for everyone
		bus.Set(5, 5)
		bus.BroadcastToAll()
		for _, r := range []*recorder{r1, r2} {
			got := r.received()
			if len(got) != 1 || got[0].inv != (statesync.Invalidation{Topic: "test", Revision: 5}) {
				t.Errorf("received %+v when BroadcastToAll returned; want exactly {test 5}", got)
			}
		}
		time.Sleep(100 * ms)
		if n := len(r1.received()); n != 1 {
			t.Errorf("received %d events; want 1 (no duplicate)", n)
		}
	})
}

// B-HARN-06: DestroyWindow stops, unsubscribes and unregisters a window;
// ConfigureWindow changes delay and failCount at run time; custom
// provider, applier and subscriber replace the defaults.
func TestHarness06_DestroyConfigureCustom(t *testing.T) {
	t.Run("destroy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, 0, nil)
			a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
			startAll(t, a, b)
			if n := bus.Subscribers("A"); n != 1 {
				t.Errorf("Subscribers(A) = %d; want 1", n)
			}
			bus.DestroyWindow("A")
			if n := bus.Subscribers("A"); n != 0 {
				t.Errorf("Subscribers(A) after DestroyWindow = %d; want 0", n)
			}
			if bus.Window("A") != nil || slices.Contains(bus.Windows(), a) || !slices.Contains(bus.AllWindows(), a) {
				t.Errorf("A is still registered, or forgotten by AllWindows")
			}
			if err := a.Start(t.Context()); !errors.Is(err, statesync.ErrStartAfterStop) {
				t.Errorf("A.Start() after DestroyWindow = %v; want ErrStartAfterStop (stopped)", err)
			}
			bus.Mutate(1)
			bus.WaitForConvergence(0) // without A
			wantRevision(t, a, 0)
			wantRevision(t, b, 1)
			bus.DestroyWindow("nobody") // no-op
		})
	})
	t.Run("configure", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, 0, nil)
			a := bus.NewWindow("A", nil)
			startAll(t, a)
			bus.ConfigureWindow("A", e2e.WindowPatch{FailCount: new(1), IPCDelay: new(22 * ms)})
			bus.Mutate(1)
			time.Sleep(50 * ms)
			errs := a.Errors()
			if len(errs) != 1 || errs[0].Phase != statesync.PhaseGetSnapshot || !errors.Is(errs[0], e2e.ErrSimulated) {
				t.Fatalf("A reported %v; want one simulated getSnapshot failure", errs)
			}
			start := time.Now()
			bus.Mutate(2)
			bus.WaitForConvergence(0)
			if d := time.Since(start); d != 25*ms {
				t.Errorf("converged after %v; want 25ms (the new 22 ms delay, seen on the 5 ms poll grid)", d)
			}
		})
	})
	t.Run("custom", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, "v0", nil)
			var provided, applied, subscribed int
			var mu sync.Mutex
			w := bus.NewWindow("C", &e2e.WindowConfig[string]{
				Provider: statesync.ProviderFunc(func(ctx context.Context, topic string) (statesync.Snapshot, error) {
					mu.Lock()
					provided++
					mu.Unlock()
					return bus.Snapshot(), nil
				}),
				Applier: statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
					mu.Lock()
					applied++
					mu.Unlock()
					return nil
				}),
				Subscriber: statesync.SubscriberFunc(func(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
					mu.Lock()
					subscribed++
					mu.Unlock()
					return bus.Subscriber("C").Subscribe(ctx, topic, h)
				}),
			})
			startAll(t, w)
			bus.Mutate("v1")
			bus.WaitForConvergence(0)
			mu.Lock()
			defer mu.Unlock()
			if provided != 2 || applied != 2 || subscribed != 1 || w.ProviderCalls() != 2 {
				t.Errorf("provider %d (counted %d), applier %d, subscriber %d calls; want 2, 2, 2, 1",
					provided, w.ProviderCalls(), applied, subscribed)
			}
			if n := w.Applies(); n != 0 {
				t.Errorf("harness history has %d entries with a custom applier; want 0", n)
			}
		})
	})
}

// B-HARN-07, B-DEF-14: WaitForConvergence polls every 5 ms and gives up
// after the timeout, listing each window's revision.
func TestHarness07_Convergence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		a := bus.NewWindow("A", &e2e.WindowConfig[int]{IPCDelay: new(12 * ms)})
		bus.NewWindow("B", nil) // never started: stays at 0
		startAll(t, a)

		bus.Mutate(1)
		start := time.Now()
		bus.DestroyWindow("B")
		bus.WaitForConvergence(0)
		if d := time.Since(start); d != 15*ms {
			t.Errorf("convergence seen after %v; want 15ms (fetch done at 12 ms, polls every 5 ms)", d)
		}

		bus.NewWindow("B", nil)
		start = time.Now()
		err := bus.Converge(50 * ms)
		if err == nil {
			t.Fatalf("Converge() = nil with B at 0 and the store at 1; want an error")
		}
		if d := time.Since(start); d < 50*ms || d > 55*ms {
			t.Errorf("Converge gave up after %v; want 50 to 55 ms", d)
		}
		for _, s := range []string{"store=1", "A=1", "B=0", "50ms"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Converge() = %q; want it to mention %q", err, s)
			}
		}

		f := &fakeTB{T: t}
		fbus := e2e.NewBus(f, 0, nil)
		fbus.NewWindow("Z", nil)
		fbus.Mutate(1)
		start = time.Now()
		fbus.WaitForConvergence(0)
		if _, _, fatals := f.reported(); len(fatals) != 1 || !strings.Contains(fatals[0], "Z=0") {
			t.Errorf("WaitForConvergence reported %q; want one failure naming Z=0", fatals)
		}
		if d := time.Since(start); d < e2e.DefaultConvergenceTimeout {
			t.Errorf("WaitForConvergence gave up after %v; want the default %v", d, e2e.DefaultConvergenceTimeout)
		}
	})
}

// B-HARN-08: errors are collected per window (and passed on to the user's
// OnError); OnApply runs synchronously inside apply, before the engine
// adopts the revision, and may mutate the bus.
func TestHarness08_ErrorsAndOnApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		var userErrs []*statesync.Error
		var w *e2e.Window[int]
		var seen []string
		w = bus.NewWindow("W", &e2e.WindowConfig[int]{
			FailCount: 1,
			Options:   statesync.ConsumerOptions{OnError: func(e *statesync.Error) { userErrs = append(userErrs, e) }},
			OnApply: func(a e2e.Applied[int]) {
				seen = append(seen, fmt.Sprintf("apply %d at engine revision %d, history %d", a.Revision, w.Revision(), w.Applies()))
				if a.Data == 1 {
					bus.Mutate(2) // re-enters the engine from inside its applier
				}
			},
		})
		if err := w.Start(t.Context()); err == nil {
			t.Fatalf("Start() = nil; want the simulated failure")
		}
		errs := w.Errors()
		if len(errs) != 1 || !errors.Is(errs[0], e2e.ErrSimulated) || len(userErrs) != 1 || userErrs[0] != errs[0] {
			t.Errorf("collected %v, user OnError got %v; want the same single simulated failure", errs, userErrs)
		}
		startAll(t, w)
		bus.Mutate(1)
		bus.WaitForConvergence(0)
		want := []string{
			"apply 0 at engine revision 0, history 1",
			"apply 1 at engine revision 0, history 2",
			"apply 2 at engine revision 1, history 3",
		}
		if !slices.Equal(seen, want) {
			t.Errorf("OnApply saw %q; want %q", seen, want)
		}
		wantRevision(t, w, 2)
	})
}

// B-HARN-09: the seed is the bus's Chaos's: logged, fixed by
// BusConfig.Faults.Seed or overridden by STATESYNC_CHAOS_SEED, and the
// same seed gives the same deliveries.
func TestHarness09_Seed(t *testing.T) {
	t.Setenv(statesynctest.SeedEnv, "") // this test chooses its seeds
	deliveries := func(t *testing.T, seed int64) [][]statesync.Revision {
		var out [][]statesync.Revision
		synctest.Test(t, func(t *testing.T) {
			bus := e2e.NewBus(t, 0, &e2e.BusConfig{Faults: statesynctest.ChaosOptions{Seed: seed, Drop: 0.5, MaxDelay: 5 * ms}})
			var rs []*recorder
			for i := range 5 {
				rs = append(rs, subscribe(t, bus, fmt.Sprint("W", i)))
			}
			for i := 1; i <= 20; i++ {
				bus.Mutate(i)
			}
			time.Sleep(10 * ms)
			for _, r := range rs {
				var revs []statesync.Revision
				for _, x := range r.received() {
					revs = append(revs, x.inv.Revision)
				}
				slices.Sort(revs) // the order of equal-time deliveries is the scheduler's
				out = append(out, revs)
			}
		})
		return out
	}
	eq := func(a, b [][]statesync.Revision) bool { return slices.EqualFunc(a, b, slices.Equal) }
	if a, b := deliveries(t, 7), deliveries(t, 7); !eq(a, b) {
		t.Errorf("seed 7 delivered %v, then %v; want the same", a, b)
	}
	if a, b := deliveries(t, 7), deliveries(t, 8); eq(a, b) {
		t.Errorf("seeds 7 and 8 delivered the same %v; want different draws", a)
	}

	synctest.Test(t, func(t *testing.T) {
		f := &fakeTB{T: t}
		if got := e2e.NewBus(f, 0, &e2e.BusConfig{Faults: statesynctest.ChaosOptions{Seed: 9}}).Seed(); got != 9 {
			t.Errorf("Seed() = %d with Faults.Seed 9; want 9", got)
		}
		logs, _, _ := f.reported()
		if len(logs) != 1 || !strings.Contains(logs[0], "seed 9 ") {
			t.Errorf("logged %q; want the seed logged", logs)
		}
	})
	t.Setenv(statesynctest.SeedEnv, "12345")
	synctest.Test(t, func(t *testing.T) {
		f := &fakeTB{T: t}
		if got := e2e.NewBus(f, 0, nil).Seed(); got != 12345 {
			t.Errorf("Seed() = %d with %s=12345; want 12345", got, statesynctest.SeedEnv)
		}
		if got := e2e.NewBus(f, 0, &e2e.BusConfig{Faults: statesynctest.ChaosOptions{Seed: 9}}).Seed(); got != 12345 {
			t.Errorf("Seed() = %d with Faults.Seed 9 and %s=12345; want 12345", got, statesynctest.SeedEnv)
		}
		logs, _, _ := f.reported()
		if len(logs) != 2 || !strings.Contains(logs[0], "12345") || !strings.Contains(logs[1], "12345") {
			t.Errorf("logged %q; want each seed logged", logs)
		}
	})
	t.Setenv(statesynctest.SeedEnv, "x")
	synctest.Test(t, func(t *testing.T) {
		f := &fakeTB{T: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			e2e.NewBus(exitingTB{f}, 0, nil)
		}()
		<-done
		if _, _, fatals := f.reported(); len(fatals) != 1 || !strings.Contains(fatals[0], statesynctest.SeedEnv) {
			t.Errorf("a bad %s reported %q; want one failure naming it", statesynctest.SeedEnv, fatals)
		}
	})
}

// B-HARN-09: Between stays within its bounds.
func TestHarness09_Between(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		for range 1000 {
			if d := bus.Between(10*ms, 100*ms); d < 10*ms || d >= 100*ms {
				t.Fatalf("Between(10ms, 100ms) = %v", d)
			}
		}
	})
}

func hist(entries ...string) []e2e.Applied[int] {
	var out []e2e.Applied[int]
	for _, e := range entries {
		epoch, rev, _ := strings.Cut(e, ":")
		r, err := strconv.ParseUint(rev, 10, 64)
		if err != nil {
			panic(err)
		}
		out = append(out, e2e.Applied[int]{Epoch: epoch, Revision: statesync.Revision(r)})
	}
	return out
}

// B-GATE-06: CheckApplied accepts histories that only move forward and
// rejects the others.
func TestCheckApplied(t *testing.T) {
	for _, tc := range []struct {
		h  []e2e.Applied[int]
		ok bool
	}{
		{hist(), true},
		{hist(":0", ":1", ":3"), true},
		{hist(":0", ":2", ":2"), false},
		{hist(":3", ":1"), false},
		{hist("e1:5", "e2:1", "e2:2", "e3:0"), true},
		{hist("e1:5", "e2:1", "e2:1"), false},
		{hist("e1:5", "e2:1", "e1:6"), false},
	} {
		if err := e2e.CheckApplied(tc.h); (err == nil) != tc.ok {
			t.Errorf("CheckApplied(%s) = %v; want ok=%v", e2e.FormatHistory(tc.h), err, tc.ok)
		}
	}
}

// Close reports, through Errorf, a window that applied data the store never
// had at that revision, or a revision the store never had.
func TestCloseChecksAppliedData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeTB{T: t}
		bus := e2e.NewBus(f, "v0", nil)
		forged := bus.NewWindow("F", &e2e.WindowConfig[string]{
			Provider: statesync.ProviderFunc(func(ctx context.Context, _ string) (statesync.Snapshot, error) {
				s := bus.Snapshot()
				if s.Revision == 1 {
					s.Data = []byte(`"forged"`)
				}
				if s.Revision == 2 {
					s.Revision = 77
				}
				return s, nil
			}),
		})
		honest := bus.NewWindow("H", nil)
		startAll(t, forged, honest)
		bus.Mutate("v1")
		time.Sleep(10 * ms)
		bus.Mutate("v2")
		time.Sleep(10 * ms)
		if err := bus.CheckWindow(honest); err != nil {
			t.Errorf("CheckWindow(H) = %v; want nil", err)
		}
		bus.Close()
		_, errs, _ := f.reported()
		if len(errs) != 1 || !strings.Contains(errs[0], `applied "forged" at revision 1`) ||
			!strings.Contains(errs[0], "revision 77") {
			t.Errorf("Close reported %q; want one report on F naming the forged data and revision 77", errs)
		}
	})
}
