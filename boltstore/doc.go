// Package boltstore is a durable [statesync.Store] in a single bbolt file
// (go.etcd.io/bbolt): the embedded store of the statesync daemon.
//
//	store, err := boltstore.Open("statesync-data/statesync.db", nil)
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	src, err := statesync.NewSource(store, nil)
//
// # Durability
//
// Each [Store.Write] puts the topic's new revision, data, source id and
// commit time in a bbolt transaction; bbolt fsyncs the file before the
// transaction returns, so a write that returned (and was reported to the
// watchers) survives a crash of the process or of the machine. A write that
// did not return may or may not be there after a crash, never half of it.
// [Options.NoSync] drops the fsync, for tests only.
//
// # Group commit
//
// Concurrent writes share transactions, and so their fsyncs: one
// goroutine of the Store commits the writes, taking at once every write
// that queued while it committed the previous group (up to 1024 writes or
// 4 MiB of data). When fewer writes wait than the last group held, it
// lingers for the others, at most half the last commit's duration and
// 1 ms; a lone writer's write (its last group held one write) is committed
// at once, so grouping costs it nothing. With 8 or 16 writers a group
// holds about that many writes for the price of one fsync.
// Within a group the writes are applied in order and each on its own: a
// write whose condition fails (a [statesync.ConflictError]) or that fails
// otherwise is left out and the others commit; a conditional write sees
// the writes of its topic earlier in the group, as it would if they had
// committed alone. Each write is acknowledged only after the fsync of the
// transaction that holds it; if that commit fails, every write of the
// group fails. The records of a group are reported to the watchers in
// commit order, by the caller of its first write, before any Write of the
// group returns.
//
// # Revisions and epochs
//
// A topic's first write gets revision 1 and every later write the last one
// plus one, read from the file in the same transaction; so revisions go on
// upward across restarts, with no gap and no clock involved. (The memory
// store seeds revisions with the clock because it forgets them at each
// restart; this store does not forget, and small revisions read better in
// the CLI, in If-Match headers and in logs.)
//
// [Open] takes a new random epoch at each start and stores it in the meta
// bucket, for inspection. Consumers that know epochs therefore refresh
// every topic once after a restart of the daemon, which costs one pull per
// topic and covers what revisions alone cannot: a file restored from a
// backup or replaced by an older copy, whose revisions went back.
// Clients that know nothing of epochs keep working across ordinary restarts, since revisions only grow; after
// a restore they stall until the revisions pass the old ones, as they would
// with any store.
//
// # One process
//
// bbolt locks the file: only one Store, in one process, has it open at a
// time. [Open] waits [Options.Timeout] (1 s by default) and then fails with
// [ErrLocked], instead of hanging. The change feed of [Store.Watch]
// therefore carries only the writes made through this Store. To share state
// between several daemons, use a store built for it (PostgreSQL, NATS KV).
//
// # File format
//
// The file holds two root buckets. "statesync.meta" has the keys "format"
// ([FormatVersion], in decimal), "epoch" (the current run's epoch) and
// "opened" (RFC 3339 time of the last Open). "statesync.topics" maps each
// topic name to its record: a version byte, the revision, the commit time
// and the source id as varints, the data, and a CRC-32C of the whole.
// A record that fails to decode gives an error wrapping [ErrCorruptRecord],
// never a panic; [Open] refuses files that are not bbolt databases or hold
// other buckets ([ErrNotDatabase]) and files of a newer format
// ([ErrUnsupportedFormat]).
//
// # Caveats
//
// A transaction costs an fsync: one writer gets hundreds to a few
// thousand writes per second on an SSD, several concurrent writers several
// times that (see Group commit). Data is limited to [Options.MaxDataSize] (16 MiB by default).
// The store keeps the latest revision of each topic only, not a history,
// and never removes a topic: a deletion is a write of null at a new
// revision. A context passed to Write is checked before the write starts;
// a write waiting for its transaction cannot be cancelled.
package boltstore
