package statesync_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// shareProv is a SharedProvider for the tests of fetch sharing: it serves
// the snapshot set last and counts its calls. With hold set, each call
// waits for a value on release (or its ctx) before answering; fail makes
// the calls that answer fail.
type shareProv struct {
	mu      sync.Mutex
	snap    statesync.Snapshot
	calls   atomic.Int64
	hold    atomic.Bool
	fail    atomic.Bool
	release chan struct{}
}

func newShareProv(rev statesync.Revision, epoch string) *shareProv {
	p := &shareProv{release: make(chan struct{})}
	p.set(rev, epoch)
	return p
}

func (p *shareProv) set(rev statesync.Revision, epoch string) {
	p.mu.Lock()
	p.snap = statesync.Snapshot{Revision: rev, Epoch: epoch, Data: []byte(`{}`)}
	p.mu.Unlock()
}

func (p *shareProv) SharedSnapshots() {}

func (p *shareProv) Snapshot(ctx context.Context, _ string) (statesync.Snapshot, error) {
	p.calls.Add(1)
	if p.hold.Load() {
		select {
		case <-p.release:
		case <-ctx.Done():
			return statesync.Snapshot{}, ctx.Err()
		}
	}
	if p.fail.Load() {
		return statesync.Snapshot{}, errors.New("shareProv: failing")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap, nil
}

// plainProv is a shareProv that is not a SharedProvider.
type plainProv struct{ p *shareProv }

func (p plainProv) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	return p.p.Snapshot(ctx, topic)
}

// funcShared is a SharedProvider that cannot be a map key.
type funcShared struct {
	f func(context.Context, string) (statesync.Snapshot, error)
}

func (p funcShared) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	return p.f(ctx, topic)
}

func (funcShared) SharedSnapshots() {}

// shareRig is n started consumers of one topic on a bus, all pulling from
// prov.
type shareRig struct {
	bus  *memsync.Bus
	cs   []*statesync.Consumer
	apps []*engApplier
	errs []*engErrs
}

func newShareRig(t *testing.T, n int, prov statesync.Provider) *shareRig {
	t.Helper()
	r := &shareRig{bus: memsync.New(nil)}
	for range n {
		app, errs := &engApplier{}, &engErrs{}
		c := newEngConsumer(t, engTopic, r.bus, prov, app, &statesync.ConsumerOptions{OnError: errs.onError})
		if err := c.Start(context.Background()); err != nil {
			t.Fatalf("Start() = %v", err)
		}
		r.cs, r.apps, r.errs = append(r.cs, c), append(r.apps, app), append(r.errs, errs)
	}
	return r
}

// to delivers inv to consumer i alone and waits until the bubble is idle.
func (r *shareRig) to(i int, inv statesync.Invalidation) {
	r.cs[i].Invalidate(inv)
	synctest.Wait()
}

// unstick lets the group's run queue watchdog look twice (see
// runqueue.go), so that a refresh queued behind one that blocks begins, and
// waits until the bubble is idle.
func unstick() {
	time.Sleep(2 * statesync.StuckAfter)
	synctest.Wait()
}

func shareInv(rev statesync.Revision, epoch string) statesync.Invalidation {
	return statesync.Invalidation{Topic: engTopic, Revision: rev, Epoch: epoch}
}

func wantRevs(t *testing.T, r *shareRig, want ...statesync.Revision) {
	t.Helper()
	for i, c := range r.cs {
		if got := c.Revision(); got != want[i] {
			t.Errorf("consumer %d at revision %d; want %d", i, got, want[i])
		}
	}
}

func wantCalls(t *testing.T, p *shareProv, want int64) {
	t.Helper()
	if got := p.calls.Load(); got != want {
		t.Errorf("provider calls = %d; want %d", got, want)
	}
}

// The consumers of a SharedProvider wait for the fetch one of them has
// under way instead of fetching too: a thousand consumers, one fetch.
func TestSharedProviderJoinsFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 3, p)
		wantCalls(t, p, 3) // each Start fetches
		p.calls.Store(0)
		p.set(2, "e")
		p.hold.Store(true)
		for i := range r.cs {
			r.to(i, shareInv(2, "e"))
		}
		wantCalls(t, p, 1) // the first leads, the others wait for it
		wantRevs(t, r, 1, 1, 1)
		p.hold.Store(false)
		close(p.release)
		synctest.Wait()
		wantCalls(t, p, 1)
		wantRevs(t, r, 2, 2, 2)
		if got := r.apps[1].count(); got != 2 {
			t.Errorf("consumer 1 applied %d snapshots; want 2 (start, then the shared fetch)", got)
		}
	})
}

// A fetch that another consumer finished is used if it is at least as new
// as the invalidation and newer than what the consumer has; an older one,
// another epoch's, or one for an invalidation without epoch is not.
func TestSharedProviderReusesFinishedFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 3, p)
		p.calls.Store(0)
		p.set(3, "e")
		r.to(0, shareInv(3, "e"))
		wantCalls(t, p, 1)
		r.to(1, shareInv(2, "e")) // 3 >= 2: no fetch
		wantCalls(t, p, 1)
		wantRevs(t, r, 3, 3, 1)

		p.set(4, "e")
		r.to(2, shareInv(4, "e")) // the group has 3 < 4: a fetch
		wantCalls(t, p, 2)
		r.to(0, shareInv(4, "e"))
		wantCalls(t, p, 2)
		wantRevs(t, r, 4, 3, 4)

		p.set(7, "f")
		r.to(1, shareInv(2, "f")) // another epoch: not the group's "e" at 4
		wantCalls(t, p, 3)
		r.to(2, shareInv(5, "")) // no epoch named: cannot tell "f" at 7 will do, so a fetch
		wantCalls(t, p, 4)
		wantRevs(t, r, 4, 7, 7)
	})
}

// A finished fetch that asked for less than a consumer wants but brought
// enough is used too (the group keeps its newest snapshot, whatever each
// fetch asked for), across rounds, across an epoch change, and when a
// Refresh fetched it.
func TestSharedProviderTakesFetchThatBroughtMore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 3, p)
		p.calls.Store(0)
		// Round 1: consumer 0 asks for 2 and gets 3; consumer 1 wants 3.
		p.set(3, "e")
		r.to(0, shareInv(2, "e"))
		r.to(1, shareInv(3, "e"))
		wantCalls(t, p, 1)
		// Round 2: the group's snapshot moves on to 5.
		p.set(5, "e")
		r.to(0, shareInv(4, "e"))
		r.to(1, shareInv(5, "e"))
		wantCalls(t, p, 2)
		// Round 3: another epoch, at a lower revision, replaces "e" at 5.
		p.set(2, "f")
		r.to(0, shareInv(1, "f"))
		r.to(1, shareInv(2, "f"))
		wantCalls(t, p, 3)
		wantRevs(t, r, 2, 2, 1)
		// Consumer 2 fetches "f" at 2 by Refresh, after a write the others
		// have not heard of: the group now holds 4.
		p.set(4, "f")
		if err := r.cs[2].Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
		wantCalls(t, p, 4)
		r.to(0, shareInv(4, "f"))
		wantCalls(t, p, 4)
		wantRevs(t, r, 4, 2, 4)
	})
}

// Start and Refresh always fetch, neither taking a finished fetch nor
// waiting for one under way: they are how a consumer catches up with what
// it was not sent, so another consumer's snapshot will not do. (Without
// epochs, which would keep the consumers apart here for another reason.)
func TestSharedProviderStartAndRefreshFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "")
		r := newShareRig(t, 2, p)
		p.calls.Store(0)
		p.set(2, "")
		r.to(0, shareInv(2, ""))
		wantCalls(t, p, 1)
		p.set(3, "")
		if err := r.cs[1].Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
		wantCalls(t, p, 2)
		p.set(4, "")
		c := newEngConsumer(t, engTopic, r.bus, p, &engApplier{}, nil)
		if err := c.Start(context.Background()); err != nil {
			t.Fatalf("Start() = %v", err)
		}
		wantCalls(t, p, 3)
		wantRevs(t, r, 2, 3)
		if c.Revision() != 4 {
			t.Errorf("new consumer at %d; want 4", c.Revision())
		}

		// A Refresh while another consumer's fetch is under way.
		p.set(5, "")
		p.hold.Store(true)
		r.to(0, shareInv(5, ""))
		done := make(chan error, 1)
		go func() { done <- r.cs[1].Refresh(context.Background()) }()
		synctest.Wait()
		wantCalls(t, p, 5)
		p.hold.Store(false)
		close(p.release)
		if err := <-done; err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
		synctest.Wait()
		wantRevs(t, r, 5, 5)
	})
}

// A consumer never takes its own fetch back from the group: after its
// applier failed, the next invalidation of that revision fetches again.
func TestSharedProviderOwnFetchNotReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 2, p)
		p.calls.Store(0)
		p.set(2, "e")
		r.apps[0].setErr(errors.New("apply failed"))
		r.to(0, shareInv(2, "e"))
		wantCalls(t, p, 1)
		if r.errs[0].count() != 1 {
			t.Fatalf("consumer 0 reported %d errors; want 1", r.errs[0].count())
		}
		r.apps[0].setErr(nil)
		r.to(0, shareInv(2, "e"))
		wantCalls(t, p, 2)
		wantRevs(t, r, 2, 1)
	})
}

// When the fetch a consumer waits for fails, or its consumer stops, the
// consumer fetches for itself; the failure is reported by the consumer
// whose fetch it was, only.
func TestSharedProviderLeaderFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 3, p)
		p.calls.Store(0)
		p.set(2, "e")
		p.hold.Store(true)
		r.to(0, shareInv(2, "e"))
		r.to(1, shareInv(2, "e"))
		wantCalls(t, p, 1)
		p.fail.Store(true)
		p.release <- struct{}{} // the leader's call fails; consumer 1 then fetches
		synctest.Wait()
		wantCalls(t, p, 2)
		p.fail.Store(false)
		p.release <- struct{}{}
		synctest.Wait()
		wantRevs(t, r, 1, 2, 1)
		if r.errs[0].count() != 1 || r.errs[1].count() != 0 {
			t.Errorf("errors reported: %d and %d; want 1 and 0", r.errs[0].count(), r.errs[1].count())
		}

		p.set(3, "e")
		r.to(1, shareInv(3, "e"))
		r.to(2, shareInv(3, "e"))
		wantCalls(t, p, 3)
		r.cs[1].Stop() // the leader stops: its call ends, consumer 2 fetches
		synctest.Wait()
		wantCalls(t, p, 4)
		p.hold.Store(false)
		close(p.release)
		synctest.Wait()
		wantRevs(t, r, 1, 2, 3)
	})
}

// A consumer waiting for another's fetch stops at once with Stop.
func TestSharedProviderStopWhileJoined(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 2, p)
		p.set(2, "e")
		p.hold.Store(true)
		r.to(0, shareInv(2, "e"))
		r.to(1, shareInv(2, "e"))
		r.cs[1].Stop()
		if err := r.cs[1].Wait(context.Background()); err != nil {
			t.Fatalf("Wait() = %v", err)
		}
		p.hold.Store(false)
		close(p.release)
		synctest.Wait()
		wantRevs(t, r, 2, 1)
		if r.errs[1].count() != 0 {
			t.Errorf("the stopped consumer reported %d errors; want 0", r.errs[1].count())
		}
	})
}

// A fetch that asked for less than a consumer wants is not waited for.
func TestSharedProviderJoinsOnlyNewEnough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 2, p)
		p.calls.Store(0)
		p.set(3, "e")
		p.hold.Store(true)
		r.to(0, shareInv(2, "e"))
		r.to(1, shareInv(3, "e")) // queued behind consumer 0's fetch, which it cannot take
		wantCalls(t, p, 1)
		unstick()
		wantCalls(t, p, 2)
		p.hold.Store(false)
		close(p.release)
		synctest.Wait()
		wantRevs(t, r, 3, 3)
	})
}

// Providers that are not SharedProviders, or cannot be map keys, are not
// shared; the share groups go with the last consumer.
func TestSharedProviderOnlyWhenShareable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := statesync.ShareGroups() // groups of consumers outside this test, if any
		p := newShareProv(1, "e")
		r := newShareRig(t, 3, plainProv{p})
		p.calls.Store(0)
		p.set(2, "e")
		for i := range r.cs {
			r.to(i, shareInv(2, "e"))
		}
		wantCalls(t, p, 3)
		if n := statesync.ShareGroups() - base; n != 0 {
			t.Errorf("%d share groups for a plain provider; want 0", n)
		}

		f := funcShared{f: p.Snapshot}
		r = newShareRig(t, 2, f)
		p.calls.Store(0)
		p.set(3, "e")
		r.to(0, shareInv(3, "e"))
		r.to(1, shareInv(3, "e"))
		wantCalls(t, p, 2)
		if n := statesync.ShareGroups() - base; n != 0 {
			t.Errorf("%d share groups for an uncomparable provider; want 0", n)
		}

		r = newShareRig(t, 2, p)
		if n := statesync.ShareGroups() - base; n != 1 {
			t.Errorf("%d share groups for one provider and topic; want 1", n)
		}
		r.cs[0].Stop()
		if n := statesync.ShareGroups() - base; n != 1 {
			t.Errorf("%d share groups with one consumer left; want 1", n)
		}
		r.cs[1].Stop()
		if n := statesync.ShareGroups() - base; n != 0 {
			t.Errorf("%d share groups after the last Stop; want 0", n)
		}
	})
}

// A consumer waits only for a fetch of the epoch it wants, asked for at
// least its revision, and takes its snapshot only if that is what it
// wants: another epoch's, or an older one (from a provider that ignores
// WithMinRevision), and it fetches for itself.
func TestSharedProviderJoinChecksFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newShareProv(1, "e")
		r := newShareRig(t, 2, p)
		p.calls.Store(0)
		p.hold.Store(true)
		r.to(0, shareInv(5, "e"))
		r.to(1, shareInv(2, "f")) // not waiting for "e"'s fetch, once the watchdog looked
		unstick()
		wantCalls(t, p, 2)
		p.set(2, "f")
		p.release <- struct{}{}
		p.release <- struct{}{}
		synctest.Wait()
		wantRevs(t, r, 2, 2) // consumer 0 took "f" at 2 for its "e" at 5: a new epoch

		p.calls.Store(0)
		r.to(0, shareInv(3, "f"))
		r.to(1, shareInv(3, "f")) // waits for consumer 0's fetch
		wantCalls(t, p, 1)
		p.set(9, "g") // which brings another epoch: consumer 1 fetches
		p.release <- struct{}{}
		unstick()
		wantCalls(t, p, 2)
		p.release <- struct{}{}
		synctest.Wait()
		wantRevs(t, r, 9, 9)

		p.calls.Store(0)
		r.to(0, shareInv(11, "g"))
		r.to(1, shareInv(11, "g")) // waits for consumer 0's fetch
		wantCalls(t, p, 1)
		p.set(10, "g") // which brings an older revision: consumer 1 fetches
		p.release <- struct{}{}
		unstick()
		wantCalls(t, p, 2)
		p.set(11, "g")
		p.release <- struct{}{}
		synctest.Wait()
		wantRevs(t, r, 10, 11)
		p.hold.Store(false)
		close(p.release)
	})
}
