package statesync

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
)

// A SharedProvider is a [Provider] whose answers do not depend on who asks:
// two calls for a topic at the same moment return the same snapshot,
// whatever their contexts (beyond cancellation and [WithMinRevision]).
//
// The consumers of one SharedProvider and topic in a process then share
// their fetches: a refresh that an invalidation of revision R starts
// applies the newest snapshot another of them fetched, instead of fetching
// again, when that snapshot is of R's epoch and at revision R or later. So
// an invalidation delivered to a thousand consumers costs about one fetch,
// not a thousand, and the consumers still end at a revision at least as new
// as every invalidation they were sent. [Consumer.Start] and
// [Consumer.Refresh] always fetch (they are how a consumer catches up with
// what it was not sent), and a consumer never reuses its own fetch.
//
// The refreshes that invalidations start in such consumers (without
// [ConsumerOptions.InlineRefresh]) run one after another on a goroutine of
// the group, not on a goroutine each; should one block (a slow applier, an
// applier waiting for another consumer of the group), more goroutines take
// the others within a millisecond or two.
//
// [Source], memsync.Bus and httpsync.Client are SharedProviders. A provider
// whose answers depend on the caller (a per-user credential carried in the
// context, say) must not be one. Consumers that share a fetch are handed
// the same Data bytes, which are read-only (see [Snapshot]). Sharing needs
// a comparable provider value (a pointer, usually): others are not shared.
type SharedProvider interface {
	Provider
	// SharedSnapshots does nothing: it marks the provider as one whose
	// snapshots may be shared between its consumers.
	SharedSnapshots()
}

// shareKey identifies the consumers that share fetches: those of one
// provider and topic.
type shareKey struct {
	prov  Provider
	topic string
}

// A shareGroup is the newest snapshot fetched by the started consumers of
// one shareKey, the fetch one of them began last (under way, or landed),
// and how many of them there are.
type shareGroup struct {
	key    shareKey
	n      atomic.Int32 // its consumers; changed under shares.mu
	last   atomic.Pointer[sharedSnapshot]
	flight atomic.Pointer[fetchFlight]
	runs   runQueue // the refreshes invalidations requested (see runqueue.go)
}

// A fetchFlight is a fetch under way for a consumer of a share group: the
// others that want no newer revision than it asked for wait for it instead
// of fetching too.
type fetchFlight struct {
	g    *shareGroup
	by   *Consumer
	want minRevision // what the fetch asked for (WithMinRevision)
	done chan struct{}
	snap Snapshot // set before done is closed
	ok   bool     // the fetch succeeded
}

// sharedSnapshot is a fetched snapshot and the consumer that fetched it.
type sharedSnapshot struct {
	snap Snapshot
	by   *Consumer
}

// shares holds the share groups of the process's started consumers.
var shares struct {
	mu sync.Mutex
	m  map[shareKey]*shareGroup
}

// shareable reports whether prov's snapshots may be shared between its
// consumers: it is a SharedProvider and can be a map key.
func shareable(prov Provider) bool {
	_, ok := prov.(SharedProvider)
	return ok && reflect.TypeOf(prov).Comparable()
}

// joinShare returns the share group of prov and topic, counting one more
// consumer in it.
func joinShare(prov Provider, topic string) *shareGroup {
	k := shareKey{prov, topic}
	shares.mu.Lock()
	defer shares.mu.Unlock()
	g := shares.m[k]
	if g == nil {
		if shares.m == nil {
			shares.m = make(map[shareKey]*shareGroup)
		}
		g = &shareGroup{key: k}
		shares.m[k] = g
	}
	g.n.Add(1)
	return g
}

// leave counts one consumer out of g, which is forgotten with its last.
func (g *shareGroup) leave() {
	shares.mu.Lock()
	defer shares.mu.Unlock()
	if g.n.Add(-1) == 0 {
		delete(shares.m, g.key)
	}
}

// publish makes snap, fetched by c, the group's newest snapshot, unless the
// group holds one at least as new of the same epoch.
func (g *shareGroup) publish(c *Consumer, snap Snapshot) {
	n := &sharedSnapshot{snap: snap, by: c}
	for {
		old := g.last.Load()
		if old != nil && old.snap.Epoch == snap.Epoch && old.snap.Revision >= snap.Revision {
			return
		}
		if g.last.CompareAndSwap(old, n) {
			return
		}
	}
}

// joinOrLead returns the snapshot of the fetch another consumer of c's
// group began last, if refresh seq may use it (as for sibling) and that
// fetch asked for at least what c wants (want): it waits for the fetch if
// it is under way, and takes its snapshot if that is what c wants. Else it
// returns the flight c's own fetch is to land (nil if c is in no group).
//
// It waits until the fetch lands or ctx ends, whichever is first; if the
// fetch failed or brought another epoch or an older revision than c
// wants, or ctx ended, c fetches for itself.
func (c *Consumer) joinOrLead(ctx context.Context, g *shareGroup, seq uint64, want minRevision) (Snapshot, bool, *fetchFlight) {
	own := &fetchFlight{g: g, by: c, want: want, done: make(chan struct{})}
	for {
		f := g.flight.Load()
		if f == nil || f.by == c || seq == c.mustFetch.Load() || f.want.epoch != want.epoch || f.want.rev < want.rev {
			if g.flight.CompareAndSwap(f, own) {
				return Snapshot{}, false, own
			}
			continue // another consumer began a fetch meanwhile: look at it
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			g.flight.Store(own)
			return Snapshot{}, false, own
		}
		if f.ok && f.snap.Epoch == want.epoch && f.snap.Revision >= want.rev {
			return f.snap, true, nil
		}
		g.flight.Store(own)
		return Snapshot{}, false, own
	}
}

// land ends f with the fetch's result, which becomes the group's newest
// snapshot if it is.
func (f *fetchFlight) land(snap Snapshot, err error) {
	if err == nil {
		f.snap, f.ok = snap, true
		f.g.publish(f.by, snap)
	}
	close(f.done)
}

// fetchShared is fetch for a consumer of share group g, which has others:
// it takes the snapshot of the fetch another consumer has under way, if it
// may (see joinOrLead), or fetches and lands its flight. Its frame is kept
// out of fetch, so that a consumer alone in its group, or in none, does not
// pay for it.
//
//go:noinline
func (c *Consumer) fetchShared(ctx context.Context, g *shareGroup, seq uint64, want minRevision) (Snapshot, error) {
	s, ok, f := c.joinOrLead(ctx, g, seq, want)
	if ok {
		c.debug("refresh took another consumer's fetch")
		return s, nil
	}
	snap, err := c.callProvider(ctx)
	f.land(snap, err)
	return snap, err
}

// sibling returns the snapshot another consumer of c's share group fetched,
// if refresh seq may use it instead of fetching: seq serves no Start or
// Refresh, and the snapshot is of the epoch the newest invalidation that
// asked for a refresh named (none for none: an invalidation without epoch
// cannot tell an old epoch's snapshot from a new one's), at its revision or
// later. (If c has applied it already, the refresh ends there.)
func (c *Consumer) sibling(g *shareGroup, seq uint64) (Snapshot, bool) {
	if seq == c.mustFetch.Load() {
		return Snapshot{}, false
	}
	s := g.last.Load()
	if s == nil || s.by == c {
		return Snapshot{}, false
	}
	c.wantMu.Lock()
	want := c.want
	c.wantMu.Unlock()
	if s.snap.Epoch != want.epoch || s.snap.Revision < want.rev {
		return Snapshot{}, false
	}
	return s.snap, true
}
