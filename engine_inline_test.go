package statesync_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// InlineRefresh: the refresh an invalidation starts runs on the delivering
// goroutine, so it is done when Invalidate returns.
func TestEngineInlineRefreshDoneOnReturn(t *testing.T) {
	e := newEngEnv(t, &statesync.ConsumerOptions{InlineRefresh: true})
	e.start(t)
	for rev := statesync.Revision(2); rev <= 50; rev++ {
		e.prov.set(rev, `"v"`)
		e.sub.send(engInv(rev))
		if got := e.c.Revision(); got != rev {
			t.Fatalf("Revision() right after Invalidate(%v) = %v; want %v", rev, got, rev)
		}
	}
	if got, want := e.prov.count(), 50; got != want {
		t.Errorf("provider calls = %d; want %d (one per newer invalidation)", got, want)
	}
	// A stale invalidation is still dropped without a fetch.
	e.sub.send(engInv(3))
	if got := e.prov.count(); got != 50 {
		t.Errorf("provider calls after a stale invalidation = %d; want 50", got)
	}
}

// InlineRefresh keeps B-COAL-01/02: invalidations that arrive while an
// inline refresh is in flight return at once and coalesce into one more
// refresh, which the in-flight one runs before its Invalidate returns.
func TestEngineInlineRefreshCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{InlineRefresh: true})
		e.start(t)
		release := make(chan struct{})
		e.prov.setHook(func(ctx context.Context, call int) error {
			if call == 2 {
				<-release
			}
			return nil
		})
		e.prov.set(2, `"v2"`)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.sub.send(engInv(2)) // blocks in the provider
		}()
		synctest.Wait()
		for rev := statesync.Revision(3); rev <= 100; rev++ {
			e.prov.set(rev, `"v"`)
			e.sub.send(engInv(rev)) // must not block
		}
		select {
		case <-done:
			t.Fatal("the inline Invalidate returned while its provider call was blocked")
		default:
		}
		close(release)
		<-done
		if got, want := e.app.revs(), []statesync.Revision{1, 2, 100}; !slices.Equal(got, want) {
			t.Errorf("applied revisions = %v; want %v", got, want)
		}
		if got := e.prov.count(); got != 3 {
			t.Errorf("provider calls = %d; want 3 (start, the inline one, one coalesced)", got)
		}
	})
}

// InlineRefresh and B-GO-03: an applier whose own write comes straight back
// as an invalidation does not deadlock; the echo is queued and applied
// before the outer Invalidate returns.
func TestEngineInlineRefreshReentrant(t *testing.T) {
	e := newEngEnv(t, &statesync.ConsumerOptions{InlineRefresh: true})
	e.start(t)
	var once sync.Once
	var sending atomic.Bool
	var outside atomic.Int32 // applies made while the delivery was not in progress
	e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
		if !sending.Load() {
			outside.Add(1)
		}
		if s.Revision == 2 {
			once.Do(func() {
				e.prov.set(3, `"echo"`)
				e.c.Invalidate(engInv(3))
			})
		}
		return nil
	})
	e.prov.set(2, `"v2"`)
	sending.Store(true)
	e.sub.send(engInv(2))
	sending.Store(false)
	if n := outside.Load(); n != 0 {
		t.Errorf("%d applies ran outside the delivery; want both inside it", n)
	}
	if got, want := e.app.revs(), []statesync.Revision{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("applied revisions = %v; want %v", got, want)
	}
	if got := string(e.app.last().Data); got != `"echo"` {
		t.Errorf("last applied data = %s; want \"echo\"", got)
	}
}

// InlineRefresh: a failed inline refresh is reported (on the delivering
// goroutine) and the next invalidation refreshes again; after Stop,
// Invalidate does nothing.
func TestEngineInlineRefreshErrorsAndStop(t *testing.T) {
	e := newEngEnv(t, &statesync.ConsumerOptions{InlineRefresh: true})
	e.start(t)
	boom := errors.New("boom")
	e.prov.setErr(boom)
	var sending, reportedInside atomic.Bool
	e.errs.mu.Lock()
	e.errs.hook = func(*statesync.Error) { reportedInside.Store(sending.Load()) }
	e.errs.mu.Unlock()
	sending.Store(true)
	e.sub.send(engInv(2))
	sending.Store(false)
	if !reportedInside.Load() {
		t.Error("the failed inline refresh was not reported during the delivery; want it reported on the delivering goroutine")
	}
	errs := e.errs.all()
	if len(errs) != 1 || errs[0].Phase != statesync.PhaseGetSnapshot || !errors.Is(errs[0], boom) {
		t.Fatalf("errors reported by the time Invalidate returned = %v; want one getSnapshot error wrapping boom", errs)
	}
	e.prov.setErr(nil)
	e.prov.set(2, `"v2"`)
	e.sub.send(engInv(2))
	if got := e.c.Revision(); got != 2 {
		t.Fatalf("Revision() after a good inline refresh = %v; want 2", got)
	}
	h := e.sub.handler()
	e.c.Stop()
	calls := e.prov.count()
	e.prov.set(3, `"v3"`)
	h.Invalidate(engInv(3))
	if got := e.prov.count(); got != calls {
		t.Errorf("provider calls after Stop = %d; want %d", got, calls)
	}
}

// InlineRefresh does not bypass the throttle: with one set, Invalidate
// returns at once and the refresh runs when the throttle fires.
func TestEngineInlineRefreshThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{InlineRefresh: true,
			Throttle: statesync.Throttle{Debounce: 10 * time.Millisecond}})
		e.start(t)
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		if got := e.c.Revision(); got != 1 {
			t.Fatalf("Revision() right after a debounced Invalidate = %v; want 1", got)
		}
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() after the debounce = %v; want 2", got)
		}
	})
}

// peekProvider is an engProvider that is also a SnapshotPeeker: PeekSnapshot
// returns the snapshot set with setPeek, if any.
type peekProvider struct {
	*engProvider
	mu    sync.Mutex
	snap  statesync.Snapshot
	ok    bool
	panic bool
	peeks int
}

func (p *peekProvider) setPeek(s statesync.Snapshot, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snap, p.ok = s, ok
}

func (p *peekProvider) PeekSnapshot(topic string) (statesync.Snapshot, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peeks++
	if p.panic {
		panic("peek")
	}
	return p.snap, p.ok
}

func (p *peekProvider) peekCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peeks
}

// newPeekEnv is newEngEnv with a peekProvider in front of e.prov.
func newPeekEnv(t *testing.T, opts *statesync.ConsumerOptions) (*engEnv, *peekProvider) {
	t.Helper()
	e := newEngEnv(t, nil)
	pp := &peekProvider{engProvider: e.prov}
	o := *opts
	o.OnError = e.errs.onError
	e.c = newEngConsumer(t, engTopic, e.sub, pp, e.app, &o)
	return e, pp
}

// InlineRefresh with a SnapshotPeeker: a snapshot at hand is applied on
// the delivering goroutine without calling Snapshot; the retry wrapper
// does not hide the peeker.
func TestEngineInlineRefreshPeekAtHand(t *testing.T) {
	for _, retry := range []bool{false, true} {
		opts := &statesync.ConsumerOptions{InlineRefresh: true}
		if retry {
			opts.Retry = &statesync.RetryPolicy{MaxAttempts: 3}
		}
		e, pp := newPeekEnv(t, opts)
		e.start(t)
		calls := e.prov.count()
		for rev := statesync.Revision(2); rev <= 10; rev++ {
			pp.setPeek(engSnap(rev, `"peeked"`), true)
			e.sub.send(engInv(rev))
			if got := e.c.Revision(); got != rev {
				t.Fatalf("retry=%v: Revision() right after Invalidate(%v) = %v; want %v", retry, rev, got, rev)
			}
		}
		if got := e.prov.count(); got != calls {
			t.Errorf("retry=%v: Snapshot calls = %d; want %d (every snapshot was at hand)", retry, got, calls)
		}
		if got := pp.peekCount(); got != 9 {
			t.Errorf("retry=%v: PeekSnapshot calls = %d; want 9", retry, got)
		}
	}
}

// InlineRefresh with a SnapshotPeeker: a snapshot not at hand is fetched
// on the consumer's goroutine, so Invalidate returns while the fetch
// blocks (B-GO-02 holds again); a peek that panics counts as not at hand.
func TestEngineInlineRefreshPeekNotAtHand(t *testing.T) {
	for _, panics := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			e, pp := newPeekEnv(t, &statesync.ConsumerOptions{InlineRefresh: true})
			e.start(t)
			pp.mu.Lock()
			pp.panic = panics
			pp.mu.Unlock()
			release := make(chan struct{})
			e.prov.setHook(func(ctx context.Context, call int) error {
				<-release
				return nil
			})
			e.prov.set(2, `"fetched"`)
			e.sub.send(engInv(2)) // returns: the fetch runs elsewhere
			synctest.Wait()
			if got := e.c.Revision(); got != 1 {
				t.Fatalf("panics=%v: Revision() while the fetch blocks = %v; want 1", panics, got)
			}
			close(release)
			synctest.Wait()
			if got := string(e.app.last().Data); got != `"fetched"` || e.c.Revision() != 2 {
				t.Errorf("panics=%v: last applied %s at %v; want \"fetched\" at 2", panics, got, e.c.Revision())
			}
			if n := e.errs.count(); n != 0 {
				t.Errorf("panics=%v: errors reported = %v; want none", panics, e.errs.all())
			}
		})
	}
}

// InlineRefresh with a SnapshotPeeker: a run queued during an inline run
// whose snapshot is no longer at hand goes to the consumer's goroutine;
// the delivering goroutine does not wait for its fetch.
func TestEngineInlineRefreshPeekHandsOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, pp := newPeekEnv(t, &statesync.ConsumerOptions{InlineRefresh: true})
		e.start(t)
		release := make(chan struct{})
		e.prov.setHook(func(ctx context.Context, call int) error {
			<-release
			return nil
		})
		var once sync.Once
		e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			if s.Revision == 2 {
				once.Do(func() {
					pp.setPeek(statesync.Snapshot{}, false) // revision 3 must be fetched
					e.prov.set(3, `"v3"`)
					e.c.Invalidate(engInv(3))
				})
			}
			return nil
		})
		pp.setPeek(engSnap(2, `"v2"`), true)
		e.sub.send(engInv(2)) // applies 2 inline, queues 3, hands it off, returns
		if got := e.c.Revision(); got != 2 {
			t.Fatalf("Revision() after the inline run = %v; want 2", got)
		}
		synctest.Wait()
		close(release)
		synctest.Wait()
		if got, want := e.app.revs(), []statesync.Revision{1, 2, 3}; !slices.Equal(got, want) {
			t.Errorf("applied revisions = %v; want %v", got, want)
		}
	})
}
