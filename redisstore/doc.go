// Package redisstore is a [statesync.Store] in Redis (6.2 or later; tested
// with 7.0), on go-redis v9, shared by every process that opens the same Redis with the
// same key prefix: several statesync daemons behind a load balancer keep
// their streams in step through it.
//
//	store, err := redisstore.Open(ctx, "redis://:secret@cache:6379/0?prefix=app", nil)
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	src, err := statesync.NewSource(store, nil)
//
// # URL
//
// The URL is a Redis URL as go-redis reads it,
// redis://[user:password@]host:port/db (rediss:// for TLS), with query
// options such as dial_timeout, read_timeout, pool_size, min_idle_conns,
// client_name and protocol. This package reads and removes its own query
// options before go-redis sees the URL:
//
//   - prefix: the hash tag of the store's keys (default "statesync"); 1-64
//     characters A-Z a-z 0-9 . _ : -.
//   - feed_probe: how long one read of the change feed blocks, a Go
//     duration (default 2s, at least 10ms); see Liveness below.
//   - feed_url: a URL (query-escaped) for the change feed's own connection,
//     for a store URL that goes through a proxy without blocking commands.
//   - stream_maxlen: the approximate length at which the change stream is
//     trimmed (default 10000, at least 100).
//   - wait: after each write, wait (WAIT) until this many replicas have it
//     (1-100); see Replication below.
//   - wait_timeout: how long wait waits (default 1s, at least 1ms); it
//     must be shorter than go-redis's read_timeout (default 5s).
//
// The fields of [Options] do the same for Go callers and win over the URL.
// The store never retries a command by itself (go-redis's max_retries is
// overridden): a write whose reply is lost may or may not have happened,
// and a retry could commit it twice or report a conflict with itself.
//
// # Keys
//
// Every key starts with the hash tag "{prefix}:", so all of a store's keys
// hash to one slot and one script may touch them all, as Redis Cluster
// requires (this package connects to one server, not to a cluster):
//
//   - {prefix}:t:TOPIC, a hash per topic ever written (TOPIC is the topic
//     name as is, any UTF-8: braces in it do not change the hash tag, which
//     is the first {…} of the key, and no command takes it as a pattern): rev (the revision,
//     decimal), data (the exact bytes written), src (the source id), us
//     (the commit time, µs since 1970). A deletion writes "null" at a new
//     revision and keeps the hash, so deleted topics stay listed.
//   - {prefix}:topics, a sorted set of every topic written (score 0),
//     ranged in byte order (ZRANGE BYLEX) by [Store.List] and
//     [Store.ListPrefix].
//   - {prefix}:feed, the change stream: one entry per write.
//   - {prefix}:seq, the number of the last entry appended to the stream.
//   - {prefix}:epoch, a random id, made (SET) by the first command that
//     finds it missing; part of the epoch.
//
// The keys have no expiry. The role needs GET, SET, INCR, HGET, HINCRBY,
// HSET, HMGET, ZADD, ZRANGE, XADD, XREAD, XREVRANGE, EVAL, EVALSHA,
// WAIT (with the wait option) and INFO (without INFO, see Epoch), besides
// what go-redis sends when it connects (HELLO, CLIENT SETNAME).
//
// # Writes and revisions
//
// Each [Store.Write] is one Lua script (EVALSHA, and EVAL when the server
// does not have it), atomic on the server. It compares the topic's
// revision with the expected one as decimal strings (Lua numbers are
// doubles, which equate 9007199254740993 with 9007199254740992), raises the
// revision with HINCRBY and floors it to the server's clock (TIME) in
// microseconds since 1970, stores the data, adds the topic to the index,
// and appends "topic, revision, epoch id, time, sequence number, source
// id" to the stream (XADD MAXLEN ~ stream_maxlen). So revisions grow with
// every write, and a topic written again after its keys were lost starts
// above what clients that ignore epochs knew (as long as the server's
// clock does not go back).
//
// # Change feed
//
// Each Store keeps one connection of its own (CLIENT SETNAME
// "statesync-feed") that reads the stream with XREAD BLOCK from the last
// entry it read, and calls the watchers with every write on the prefix, by
// any process, in commit order, without data (DataOmitted). Unlike pub/sub,
// which drops what is published while a subscriber is away, the stream
// keeps the writes: the feed sees a gap in the entries' sequence numbers
// when the stream was trimmed past what it had read (it fell more than
// stream_maxlen writes behind) or was reset, and then sends the watchers a
// Resync record ([statesync.Record.Resync]). Stream entries that are not
// the store's are logged and skipped.
//
// When the feed's connection fails, the feed reconnects with backoff (50
// ms doubling to 2 s, with jitter), reads where the stream ends and the
// epoch, and only then sends the watchers a Resync record: whatever was
// written while it was away is found by the resync, and what is written
// afterwards is read from the stream. A connection that died while idle,
// between two reads, is redialed by the client without an error; the feed
// counts its client's connections and treats that one as lost too.
// [Store.FeedStatus] reports the feed's state, reconnections and resyncs.
//
// # Liveness
//
// A connection can stay open yet deliver nothing (a stalled proxy or NAT, a
// half-dead TCP peer). Each XREAD blocks at most one probe interval
// (feed_probe, 2 s by default), after which a live server answers, if only
// with "nothing"; a read not answered within two intervals (4 s by
// default) declares the feed dead:
// it is closed, reconnected and resynced. Every interval the feed also
// rereads the epoch (see below). A live feed thus costs one XREAD per
// interval when nothing is written.
//
// # Epoch
//
// Every Store on one prefix reports the same epoch, a 16-character hash of:
//
//   - the {prefix}:epoch key, random, made again when missing: after
//     FLUSHALL, FLUSHDB, the deletion of the prefix's keys, or a restart
//     without persistence;
//   - the server's replication id (master_replid of INFO replication),
//     which Redis 7 draws anew at every start of a primary, persistence or
//     not, and at every failover (a promoted replica takes a new one).
//
// Both are read by the same script as the data (each write, read and
// probe), so a record's epoch is that of the server that served it. So
// the epoch changes whenever the store may have lost history, and also
// at every restart of Redis, since a restart may have lost the writes not
// yet on disk (everything with persistence off, up to a second with
// appendfsync everysec). The change is noticed by the next write's stream
// entry, by the feed's reconnection after a restart or failover, or by its
// next probe, and the watchers get a Resync; [statesync.Source]s then
// refresh what they hold. If the role may not run INFO, the replication
// id is left out: lost keys still change the epoch, but a failover or a
// restart that kept the epoch key (with some recent writes lost) does not.
//
// # Persistence and replication
//
// Redis acknowledges a write before it is on disk unless appendonly yes and
// appendfsync always are set: with them (and only then), a crash of Redis
// (kill -9, power loss) loses no acknowledged write. Replication is
// asynchronous: a write acknowledged by the primary can be lost when a
// replica that did not have it is promoted (Sentinel, Cluster, a managed
// failover). statesync then sees a new replication id, so a new epoch, and
// consumers resync to what the new primary holds: they do not keep
// revisions the store no longer has, but the lost writes are lost. To
// narrow that window, set min-replicas-to-write (and
// min-replicas-max-lag) on the primary, which refuses writes when too few
// replicas are connected, and/or the wait option, which makes every
// [Store.Write] wait until that many replicas have the write and return
// [ErrNotReplicated] (with the committed record) when they do not within
// wait_timeout. Even WAIT does not make Redis strongly consistent: a
// failover may still pick a replica without the write.
//
// # Caveats
//
// Watchers run on the feed's goroutine, one record at a time, and must not
// block. Values are limited by Redis's proto-max-bulk-len (512 MB) and by
// memory; a Lua script blocks the server while it runs, which a write does
// for microseconds. [Store.List] reads the index and then the topics'
// hashes, 512 per round trip: it is not a snapshot. Reads go to the
// primary (the URL's host); a read-only replica cannot serve the store,
// whose reads may make the epoch key.
package redisstore
