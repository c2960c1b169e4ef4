package statesync_test

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// goid returns the calling goroutine's id, read from its stack's header
// ("goroutine 42 [running]:").
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("goid: " + err.Error())
	}
	return id
}

// The refreshes that one invalidation starts in the consumers of a
// SharedProvider's topic run one after another on one goroutine, not on a
// goroutine each: the first fetches, the others take its snapshot.
func TestRunQueueOneGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 20, p)
		var mu sync.Mutex
		ids := make(map[uint64]int)
		for _, app := range r.apps {
			app.setHook(func(context.Context, statesync.Snapshot) error {
				mu.Lock()
				ids[goid()]++
				mu.Unlock()
				return nil
			})
		}
		p.calls.Store(0)
		p.set(2, "e")
		p.hold.Store(true) // the first refresh's fetch waits: the others queue behind it
		for _, c := range r.cs {
			c.Invalidate(shareInv(2, "e"))
		}
		synctest.Wait()
		wantCalls(t, p, 1)
		p.hold.Store(false)
		p.release <- struct{}{}
		synctest.Wait()
		wantCalls(t, p, 1)
		wantRevs(t, r, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)
		if len(ids) != 1 || ids[goid()] != 0 {
			t.Errorf("the 20 applies ran on goroutines %v; want one, not the test's", ids)
		}
		if n := statesync.RunQueueKept(r.cs[0]); n != 0 {
			t.Errorf("the run queue still refers to %d consumers after running them; want 0", n)
		}
	})
}

// A refresh queued behind one that blocks begins within a period or two of
// the watchdog: here consumer "a"'s applier waits for consumer "b"'s apply,
// which would otherwise never come. The watchdog starts a goroutine at its
// first look if fewer than 32 refreshes began since the busy spell began,
// else at its second; refreshes of an earlier spell do not count.
func TestRunQueuePassesStuck(t *testing.T) {
	tests := []struct {
		name    string
		front   int  // quick refreshes queued before a and b
		earlier bool // the quick ones in a spell of their own, before
		later   bool // b queued once the watchdog found nothing waiting
		within  time.Duration
	}{
		{"alone", 0, false, false, 3 * statesync.StuckAfter / 2},
		{"after quick ones", 40, false, false, 5 * statesync.StuckAfter / 2},
		{"after an earlier spell", 40, true, false, 3 * statesync.StuckAfter / 2},
		{"b later", 0, false, true, 3 * statesync.StuckAfter / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newShareProv(1, "e")
				r := newShareRig(t, tt.front+2, p)
				a, b := tt.front, tt.front+1
				appliedB, giveUp := make(chan struct{}), make(chan struct{})
				defer close(giveUp) // a failing test ends
				r.apps[a].setHook(func(context.Context, statesync.Snapshot) error {
					select {
					case <-appliedB:
					case <-giveUp:
					}
					return nil
				})
				r.apps[b].setHook(func(context.Context, statesync.Snapshot) error {
					close(appliedB)
					return nil
				})
				p.set(2, "e")
				if tt.earlier {
					for _, c := range r.cs[:tt.front] {
						c.Invalidate(shareInv(2, "e"))
					}
					synctest.Wait()
					time.Sleep(10 * statesync.StuckAfter)
				}
				cs := r.cs
				if tt.later {
					r.cs[a].Invalidate(shareInv(2, "e"))
					synctest.Wait()
					time.Sleep(5 * statesync.StuckAfter)
					cs = r.cs[b:]
				}
				t0 := time.Now()
				for _, c := range cs {
					c.Invalidate(shareInv(2, "e"))
				}
				synctest.Wait()
				if got := r.cs[b].Revision(); got != 1 {
					t.Fatalf("consumer b at revision %d before the watchdog looked; want 1 (queued behind a)", got)
				}
				select {
				case <-appliedB:
				case <-time.After(tt.within):
					t.Fatalf("consumer b still waits behind a after %v", time.Since(t0))
				}
				synctest.Wait()
				for i, c := range r.cs {
					if got := c.Revision(); got != 2 {
						t.Errorf("consumer %d at revision %d; want 2", i, got)
					}
				}
			})
		})
	}
}

// The watchdog doubles the queue's goroutines in each period in which few
// refreshes began, and leaves a queue that keeps up alone: 64 appliers of
// 1 ms each take a few milliseconds, not 64 (nor the ~11 that one more
// goroutine a period would take); 2,000 of 10 µs (100 a period) run on one
// goroutine, though they take 20 periods.
func TestRunQueueSpread(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		apply   time.Duration // each applier's time
		maxTook time.Duration
		oneG    bool // all on one goroutine
	}{
		{"slow appliers", 64, time.Millisecond, 8 * time.Millisecond, false},
		{"quick appliers", 2000, statesync.StuckAfter / 100, 20 * statesync.StuckAfter, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newShareProv(1, "e")
				r := newShareRig(t, tt.n, p)
				var mu sync.Mutex
				ids := make(map[uint64]bool)
				left := tt.n
				done := make(chan struct{})
				for _, app := range r.apps {
					app.setHook(func(context.Context, statesync.Snapshot) error {
						time.Sleep(tt.apply)
						mu.Lock()
						defer mu.Unlock()
						ids[goid()] = true
						if left--; left == 0 {
							close(done)
						}
						return nil
					})
				}
				p.set(2, "e")
				t0 := time.Now()
				for _, c := range r.cs {
					c.Invalidate(shareInv(2, "e"))
				}
				<-done
				took := time.Since(t0)
				t.Logf("%d appliers of %v took %v on %d goroutines", tt.n, tt.apply, took, len(ids))
				if took > tt.maxTook {
					t.Errorf("%d appliers of %v took %v; want at most %v", tt.n, tt.apply, took, tt.maxTook)
				}
				if tt.oneG && len(ids) != 1 {
					t.Errorf("%d goroutines ran the appliers; want 1", len(ids))
				}
			})
		})
	}
}

// Publishers delivering at once to the consumers of a SharedProvider's
// topic, while some of them stop: every consumer still started ends at the
// last revision, a stopped one's applier is not called after its Stop
// returned, and the queue lets go of every consumer.
func TestRunQueueConcurrentDeliveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, publishers, revs = 40, 4, 50
		p := newShareProv(1, "e")
		r := newShareRig(t, n, p)
		var stopped [n]atomic.Bool
		for i, app := range r.apps {
			app.setHook(func(context.Context, statesync.Snapshot) error {
				if stopped[i].Load() {
					t.Errorf("consumer %d applied after its Stop returned", i)
				}
				return nil
			})
		}
		var wg sync.WaitGroup
		for w := range publishers {
			wg.Go(func() {
				for rev := statesync.Revision(2); rev <= revs; rev++ {
					if w == 0 {
						p.set(rev, "e")
						if rev%10 == 0 { // stop a few consumers along the way
							c := int(rev/10) * 7 % n
							r.cs[c].Stop()
							stopped[c].Store(true)
						}
					}
					for i := w; i < n; i += publishers {
						r.cs[i].Invalidate(shareInv(rev, "e"))
					}
				}
			})
		}
		wg.Wait()
		p.set(revs, "e")
		for _, c := range r.cs {
			c.Invalidate(shareInv(revs, "e"))
		}
		time.Sleep(2 * statesync.StuckAfter)
		synctest.Wait()
		for i, c := range r.cs {
			if !stopped[i].Load() && c.Revision() != revs {
				t.Errorf("consumer %d at revision %d; want %d", i, c.Revision(), revs)
			}
		}
		if k := statesync.RunQueueKept(r.cs[0]); k != 0 {
			t.Errorf("the run queue refers to %d consumers when idle; want 0", k)
		}
	})
}
