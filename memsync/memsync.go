// Package memsync is the in-process transport of statesync: a [Bus] carries
// invalidations between goroutines of one process as Go values, without any
// encoding, and serves snapshots straight from a [statesync.Source].
//
// # Model
//
// A Bus is a [statesync.Subscriber] (consumers subscribe to topics) and,
// when made with a Source, a [statesync.Provider]; whoever owns the truth
// calls [Bus.Publish], as a Bus made with a Source does itself for each
// invalidation the Source emits. Delivery is synchronous: Publish calls
// every handler of the topic on the caller's goroutine before it returns. Handlers are looked up by topic, so an invalidation costs O(1)
// per interested handler, whatever the number of other topics and handlers.
//
// [statesync.Consumer] handlers return at once (they only record the
// revision and wake a goroutine), so a Publish to 10,000 consumers takes
// microseconds per consumer. Consumers made with
// [statesync.ConsumerOptions.InlineRefresh] instead refresh inside Publish,
// from the Bus's Source, which saves the goroutine hand-off (a refresh then
// costs a few hundred nanoseconds) and makes Publish return only once every
// such consumer has applied the new revision.
package memsync

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/statesync-go/statesync"
)

// A Bus delivers invalidations to the handlers subscribed to their topic.
// The zero value is not usable; make one with [New]. A Bus is safe for
// concurrent use; Publish may be called re-entrantly from a handler.
type Bus struct {
	src  *statesync.Source // nil: no provider
	stop func()

	mu     sync.Mutex // serialises changes to topics' handler lists
	topics sync.Map   // topic -> *topicSubs; entries are never removed
	// last is the entry of the topic published last: publishing to one
	// topic again skips the map (a string compare instead of a hash and a
	// lookup). Entries are never removed, so it never goes stale.
	last atomic.Pointer[topicSubs]
}

// topicSubs holds the handlers of a topic as an immutable slice that is
// replaced on change (or grown in place), so delivery takes no lock.
type topicSubs struct {
	name     string
	handlers atomic.Pointer[[]*sub]
	inactive int // unsubscribed entries still in handlers; protected by Bus.mu
}

type sub struct {
	h      statesync.InvalidationHandler
	active atomic.Bool
}

var (
	_ statesync.Subscriber     = (*Bus)(nil)
	_ statesync.SharedProvider = (*Bus)(nil)
	_ statesync.SnapshotPeeker = (*Bus)(nil)
)

// ErrNoSource is returned by [Bus.Snapshot] on a Bus made without a Source.
var ErrNoSource = errors.New("memsync: bus has no source")

// New returns a Bus. If src is not nil, the Bus follows it, delivering each
// invalidation src emits, and serves its snapshots; Close stops following.
func New(src *statesync.Source) *Bus {
	b := &Bus{src: src}
	if src != nil {
		// Watch fails only if src is closed, when it emits nothing more
		// and Snapshot returns statesync.ErrClosed.
		b.stop, _ = src.Watch(context.Background(), b.Publish)
	}
	return b
}

// Close stops following the Source. Subscriptions stay, and Publish still
// works. It is idempotent.
func (b *Bus) Close() error {
	if b.stop != nil {
		b.stop()
	}
	return nil
}

// Subscribe implements [statesync.Subscriber]. h receives every
// invalidation of topic notified after Subscribe returns and before the
// returned function is called.
func (b *Bus) Subscribe(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("memsync: nil handler")
	}
	s := &sub{h: h}
	s.active.Store(true)
	b.mu.Lock()
	ts := b.subs(topic)
	// Appending in place is safe: readers never look past the length of the
	// slice they loaded. So subscribing N handlers costs O(N), not O(N²).
	list := append(*ts.handlers.Load(), s)
	ts.handlers.Store(&list)
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.active.Store(false)
			b.mu.Lock()
			ts.inactive++
			list := *ts.handlers.Load()
			// Compact into a new array once most entries are inactive, so
			// unsubscribing N handlers is O(N) overall too.
			if ts.inactive*2 > len(list) {
				kept := make([]*sub, 0, len(list)-ts.inactive)
				for _, x := range list {
					if x.active.Load() {
						kept = append(kept, x)
					}
				}
				ts.handlers.Store(&kept)
				ts.inactive = 0
			}
			b.mu.Unlock()
		})
	}, nil
}

// subs returns the handler list of topic, creating it. b.mu is held.
func (b *Bus) subs(topic string) *topicSubs {
	if v, ok := b.topics.Load(topic); ok {
		return v.(*topicSubs)
	}
	ts := &topicSubs{name: topic}
	ts.handlers.Store(new([]*sub))
	b.topics.Store(topic, ts)
	return ts
}

// Publish delivers inv to every handler of its topic, synchronously.
func (b *Bus) Publish(inv statesync.Invalidation) {
	// lookup written out: it costs too much to inline, and this is the
	// gate's path (gate_stale_events).
	ts := b.last.Load()
	if ts == nil || ts.name != inv.Topic {
		ts = b.lookupMap(inv.Topic)
	}
	if ts == nil {
		return
	}
	for _, s := range *ts.handlers.Load() {
		if s.active.Load() {
			s.h.Invalidate(inv)
		}
	}
}

// lookup returns topic's entry, or nil if nothing ever subscribed to it.
func (b *Bus) lookup(topic string) *topicSubs {
	if ts := b.last.Load(); ts != nil && ts.name == topic {
		return ts
	}
	return b.lookupMap(topic)
}

// lookupMap is lookup past its one-entry cache, which it updates.
func (b *Bus) lookupMap(topic string) *topicSubs {
	v, ok := b.topics.Load(topic)
	if !ok {
		return nil
	}
	ts := v.(*topicSubs)
	b.last.Store(ts)
	return ts
}

// PublishRaw delivers a raw invalidation payload to every handler of topic,
// which decode and validate it. It exists for tests of malformed input.
func (b *Bus) PublishRaw(topic string, payload []byte) {
	ts := b.lookup(topic)
	if ts == nil {
		return
	}
	for _, s := range *ts.handlers.Load() {
		if s.active.Load() {
			s.h.InvalidateRaw(payload)
		}
	}
}

// Subscribers returns the number of handlers subscribed to topic.
func (b *Bus) Subscribers(topic string) int {
	v, ok := b.topics.Load(topic)
	if !ok {
		return 0
	}
	n := 0
	for _, s := range *v.(*topicSubs).handlers.Load() {
		if s.active.Load() {
			n++
		}
	}
	return n
}

// PeekSnapshot implements [statesync.SnapshotPeeker] with the Bus's
// Source.
func (b *Bus) PeekSnapshot(topic string) (statesync.Snapshot, bool) {
	if b.src == nil {
		return statesync.Snapshot{}, false
	}
	return b.src.PeekSnapshot(topic)
}

// SharedSnapshots marks a Bus as a [statesync.SharedProvider]: its Source's
// snapshots are the same for every consumer, so the consumers of one topic
// on one Bus share fetches.
func (b *Bus) SharedSnapshots() {}

// Snapshot implements [statesync.Provider] with the Bus's Source.
func (b *Bus) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	if b.src == nil {
		return statesync.Snapshot{}, ErrNoSource
	}
	return b.src.Snapshot(ctx, topic)
}
