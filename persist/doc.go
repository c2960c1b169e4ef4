// Package persist keeps the last snapshot of a consumer on disk (or
// elsewhere), so that a program that restarts while its source is
// unreachable comes up at once with its last known state, and never with
// corrupt or foreign data. It is the Go counterpart of the TypeScript
// @statesync/persistence package (spec section 13), with its gaps closed.
//
// # Model
//
// A [Storage] keeps one [Record] per key: [Metadata] (saved time, schema
// version, size, compression algorithm, SHA-256, TTL, revision, epoch,
// topic) and the payload, the JSON of a [statesync.Snapshot], compressed
// by a [Compressor]. Backends: [MemoryStorage] (the test double),
// [FileStorage] (one file per key, atomic replace), and bbolt in package
// persist/boltcache. Every backend passes the suite of package
// persist/persisttest.
//
// A [Persister] wraps the consumer's [statesync.Applier]: each applied
// snapshot is saved in the background by one writer goroutine, in order,
// skipping stale revisions, immediately or debounced, throttled and
// bounded by a maximum wait. [Persister.Flush] waits for saves and returns
// their errors; [Persister.Close] flushes and stops.
//
// [Load] (and [Persister.Load]) reads a record back and checks it in a
// fixed order: TTL, hash, decoding and canonical revision, schema
// migration ([Migrations]), validator; only then is it applied.
//
// # Start-up
//
// [StartWithCache] hydrates a [statesync.Consumer] from the cache through
// [statesync.Consumer.Offer], so that the consumer's revision and epoch
// are the cached ones, then starts it: the server's snapshot is applied
// only if it is newer (or of another epoch). If the source cannot be
// reached, the cached state stays in place.
//
// # Cross-process updates
//
// Processes on one host that share a store ring each other's doorbell
// after each save through a [Bus]: a [SocketBus] sends a small datagram
// on a Unix socket to each process whose socket is in a shared directory
// (no server). The message carries only the revision and epoch; a
// receiver reads the record from the store it shares, checks it as a load
// does, and applies it only if it passes the revision and epoch gate.
package persist
