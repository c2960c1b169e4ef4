package statesync

import "context"

// An InvalidationHandler receives the invalidations of the topics it
// subscribed to. [Consumer] is an InvalidationHandler.
//
// Both methods are safe for concurrent and re-entrant use.
// [Consumer.Invalidate] and [Consumer.InvalidateRaw] return once the
// invalidation is recorded and its refresh handed to the consumer's own
// goroutine, with two exceptions: the consumer's ShouldRefresh callback,
// and its OnError callback for an invalidation it cannot handle (malformed,
// or a ShouldRefresh panic), run on the delivering goroutine; and with
// [ConsumerOptions.InlineRefresh] so does the refresh itself, provider,
// applier and error report included, the method returning once it is done.
// A transport therefore delivers on a goroutine that may wait, holding no
// lock that those callbacks, the provider or the applier may need.
type InvalidationHandler interface {
	// Invalidate handles a decoded invalidation. Transports that carry Go
	// values (in-process) call it without any encoding.
	Invalidate(inv Invalidation)
	// InvalidateRaw handles an invalidation payload as it came off the wire.
	// The handler validates it and reports a malformed payload rather than
	// dropping it silently.
	InvalidateRaw(payload []byte)
}

// A Subscriber delivers the invalidations of a topic to a handler.
//
// Subscribe registers h for topic and returns a function that removes it;
// after that function returns, no new delivery to h begins (one already
// under way on another goroutine may still complete: a Consumer ignores it
// once stopped), and calling it again does nothing. Delivery may be synchronous or not, and
// may lose, duplicate or reorder invalidations: the engine does not depend on
// delivery guarantees.
type Subscriber interface {
	Subscribe(ctx context.Context, topic string, h InvalidationHandler) (unsubscribe func(), err error)
}

// A Provider returns the latest snapshot of a topic.
//
// A Provider that decodes snapshots from outside returns a *[SnapshotError]
// for a malformed one (see [DecodeSnapshot]).
type Provider interface {
	Snapshot(ctx context.Context, topic string) (Snapshot, error)
}

// A SnapshotPeeker is a [Provider] that can tell, without blocking and
// without I/O, the snapshot its Snapshot method would return now, when it
// holds one: an httpsync.Client holding an inline snapshot of the topic, a
// [Source] (and so a memsync.Bus) with the topic in its cache.
// PeekSnapshot must never return a snapshot older than the one Snapshot
// would return at that moment; ok false means "ask Snapshot".
//
// A [Consumer] with [ConsumerOptions.InlineRefresh] uses it to run on the
// delivering goroutine only the refreshes that need no I/O.
type SnapshotPeeker interface {
	PeekSnapshot(topic string) (s Snapshot, ok bool)
}

// An Applier applies a snapshot to the consumer's state. The engine calls it
// at most once at a time per [Consumer], never while holding an engine lock,
// and only with a snapshot newer than the one applied last (or the first, or
// one from another epoch). [Consumer.Stop] cancels ctx and waits for the
// call to return, so Apply should return soon after ctx ends and must not
// wait for a goroutine that may be calling Stop.
type Applier interface {
	Apply(ctx context.Context, s Snapshot) error
}

// SubscriberFunc adapts a function to the [Subscriber] interface.
type SubscriberFunc func(ctx context.Context, topic string, h InvalidationHandler) (func(), error)

// Subscribe calls f.
func (f SubscriberFunc) Subscribe(ctx context.Context, topic string, h InvalidationHandler) (func(), error) {
	return f(ctx, topic, h)
}

// ProviderFunc adapts a function to the [Provider] interface.
type ProviderFunc func(ctx context.Context, topic string) (Snapshot, error)

// Snapshot calls f.
func (f ProviderFunc) Snapshot(ctx context.Context, topic string) (Snapshot, error) {
	return f(ctx, topic)
}

// ApplierFunc adapts a function to the [Applier] interface.
type ApplierFunc func(ctx context.Context, s Snapshot) error

// Apply calls f.
func (f ApplierFunc) Apply(ctx context.Context, s Snapshot) error { return f(ctx, s) }
