package statesync_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// overlapProbe counts how many provider and applier calls run at once.
type engOverlap struct {
	mu       sync.Mutex
	cur, max int
}

func (o *engOverlap) enter() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cur++
	o.max = max(o.max, o.cur)
}

func (o *engOverlap) leave() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cur--
}

func (o *engOverlap) peak() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.max
}

// B-COAL-01, B-GO-04: at most one refresh in flight; provider and applier
// calls never overlap, whatever mix of events, Refresh and Offer calls
// arrives from several goroutines.
func TestEngineCoalesceOneRefreshInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		var probe engOverlap
		e.prov.setHook(func(ctx context.Context, call int) error {
			probe.enter()
			time.Sleep(3 * time.Millisecond)
			probe.leave()
			return nil
		})
		e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			probe.enter()
			time.Sleep(2 * time.Millisecond)
			probe.leave()
			return nil
		})
		e.start(t)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					rev := statesync.Revision(2 + g*100 + i)
					switch i % 3 {
					case 0:
						e.prov.set(rev, `"x"`)
						e.sub.send(engInv(rev))
					case 1:
						// Goroutines race, so a fetched revision may be older
						// than an offered one (B-REV-13); nothing else may fail.
						if err := e.c.Refresh(context.Background()); err != nil && !errors.Is(err, statesync.ErrRevisionRegressed) {
							t.Errorf("Refresh() = %v; want nil or ErrRevisionRegressed", err)
						}
					case 2:
						if err := e.c.Offer(context.Background(), engSnap(rev, `"o"`)); err != nil && !errors.Is(err, statesync.ErrRevisionRegressed) {
							t.Errorf("Offer() = %v; want nil or ErrRevisionRegressed", err)
						}
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		if got := probe.peak(); got != 1 {
			t.Errorf("peak concurrent provider/applier calls = %d; want 1", got)
		}
	})
}

// B-COAL-02, B-COAL-04: events arriving while a fetch is in flight collapse
// into one extra run: 10 events during a 30 ms fetch and 3 events during a
// 50 ms fetch each cost 2 provider calls after Start.
func TestEngineCoalesceBurstDuringFetch(t *testing.T) {
	for _, tc := range []struct {
		events int
		fetch  time.Duration
	}{{10, 30 * time.Millisecond}, {3, 50 * time.Millisecond}} {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			e.prov.setDelay(tc.fetch)
			for i := range tc.events {
				rev := statesync.Revision(2 + i)
				e.prov.set(rev, `"v"`)
				e.sub.send(engInv(rev))
			}
			time.Sleep(10 * tc.fetch)
			if got := e.prov.count() - 1; got != 2 {
				t.Errorf("%d events during a %v fetch: provider calls after Start = %d; want 2", tc.events, tc.fetch, got)
			}
			if got, want := e.c.Revision(), statesync.Revision(1+tc.events); got != want {
				t.Errorf("Revision() = %v; want %v", got, want)
			}
		})
	}
}

// B-COAL-05: a manual Refresh and a concurrent event during a 40 ms fetch
// cause at most 2 provider calls.
func TestEngineCoalesceRefreshAndEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(40 * time.Millisecond)
		e.prov.set(2, `"v2"`)
		done := make(chan error)
		go func() { done <- e.c.Refresh(context.Background()) }()
		time.Sleep(5 * time.Millisecond)
		e.sub.send(engInv(2))
		if err := <-done; err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		time.Sleep(200 * time.Millisecond)
		if got := e.prov.count() - 1; got > 2 {
			t.Errorf("provider calls after Start = %d; want at most 2", got)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2}) {
			t.Errorf("applied revisions = %v; want [1 2]", got)
		}
	})
}

// B-COAL-06: coalescing stays on with a throttle: throttled triggers that
// fire while a fetch is in flight still collapse into one queued run.
func TestEngineCoalesceWithThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{Throttle: statesync.Throttle{Interval: 10 * time.Millisecond}})
		e.start(t)
		e.prov.setDelay(100 * time.Millisecond)
		for i := range 8 { // one event every 12 ms: every one passes the 10 ms throttle
			rev := statesync.Revision(2 + i)
			e.prov.set(rev, `"v"`)
			e.sub.send(engInv(rev))
			time.Sleep(12 * time.Millisecond)
		}
		time.Sleep(time.Second)
		if got := e.prov.count() - 1; got != 2 {
			t.Errorf("provider calls after Start = %d; want 2 (one in flight, one queued)", got)
		}
		if got := e.c.Revision(); got != 9 {
			t.Errorf("Revision() = %v; want 9", got)
		}
	})
}

// B-COAL-07, DESIGN §3: the in-flight decision is made synchronously in the
// event handler, so 1,000 events delivered back to back from one callback
// while a fetch is in flight cost exactly 2 fetches.
func TestEngineCoalesceSynchronousBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(time.Millisecond)
		e.prov.set(1001, `"last"`)
		h := e.sub.handler()
		for i := range 1000 {
			h.Invalidate(engInv(statesync.Revision(2 + i)))
		}
		time.Sleep(time.Second)
		if got := e.prov.count() - 1; got != 2 {
			t.Errorf("provider calls for a burst of 1000 = %d; want 2", got)
		}
		if got := e.c.Revision(); got != 1001 {
			t.Errorf("Revision() = %v; want 1001", got)
		}
	})
}

// B-COAL-08: Refresh returns after a run that began after the call: with a
// run in flight holding revision 2, a Refresh made while the source moves to
// 3 returns only once 3 is applied.
func TestEngineCoalesceRefreshWaitsForLaterRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(100 * time.Millisecond)
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2)) // run A reads revision 2 at t=0
		t0 := time.Now()
		time.Sleep(10 * time.Millisecond)
		e.prov.set(3, `"v3"`)
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		if got := e.c.Revision(); got != 3 {
			t.Errorf("Revision() when Refresh returned = %v; want 3", got)
		}
		if d := time.Since(t0); d != 200*time.Millisecond {
			t.Errorf("Refresh() returned at %v; want 200ms (end of the queued run)", d)
		}
	})
}

// B-COAL-08: Start whose initial refresh coalesces with a pre-start Refresh
// in flight returns only after a run that began after Start was called.
func TestEngineCoalesceStartWaitsForLaterRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.prov.setDelay(100 * time.Millisecond)
		go e.c.Refresh(context.Background()) // reads revision 1 at t=0
		time.Sleep(10 * time.Millisecond)
		e.prov.set(2, `"v2"`)
		e.start(t)
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() when Start returned = %v; want 2", got)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2}) {
			t.Errorf("applied revisions = %v; want [1 2]", got)
		}
	})
}

// B-COAL-09: a failed run still honours the queued request, once: the
// queued run applies, and there is no further run.
func TestEngineCoalesceFailedRunHonoursQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		boom := errors.New("transient")
		e.prov.setHook(func(ctx context.Context, call int) error {
			if call == 2 {
				time.Sleep(50 * time.Millisecond)
				return boom
			}
			return nil
		})
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		time.Sleep(10 * time.Millisecond)
		e.prov.set(3, `"v3"`)
		done := make(chan error)
		go func() { done <- e.c.Refresh(context.Background()) }() // queued behind the failing run
		time.Sleep(10 * time.Millisecond)
		e.sub.send(engInv(3))
		if err := <-done; err != nil {
			t.Errorf("Refresh() queued behind a failure = %v; want nil (its own run succeeded)", err)
		}
		time.Sleep(time.Second)
		if got := e.prov.count(); got != 3 {
			t.Errorf("provider calls = %d; want 3 (start, failed, queued)", got)
		}
		if got := e.c.Revision(); got != 3 {
			t.Errorf("Revision() = %v; want 3", got)
		}
		errs := e.errs.all()
		if len(errs) != 1 || !errors.Is(errs[0], boom) {
			t.Errorf("errors reported = %v; want exactly the transient one", errs)
		}
	})
}

// B-COAL-10: a queued run is skipped once the handle is stopped.
func TestEngineCoalesceQueuedRunSkippedAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(50 * time.Millisecond)
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		e.sub.send(engInv(3)) // queued
		time.Sleep(10 * time.Millisecond)
		e.c.Stop()
		time.Sleep(time.Second)
		if got := e.prov.count(); got != 2 {
			t.Errorf("provider calls = %d; want 2 (the queued run skipped)", got)
		}
		if got := e.app.count(); got != 1 {
			t.Errorf("applier calls = %d; want 1", got)
		}
	})
}

// B-COAL-11: a queued run re-fetches even if the previous snapshot already
// covered its event; the gate then skips the equal revision.
func TestEngineCoalesceQueuedRunRefetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(50 * time.Millisecond)
		e.prov.set(3, `"v3"`)
		e.sub.send(engInv(2)) // the fetch returns 3
		e.sub.send(engInv(3)) // queued although 3 is on its way
		time.Sleep(time.Second)
		if got := e.prov.count(); got != 3 {
			t.Errorf("provider calls = %d; want 3", got)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 3}) {
			t.Errorf("applied revisions = %v; want [1 3]", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}
