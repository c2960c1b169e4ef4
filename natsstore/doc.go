// Package natsstore is a [statesync.Store] in a NATS JetStream key-value
// bucket, on nats.go and its jetstream package, shared by every process
// that opens the same bucket: several statesync daemons behind a load
// balancer keep their streams in step through it.
//
//	store, err := natsstore.Open(ctx, "nats://nats1:4222,nats2:4222,nats3:4222?bucket=statesync&replicas=3", nil)
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	src, err := statesync.NewSource(store, nil)
//
// # URL
//
// The URL is one or more server URLs separated by commas, nats://host:port
// (or tls://host:port for TLS; a server without a scheme takes the first
// one's), each with an optional user and password (nats://user:pw@host) or
// token (nats://token@host), then query options:
//
//   - bucket: the bucket's name (default "statesync"), 1-64 characters
//     A-Z a-z 0-9 _ -;
//   - replicas: the replicas of a bucket this store creates, 1 to 5
//     (default 1; 3 on a cluster, to survive the loss of a server);
//   - feed_probe: the change feed's probe interval, a Go duration
//     (default 2s, at least 10ms); see Liveness below;
//   - timeout: how long one request to the servers may take (default
//     5s); see Failures below;
//   - feed_url: a server URL (query-escaped) for the change feed's own
//     connection, instead of the store's servers;
//   - creds: a credentials file (JWT and NKey seed), for decentralised
//     authentication;
//   - token: an authentication token (instead of one in the URL's user
//     part);
//   - tls_ca, tls_cert and tls_key: files of the certificate authority
//     that signed the servers' certificates, and of a client certificate
//     and its key (both or neither).
//
// Unknown options are refused. The fields of [Options] do the same for Go
// callers and win over the URL. The daemon's --store takes such a URL
// (schemes nats and tls) and writes it in its logs with passwords and
// tokens replaced by xxxxx.
//
// # Bucket
//
// [Open] creates the bucket if it is missing: a stream KV_<bucket> on the
// subjects $KV.<bucket>.> shaped as jetstream.CreateKeyValue makes one,
// with history 1 (one message per key), file storage and the replicas
// asked, with two differences. Direct gets are off (AllowDirect false),
// so every read is answered by the stream's leader, which holds every
// acknowledged write; a replica that may lag never answers a
// compare-and-set's read or a read for a minimum revision. And its first
// sequence is the clock's time in microseconds since 1970 (FirstSeq), as
// for [statesync.MemoryStore]: a bucket deleted and made again starts its
// revisions above those of the old one, so clients that ignore epochs do
// not see revisions go back (as long as the clock does not go back and the
// old bucket took fewer than one write per microsecond of its life). A
// bucket made by other means (nats kv add) works too, with its own
// settings; if it allows direct gets this store still reads from the
// leader, through the STREAM.MSG.GET API.
//
// Each topic is one key. Topics that are not valid keys are encoded
// reversibly: the characters A-Z a-z 0-9 _ - stand for themselves, every
// other byte (. : / space * > = and the bytes of non-ASCII characters:
// topic names are any UTF-8, see [statesync.CheckTopic]) is written =XX in
// upper-case hexadecimal, so "orders.eu:1" is stored under the key
// "orders=2Eeu=3A1" and "café" under "caf=C3=A9": no key holds a NATS
// wildcard or token separator, whatever the topic. Keys written by something else than this package
// are ignored by List and by the change feed.
//
// # Writes and revisions
//
// A topic's revision is the stream sequence of its key's last message: it
// grows with every write of the topic, with gaps (other topics' writes
// take the sequences between). Each [Store.Write] is one publish of the
// data (the exact bytes; nil or null is stored as "null", and a deletion
// keeps the key) with the source id in the Statesync-Source header. A
// compare-and-set carries the expected last sequence of the key's
// subject (0 for a topic never written), which the stream's leader checks
// as it stores the message; a refusal (error 10071, or 10164 on a
// replicated stream) becomes a [statesync.ConflictError] with the current
// revision read from the leader. A write acknowledged on a replicated
// stream is stored on a majority of its replicas.
//
// Values are limited by the servers' max_payload (1 MiB by default),
// which counts the message's header too: [Store.MaxValue] tells the room
// left, and a larger write fails at once. A daemon's default --max-body
// is 1 MiB: raise max_payload on the servers (say to 2 MB, or 8 MB) or
// lower --max-body below [Store.MaxValue].
//
// # Change feed
//
// Each Store keeps one connection of its own for its feed (named
// "statesync-feed") with an ordered consumer of the bucket's stream on
// it: all keys, headers only (no data), from the sequence after the last
// one it delivered. It calls the watchers with every write of the bucket,
// by any process, in stream order, without data (DataOmitted). The bucket
// keeps only the last message of each key, so a write that a later write
// of the same topic replaced before the feed read it is not reported: the
// later one is, which is all a consumer needs
// (statesynctest.SupersedingStore).
//
// When the feed's connection fails, or a probe finds the feed silent or
// the bucket's history lost, the feed makes a new connection with backoff
// (50 ms doubling to 2 s, with jitter) and a new consumer resuming from
// the last sequence delivered (from the stream's end if the bucket is a
// new one), and only then sends the watchers a Resync record
// ([statesync.Record.Resync]): whatever was written while it was away is
// found by the resync, and what is written afterwards is delivered.
// [Store.FeedStatus] reports the feed's state, remakes and resyncs.
//
// # Liveness
//
// A connection can stay open yet deliver nothing (a stalled proxy or NAT, a
// half-dead peer), and a consumer can vanish on the servers. Every probe
// interval (feed_probe, 2 s by default) the feed sends a PING on its
// connection and waits up to one interval for the PONG, and reads the
// stream's state through the store's other connection. The feed is
// declared dead if the PONG does not come, or if during a whole interval
// the stream held messages the consumer had not delivered and it
// delivered none; a silent feed is so found within two intervals (4 s by
// default) and made again, then resynced.
//
// # Epoch
//
// The epoch is a hash of the stream's name and its creation time, as the
// servers report it: every Store on one bucket reports the same epoch; it
// survives restarts of the daemons and of the servers and a change of the
// stream's leader, and changes when the bucket is deleted and made again
// (by an operator, or by a Store finding it missing: each Store makes the
// bucket again when a read, a write or its feed finds it gone) or
// restored from a backup into a new stream. The epoch is read at Open and
// at every probe; records read in between carry the epoch last read, so
// a bucket made again is noticed within a probe interval, and at once by
// an operation that finds it missing.
//
// # Failures
//
// Reads and writes go through the store's connection, which reconnects by
// itself to any of the URL's servers (or those the cluster advertises).
// Each request waits at most the timeout option (5 s): the answer to a
// request sent to a server that died with it is lost, and the request
// fails after the timeout; the outcome of a write that failed so is
// unknown (a compare-and-set retried with the same expected revision then
// conflicts if the first one was stored). On a cluster, a stream with
// replicas=3 elects a new leader within seconds of losing its leader;
// writes fail meanwhile and resume then, and no acknowledged write is
// lost. A stream of one replica is unavailable while its server is down,
// and its content is as safe as that server's disk: the servers sync
// their files every two minutes by default (sync_interval; "always"
// makes every acknowledged write durable on one server).
//
// Open waits for servers that are up but not ready: when the cluster has
// no leader yet (its servers started together with the daemon), finds
// too few servers online for the replicas asked, or does not answer
// within the timeout, Open logs a warning and asks again, for up to four
// timeouts (20 s by default), before it gives up with the last error.
// Other errors (a bad URL, credentials refused, replicas a lone server
// cannot hold) fail Open at once.
//
// # Caveats
//
// Watchers run on the feed's goroutine, one record at a time, and must not
// block. List reads the last message of every key (headers only) and
// returns no source ids. Each Store holds two connections.
package natsstore
