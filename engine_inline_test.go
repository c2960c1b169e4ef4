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
	e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
		if s.Revision == 2 {
			once.Do(func() {
				e.prov.set(3, `"echo"`)
				e.c.Invalidate(engInv(3))
			})
		}
		return nil
	})
	e.prov.set(2, `"v2"`)
	e.sub.send(engInv(2))
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
	e.sub.send(engInv(2))
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
