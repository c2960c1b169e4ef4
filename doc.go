// Package statesync keeps one logical piece of state consistent across
// goroutines, processes, machines and browser tabs with the invalidation-pull
// protocol, compatible on the wire with the TypeScript state-sync clients
// (@statesync/core).
//
// This package holds the protocol vocabulary, the consumer engine, the
// source of truth and the small interfaces transports implement. It imports
// only the standard library; transports live in leaf packages (memsync for
// in-process use, httpsync for HTTP).
//
// # Model
//
// A source of truth owns a set of topics. Each topic has a [Revision], an
// unsigned 64-bit counter that grows with every write. After a write is
// committed the source emits a tiny [Invalidation] {topic, revision}; it
// carries no data. A consumer that sees a revision newer than its own pulls
// the topic's latest [Snapshot] {revision, data} and applies it only if it is
// newer than what it applied last. Lost, duplicated and reordered
// invalidations are therefore harmless: the pull always fetches the latest,
// and the revision gate rejects the stale.
//
// The truth side is a [Source] over a [Store] ([MemoryStore] here; durable
// stores live in their own packages). [Source.Put], [Source.PutIf],
// [Source.Update] and [Source.Delete] write; [Source.Watch] observes the
// invalidations; [Source.Snapshot] serves snapshots.
//
// The consumer side is a [Consumer], one per topic, made by [NewConsumer]
// from three parts:
//
//   - a [Subscriber], which delivers invalidations to the consumer (the
//     consumer is a [Handler]);
//   - a [Provider], which returns the latest snapshot;
//   - an [Applier], which puts a snapshot into your state.
//
// The adapters [SubscriberFunc], [ProviderFunc] and [ApplierFunc] turn
// functions into these interfaces.
//
// # Guarantees
//
// For each [Consumer]:
//
//   - The revisions of applied snapshots strictly increase within an epoch
//     (see Epochs). The first snapshot is always applied, even at revision
//     0, and [Consumer.Revision] is the revision of the last one applied.
//   - The provider and applier are never called concurrently, and never with
//     an engine lock held.
//   - However fast invalidations arrive, at most one refresh is in flight
//     and at most one is queued, and the memory used does not grow.
//   - Once [Consumer.Stop] returns, no provider or applier call begins, no
//     revision is adopted and nothing more is reported; every Start, Refresh
//     or Offer call waiting on the consumer has been released.
//   - No change is missed: [Consumer.Start] subscribes before it pulls, and
//     a request that arrives while a refresh is in flight causes one more
//     refresh after it, even if the first one failed.
//   - Malformed input never crashes or stalls the consumer: it is reported
//     and dropped.
//
// For a [Source]: a write that succeeds gives its topic a higher revision,
// invalidations are emitted only after the write is committed, and a
// snapshot's revision and data are always read together.
//
// # Engine rules
//
// Gate. An invalidation whose revision is not greater than the consumer's
// (in the same epoch) costs no fetch. Before anything is applied the
// consumer's revision is 0, so an invalidation at revision 0 is dropped and
// any other triggers a refresh. A fetched snapshot is applied only if its
// revision is greater than the applied one (the first snapshot always is);
// an equal one is skipped silently.
//
// Coalescing. A refresh request (an invalidation that passed the gate, a
// trailing throttle edge, [Consumer.Refresh]) that arrives while a refresh
// is in flight sets a single "pending" flag. When the refresh ends, one more
// runs if the flag is set, whatever the number of requests: a burst of 1,000
// invalidations during a fetch causes exactly one more fetch. A failed
// refresh still honours the pending request.
//
// Throttling. [ConsumerOptions.Throttle] can debounce and rate-limit the
// refreshes caused by invalidations; Start, Refresh and Offer are never
// throttled. See [Throttle].
//
// Filtering. [ConsumerOptions.ShouldRefresh] sees each invalidation that
// passed validation, the topic match and the gate, and may drop it; the
// usual use skips the echo of one's own writes by [Invalidation.SourceID]
// (set with [WithSourceID]). [Consumer.Offer] then applies the snapshot the
// write returned, through the same gate, so the writer moves past its write
// without pulling it back.
//
// Lifecycle. [Consumer.Start] subscribes, then refreshes, and returns once
// the initial snapshot has been applied or skipped; on failure it undoes the
// subscription and may be called again. [Consumer.Refresh] returns once a
// refresh that began after the call has finished, with that refresh's
// error. [Consumer.Stop] cancels the context given to the provider and
// applier; [Consumer.Wait] waits for the calls in flight to return. A
// Consumer is single-use: Start after Stop returns [ErrStartAfterStop].
//
// Retry and timeouts. [ConsumerOptions.FetchTimeout] bounds each provider
// call; [ConsumerOptions.Retry] retries failed calls inside one refresh with
// exponential backoff and optional jitter (see [RetryPolicy]). Retry delays
// end as soon as the consumer stops.
//
// # Epochs
//
// An epoch is an optional opaque string carried by invalidations and
// snapshots. It names one continuous history of revisions: a
// [MemoryStore] picks a random one at creation, so a restarted process, or a
// store restored from a backup, has another. A consumer that sees an epoch
// different from the one it applied knows the revisions are no longer
// comparable: it refreshes whatever the invalidation's revision, applies
// the snapshot whatever its revision, and adopts its epoch
// ([Consumer.Epoch]). Before the first apply the consumer has no epoch and
// gates invalidations by revision alone.
//
// Without epochs (an empty Epoch, as from the TypeScript sources) the
// revision alone decides, as in the TypeScript original, with one addition:
// a fetched snapshot whose revision is lower than the applied one means the
// source lost its history. It is skipped, logged at warn level and reported
// once per applied revision with [PhaseProtocol] and [ErrRevisionRegressed].
//
// # Concurrency contract
//
// Every exported method of [Consumer], [Source] and [MemoryStore] is safe
// for concurrent use. [Consumer.Invalidate] and [Consumer.InvalidateRaw] may
// be called from any goroutine, concurrently and re-entrantly; they never
// block and never run provider or applier work inline, unless the consumer
// was made with [ConsumerOptions.InlineRefresh]: then a delivery that finds
// no refresh in flight runs it on its own goroutine (only when the snapshot
// is at hand, if the provider is a [SnapshotPeeker]), and the applier runs
// there too.
//
// Goroutines: a Consumer runs its refreshes on goroutines it owns and waits
// for in [Consumer.Wait]; throttle timers fire on timer goroutines and only
// request a refresh. [Consumer.Offer] applies on the caller's goroutine,
// after any refresh in flight has finished. User code runs as follows:
//
//   - The provider and applier run on a refresh goroutine (or the Offer
//     caller's), one call at a time, with a context that Stop cancels. An
//     applier may call [Consumer.Refresh] or [Consumer.Offer] with the
//     context it received: Refresh then queues a refresh and returns nil at
//     once, Offer applies inline. Called with another context from inside
//     the applier, Refresh would wait for itself until that context ends.
//     An applier must not call [Consumer.Wait].
//   - ShouldRefresh runs on the goroutine that delivered the invalidation
//     and must not block.
//   - OnError runs on the goroutine that detected the error (a refresh
//     goroutine, the goroutine of the Start or Offer call, or the delivering
//     goroutine for a malformed invalidation), with no engine lock held, so
//     it may call Stop, Refresh or Revision. Reports of scheduled retries
//     are the exception: the refresh they belong to is still running, so
//     they are delivered in order on a goroutine the consumer owns, before
//     that refresh's final report.
//   - The functions given to [Source.Watch] and [Store.Watch] run
//     synchronously on the writer's goroutine (or the store's feed
//     goroutine) after the commit, and must not block.
//
// Panics in user code are recovered. Those of the subscriber, provider,
// applier and ShouldRefresh become a [*PanicError] reported like any other
// error; those of OnError are logged; those of unsubscribe functions are
// ignored.
//
// # Errors and phases
//
// Constructors and Source methods return errors that wrap the sentinels of
// this package ([ErrInvalidTopic], [ErrMissingDependency],
// [ErrInvalidThrottle], [ErrInvalidRetry], [ErrInvalidPayload],
// [ErrConflict], [ErrClosed], …); match them with [errors.Is]. A failed
// compare-and-set is a [*ConflictError] with the current revision.
//
// A Consumer reports each failure exactly once, as an [*Error], to
// [ConsumerOptions.OnError] and to the logger at error level, and returns it
// from the Start, Refresh or Offer call it belongs to. A refresh caused by
// an invalidation has no caller: its errors are only reported. The [Phase]
// says where the failure happened:
//
//   - [PhaseSubscribe]: the Subscriber failed.
//   - [PhaseGetSnapshot]: the Provider failed, panicked or timed out. With a
//     retry policy, each scheduled retry is reported too, with
//     [Error.WillRetry] set, and the final failure carries [Error.Attempt].
//   - [PhaseProtocol]: an invalidation or snapshot broke the protocol (for
//     example a non-canonical revision, [ErrNonCanonicalRevision]), or the
//     revision went backwards ([ErrRevisionRegressed]). [Error.SourceEvent]
//     holds the raw invalidation payload.
//   - [PhaseApply]: the Applier failed or panicked.
//   - [PhaseInvalidation]: a raw invalidation was not JSON, or ShouldRefresh
//     panicked.
//   - [PhaseStart]: Start's context ended before the initial refresh
//     finished.
//
// Every refresh failure falls into one of the phases above.
// Cancellations caused by Stop are never reported. [IsRetryable] tells
// transient failures from the others.
//
// # Caveats
//
//   - A Snapshot's Data is raw JSON shared between readers: treat it as
//     read-only, and copy it before keeping or changing it.
//   - A [MemoryStore] gives a topic's first write, by default, the time the
//     store was made in microseconds since 1970 as its revision, not 1, so
//     that a restarted process keeps moving forward for clients that do not
//     know epochs. Set [MemoryStoreOptions.FirstRevision] for small numbers.
//   - A consumer's revision advances only through its own refreshes and
//     [Consumer.Offer]; applying a write's result to your state directly
//     does not move the gate.
//   - Delivery guarantees are the transport's, and none are needed: a
//     transport may drop, duplicate, delay or reorder invalidations. After a
//     transport reconnects, call [Consumer.Refresh], unless the transport
//     sends the current revisions on every connect (the httpsync stream
//     does).
//   - [Revision.Next] returns [ErrRevisionOverflow] at [MaxRevision] rather
//     than saturating, so a topic at the last revision refuses writes.
//
// The wire format, for implementations in other languages, is described in
// docs/PROTOCOL.md; the engine's internals in docs/ARCHITECTURE.md.
package statesync
