// Package statesync keeps one piece of state consistent across goroutines,
// processes, machines and browser tabs with an invalidation-pull protocol.
//
// This package holds the protocol vocabulary, the consumer engine, the
// source of truth and the small interfaces transports implement. It imports
// only the standard library; transports live in leaf packages (memsync for
// in-process use, httpsync for HTTP).
//
// # Model
//
// A source of truth owns a set of topics. Each topic has a [Revision], a
// counter that grows with every write. After a write is committed the
// source emits a tiny [Invalidation] {topic, revision} that carries no data.
// A consumer that sees a revision newer than its own pulls the topic's
// latest [Snapshot] {revision, data} and applies it only if it is newer
// than what it applied last. Lost, duplicated and reordered invalidations
// are therefore harmless: a pull always fetches the latest, and the
// revision gate rejects the stale.
//
// The truth side is a [Source] over a [Store] ([MemoryStore] here; durable
// stores live in their own packages). The consumer side is a [Consumer],
// one per topic, made by [NewConsumer] from a [Subscriber] that delivers
// invalidations to it (a Consumer is an [InvalidationHandler]), a
// [Provider] that returns the latest snapshot, and an [Applier] that puts a
// snapshot into your state.
//
// Consumers of one topic on one [SharedProvider] ([Source], memsync.Bus,
// httpsync.Client) share their fetches: an invalidation that reaches many
// of them costs about one fetch, not one each, and their refreshes run on
// a few goroutines, not one each.
//
// An optional epoch names one continuous history of revisions; a consumer
// that sees another epoch refreshes and applies whatever the revision, so a
// store that restarts or is restored from a backup does not strand it.
//
// A topic name is any UTF-8 string of 1 to [MaxTopicLen] bytes without
// control characters ("settings/ui", "my topic", "café"); [CheckTopic]
// states the rule exactly. Names are compared as bytes, without Unicode
// normalisation, and every transport and store carries them unchanged.
//
// # Guarantees
//
// For each [Consumer]:
//
//   - the revisions of applied snapshots strictly increase within an epoch;
//   - the provider and applier are never called concurrently;
//   - at most one refresh is in flight and one queued, however fast
//     invalidations arrive;
//   - no change is missed: Start subscribes before it pulls, and a request
//     that arrives during a refresh causes one more;
//   - once [Consumer.Stop] returns, the applier and OnError are not running
//     and are never called again (Stop waits for a call in progress, unless
//     called from inside one);
//   - each failure is an [*Error] whose [Phase] says where it happened,
//     reported once to [ConsumerOptions.OnError] and the logger.
//
// Every exported method of Consumer, Source and MemoryStore is safe for
// concurrent use.
//
// The engine's rules (gate, coalescing, throttling, lifecycle, retry,
// epochs), which goroutine runs which callback, and the caveats are in
// docs/ARCHITECTURE.md; the wire format, for implementations in other
// languages, is in docs/PROTOCOL.md.
//
// # Example
//
// A source and a consumer in one process, connected by a memsync.Bus (the
// package Example runs this):
//
//	store := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1})
//	src, _ := statesync.NewSource(store, nil)
//	bus := memsync.New(src) // carries src's invalidations, serves its snapshots
//	c, _ := statesync.NewConsumer("settings", bus, bus,
//		statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
//			fmt.Printf("revision %d: %s\n", s.Revision, s.Data)
//			return nil
//		}), nil)
//	if err := c.Start(ctx); err != nil { // applies the current state (revision 0, null)
//		return err
//	}
//	defer c.Stop()
//	src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`)) // then revision 1
package statesync
