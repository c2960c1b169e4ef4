// Package persist keeps the last snapshot of a consumer on disk (or
// elsewhere), so that a program that restarts while its source is
// unreachable comes up at once with its last known state, and never with
// corrupt or foreign data.
//
// # Model
//
// A [Storage] keeps one [Record] per key: [Metadata] (saved time, schema
// version, size, compression algorithm, SHA-256, TTL, revision, epoch,
// topic) and the payload, the JSON of a [statesync.Snapshot], compressed
// by a [Compressor]. Backends: [MemoryStorage], [FileStorage] (one file
// per key, atomic replace), and bbolt in package persist/boltcache. Every
// backend passes the suite of package persist/persisttest.
//
// A [Persister] is the consumer's [statesync.Applier]: it applies each
// snapshot to an inner applier, then saves it in the background, in
// order, skipping stale revisions, at once or debounced, throttled and
// bounded by a maximum wait. [Persister.Flush] waits for saves and returns
// their errors; [Persister.Shutdown] flushes and stops, [Persister.Close]
// stops at once.
//
// # Start-up
//
// [Persister.Restore] reads the saved record, checks it in a fixed order
// (TTL, hash, decoding and canonical revision, topic, schema migration
// with [Migrations], validator) and offers it to the consumer with
// [statesync.Consumer.Offer] before the consumer starts: the consumer's
// revision and epoch are then the cached ones, and the source's snapshot
// is applied only if it is newer or of another epoch. If the source
// cannot be reached, the cached state stays in place. [Load] does the same
// checks on any storage without a Persister.
//
//	p, _ := persist.New(store, applier, &persist.Options{Topic: "settings", Debounce: 100 * time.Millisecond})
//	defer p.Shutdown(ctx)
//	c, _ := statesync.NewConsumer("settings", sub, prov, p, nil)
//	if _, err := p.Restore(ctx, c); err != nil {
//		log.Print(err) // no usable cache: start from the source
//	}
//	err := c.Start(ctx)
//
// # Other processes
//
// Processes on one host that share a storage can tell each other about
// their saves with package persist/procsync, which calls
// [Persister.Reload] when another process announces one.
package persist
