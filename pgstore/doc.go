// Package pgstore is a [statesync.Store] in PostgreSQL (13 or later), on
// pgx v5, shared by every process that opens the same database and schema:
// several statesync daemons behind a load balancer keep their streams in
// step through it.
//
//	store, err := pgstore.Open(ctx, "postgres://app@db:5432/app?sslmode=require", nil)
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	src, err := statesync.NewSource(store, nil)
//
// # URL
//
// The URL is a PostgreSQL URL as pgx reads it: user, password, host, port
// (several hosts are allowed), database, and query options such as
// sslmode, sslrootcert, connect_timeout, application_name,
// pool_max_conns, pool_min_conns, pool_max_conn_lifetime and
// default_query_exec_mode. A keyword/value string ("host=db user=app") is
// accepted too, without the options below. This package reads and removes
// three query options of its own before pgx sees the URL:
//
//   - schema: the schema holding the store's tables (default "statesync");
//     1-63 characters a-z, 0-9 and _, starting with a letter or _.
//   - feed_probe: the change feed's probe interval, a Go duration (default
//     2s, at least 10ms); see Liveness below.
//   - feed_url: a URL (query-escaped) for the change feed's own connection;
//     see PgBouncer below.
//
// The fields of [Options] do the same for Go callers and win over the URL.
//
// # Tables
//
// [Open] creates the schema if needed and migrates it to [SchemaVersion],
// in one transaction holding pg_advisory_xact_lock, so that daemons
// started together migrate it once; a schema of a newer version is refused
// ([ErrUnsupportedSchema]). The schema holds:
//
//   - schema_migrations(version, applied_at): the versions applied;
//   - meta: one row with a random id, part of the epoch;
//   - topics(topic text COLLATE "C" primary key, revision bigint, data
//     bytea, source_id text, updated_at timestamptz): one row per topic
//     ever written. data is the exact bytes written (not jsonb, which
//     reorders keys and refuses \u0000); a deletion writes "null" at a new
//     revision and keeps the row, so deleted topics stay listed. Topics are
//     ordered and ranged in byte order (the "C" collation), as in the other
//     stores, whatever characters they hold (topic names are any UTF-8
//     without control characters: see [statesync.CheckTopic]; prefix
//     listings are ranges, never LIKE patterns, so '%' and '_' are plain
//     characters). The database must use the UTF8 encoding for topics
//     outside ASCII.
//
// The role needs CREATE on the database the first time (or a schema made
// for it beforehand), then SELECT, INSERT and UPDATE on the tables.
//
// # Writes and revisions
//
// Each [Store.Write] is one statement, so one transaction: an INSERT …
// ON CONFLICT DO UPDATE for a plain write, UPDATE … WHERE revision = $n for
// a compare-and-set, INSERT … ON CONFLICT DO NOTHING for a compare-and-set
// on a topic never written; a conditional write that touched no row reads
// the current revision for the [statesync.ConflictError]. The same
// statement sends the write's notification (pg_notify), which PostgreSQL
// delivers if and only if the write commits, in commit order.
//
// A revision is the greater of the topic's last revision plus one and the
// server's clock in microseconds since 1970. So revisions grow with every
// write, and a topic written again after its table was emptied or
// restored starts above what clients that ignore epochs knew (as long as
// the server's clock does not go back).
//
// # Change feed
//
// Each Store keeps one connection of its own (outside the pool,
// application_name "statesync-feed") that LISTENs on the schema's channel
// ("statesync_" and the schema name), and calls the watchers with every
// write committed on the schema, by any process, in commit order, without
// data (DataOmitted). A notification carries the topic, the revision, the
// commit time, what the epoch is made of and the source id, never the
// data; a source id longer than 4,096 bytes is left out and read back from
// the table by each receiving feed (and is empty if the topic was written
// again meanwhile). Payloads therefore stay under 4.5 kB, far from the
// 8,000-byte limit. Notifications on the channel that are not the store's
// are logged and dropped.
//
// When the feed's connection fails, the feed reconnects with backoff (50
// ms doubling to 2 s, with jitter), LISTENs, rereads the epoch and only
// then sends the watchers a Resync record ([statesync.Record.Resync]):
// whatever was committed while it was away is found by the resync, and
// what is committed afterwards is notified. [Store.FeedStatus] reports the
// feed's state, reconnections and resyncs.
//
// # Liveness
//
// A connection can stay open yet deliver nothing (a stalled proxy or NAT, a
// half-dead TCP peer). Every probe interval (feed_probe, 2 s by default)
// the feed sends a probe notification from a pool connection, on a
// channel of its own that only its feed connection listens to, and rereads
// the epoch. Any notification received counts as a sign of life; a feed
// that hears nothing for two intervals (4 s by default) is declared dead,
// closed, and reconnected, then resynced. Probes cost each store one
// notification and one small query per interval, whatever the number of
// stores on the schema.
//
// # Epoch
//
// Every Store on one schema reports the same epoch, a 16-character hash
// of:
//
//   - the meta row's id, random, replaced by a trigger whenever rows of the
//     topics table are deleted (DELETE) or the table is truncated
//     (TRUNCATE), and replaced when the meta row is missing;
//   - the topics table's oid, which changes when the table is dropped and
//     made again, as restoring a dump into a fresh schema or database
//     does, even though the dump brings back the old meta row;
//   - the server's system identifier (pg_control_system()), which changes
//     with a new cluster (a logical restore elsewhere, pg_upgrade);
//   - the server's timeline, which changes after a point-in-time recovery
//     and when a replica is promoted.
//
// So the epoch survives restarts of the daemons and of PostgreSQL
// (including a crash), and changes when the store may have lost history.
// The change is noticed at once through the trigger's notification
// (emptied table), or at the next probe or feed reconnection (restore,
// failover), and the watchers get a Resync. The epoch also changes, without
// harm beyond a full refresh of the consumers, after a failover that lost
// nothing or after pg_upgrade. Where the role may not call
// pg_control_system() or the WAL functions (some managed services revoke
// them), those parts are left out: the meta row and the table oid still
// catch emptied and restored tables, but not a point-in-time recovery of
// the whole cluster. Not caught at all: rows put back by UPDATE, or a data
// load with triggers disabled (pg_restore --disable-triggers) into the
// existing table; empty the table with DELETE or TRUNCATE first.
//
// # PgBouncer
//
// A pooler in transaction mode (PgBouncer's pool_mode=transaction, and
// most cloud "transaction" poolers) gives each transaction any server
// connection, so a LISTEN is lost as soon as its transaction ends: the
// feed would never hear anything. Writes and reads work through it
// (notifications are sent inside the write's transaction); PgBouncer
// before 1.21 also needs default_query_exec_mode=exec or simple_protocol
// in the URL, since it cannot keep prepared statements. Point the feed at
// PostgreSQL itself or at a pool in session mode with feed_url (or
// [Options.FeedURL]), e.g.
//
//	postgres://app@pgbouncer:6432/app?feed_url=postgres%3A%2F%2Fapp%40db%3A5432%2Fapp
//
// or give the whole store a session-mode URL. The liveness probe turns a
// misconfigured feed into a feed that reconnects every two intervals and
// reports itself down, never into silently stale daemons.
//
// # Caveats
//
// Each write holds PostgreSQL's notification queue lock while it commits:
// NOTIFY serialises the commits of every writer of the database, which
// bounds the write rate (see the package's benchmarks). Watchers run on
// the feed's goroutine, one record at a time, and must not block. Values
// are limited by PostgreSQL's 1 GB per field and by memory, not by this
// package.
package pgstore
