package redisstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/feedstatus"
)

// DefaultPrefix is the default of [Options.Prefix].
const DefaultPrefix = "statesync"

// DefaultProbeInterval is the default of [Options.ProbeInterval].
const DefaultProbeInterval = 2 * time.Second

// DefaultStreamMaxLen is the default of [Options.StreamMaxLen].
const DefaultStreamMaxLen = 10000

// DefaultWaitTimeout is the default of [Options.WaitTimeout].
const DefaultWaitTimeout = time.Second

// FeedClientName is the name (CLIENT SETNAME) of the change feed's
// connection, as CLIENT LIST shows it.
const FeedClientName = "statesync-feed"

const (
	minProbeInterval = 10 * time.Millisecond
	minStreamMaxLen  = 100
	maxWaitReplicas  = 100
)

// ErrNotReplicated is returned by [Store.Write] when [Options.WaitReplicas]
// is set and fewer replicas than that acknowledged the write within
// [Options.WaitTimeout]. The write is committed on the primary and
// reported to watchers; it may be lost if the primary fails over before
// its replicas catch up.
var ErrNotReplicated = errors.New("redisstore: write not acknowledged by enough replicas")

// Options configures a [Store]. The zero value (or a nil *Options) gives the
// defaults, or the values the URL's query options set; a field set here
// wins over the URL.
type Options struct {
	// Prefix is the hash tag of the store's keys ("{statesync}:…"): 1 to 64
	// characters A-Z a-z 0-9 . _ : -. Empty means the URL's prefix option,
	// else [DefaultPrefix]. Stores with different prefixes on one Redis
	// are independent.
	Prefix string
	// ProbeInterval is how long one read of the change feed blocks; a feed
	// that gets no answer for two intervals is declared dead and
	// reconnected, and the epoch is checked every interval. 0 means the
	// URL's feed_probe option, else [DefaultProbeInterval].
	ProbeInterval time.Duration
	// FeedURL, if set, is the redis:// URL of the change feed's connection
	// (which blocks in XREAD), for a store URL that goes through a proxy
	// without blocking commands. Empty means the URL's feed_url option,
	// else the store's URL.
	FeedURL string
	// StreamMaxLen is the approximate length at which the change stream
	// is trimmed (XADD MAXLEN ~); a feed that falls further behind resyncs.
	// 0 means the URL's stream_maxlen option, else [DefaultStreamMaxLen].
	StreamMaxLen int64
	// WaitReplicas, when positive, makes each Write wait (WAIT) until that
	// many replicas acknowledged it, or return [ErrNotReplicated] after
	// WaitTimeout. 0 means the URL's wait option, else no waiting.
	WaitReplicas int
	// WaitTimeout bounds the wait of WaitReplicas; with WaitReplicas it
	// must be shorter than the URL's read_timeout (go-redis's default 5s).
	// 0 means the URL's wait_timeout option, else [DefaultWaitTimeout].
	WaitTimeout time.Duration
	// Logger receives the feed's warnings (lost connection, resyncs). Nil
	// means none.
	Logger *slog.Logger
}

// A Store is a [statesync.Store] in Redis, shared by every process that
// opens the same Redis with the same prefix: a write through one is read by
// all and reported to the watchers of all. Make one with [Open] and release
// it with [Store.Close]. All methods are safe for concurrent use.
type Store struct {
	rdb         *redis.Client // reads and writes
	feedc       *redis.Client // the change feed's one connection
	k           keys
	probe       time.Duration
	maxLen      int64
	wait        int
	waitTimeout time.Duration
	log         *slog.Logger

	feed statesync.Feed

	closed atomic.Bool
	cancel context.CancelFunc // ends the feed
	wg     sync.WaitGroup     // the feed
	once   sync.Once          // Close

	status feedstatus.Status // the change feed's state, for FeedStatus

	// feedConns counts the connections the feed's client has made. Its
	// pool redials a connection that died while idle, between two reads,
	// without a word; the feed counts that as a lost connection too.
	feedConns atomic.Uint64
}

var (
	_ statesync.Store        = (*Store)(nil)
	_ statesync.PrefixLister = (*Store)(nil)
	_ statesync.FeedReporter = (*Store)(nil)
	_ io.Closer              = (*Store)(nil)
)

// keys are the Redis keys of one prefix; they all hash to one slot.
type keys struct {
	prefix string
	tag    string // "{prefix}:"
	epoch  string // string: the random part of the epoch
	seq    string // string: the number of the last stream entry
	index  string // sorted set: every topic written, score 0
	stream string // stream: one entry per write
}

func newKeys(prefix string) keys {
	tag := "{" + prefix + "}:"
	return keys{prefix: prefix, tag: tag, epoch: tag + "epoch", seq: tag + "seq", index: tag + "topics", stream: tag + "feed"}
}

// topic returns the key of a topic's hash.
func (k keys) topic(t string) string { return k.tag + "t:" + t }

// replidLua defines replid(), which returns the server's replication id
// (master_replid of INFO replication), or "" if INFO is refused.
const replidLua = `
local function replid()
  local ok, info = pcall(redis.call, 'INFO', 'replication')
  if ok and type(info) == 'string' then
    return string.match(info, 'master_replid:(%w+)') or ''
  end
  return ''
end
`

// writeScript commits one write. KEYS: the topic's hash, the index, the
// stream, the epoch, the sequence. ARGV: topic, data, source id, "1" for a
// conditional write, the expected revision (decimal), a new epoch id in
// case there is none, the stream's MAXLEN. Revisions stay decimal strings
// throughout: Lua numbers are doubles, exact only up to 2^53.
var writeScript = redis.NewScript(replidLua + `
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[4], epoch)
end
local cur = redis.call('HGET', KEYS[1], 'rev')
if ARGV[4] == '1' and (cur or '0') ~= ARGV[5] then
  return {'conflict', cur or '0', epoch, replid()}
end
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
local rev = now
if cur then
  redis.call('HINCRBY', KEYS[1], 'rev', 1)
  local nxt = redis.call('HGET', KEYS[1], 'rev')
  if #nxt > #now or (#nxt == #now and nxt > now) then
    rev = nxt
  end
end
redis.call('HSET', KEYS[1], 'rev', rev, 'data', ARGV[2], 'src', ARGV[3], 'us', now)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
local seq = string.format('%d', redis.call('INCR', KEYS[5]))
local rid = replid()
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
  'topic', ARGV[1], 'rev', rev, 'epoch', epoch, 'repl', rid, 'us', now, 'seq', seq, 'src', ARGV[3])
return {'ok', rev, epoch, rid, now}
`)

// getScript reads a topic, the epoch id (making one if there is none) and
// the replication id. KEYS: the topic's hash, the epoch. ARGV: a new epoch
// id.
var getScript = redis.NewScript(replidLua + `
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
local v = redis.call('HMGET', KEYS[1], 'rev', 'data', 'src', 'us')
return {epoch, replid(), v[1], v[2], v[3], v[4]}
`)

// cursorScript returns where the stream ends now: the id of its last entry
// ("0-0" if empty or missing), the sequence number of the last write, the
// epoch id (made if missing) and the replication id. KEYS: the stream, the
// sequence, the epoch. ARGV: a new epoch id.
var cursorScript = redis.NewScript(replidLua + `
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch)
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local id = '0-0'
if #last > 0 then
  id = last[1][1]
end
return {id, redis.call('GET', KEYS[2]) or '0', epoch, replid()}
`)

// Open connects to the Redis at url, starts the change feed (it returns
// once the feed knows where the stream ends, so a watcher added after Open
// misses nothing) and returns the store. url is a redis:// or rediss://
// URL as go-redis reads it (user, password, host, port, database number,
// dial_timeout, pool_size and the other go-redis options) plus this
// package's options, removed before go-redis sees them: prefix,
// feed_probe, feed_url, stream_maxlen, wait and wait_timeout (see the
// package documentation).
//
// ctx bounds the start-up only; the store lives until [Store.Close].
func Open(ctx context.Context, url string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	rURL, uo, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	o.Prefix = first(o.Prefix, uo.prefix, DefaultPrefix)
	if err := checkPrefix(o.Prefix); err != nil {
		return nil, err
	}
	o.ProbeInterval = first(o.ProbeInterval, uo.probe, DefaultProbeInterval)
	if o.ProbeInterval < minProbeInterval {
		return nil, fmt.Errorf("redisstore: ProbeInterval %v is shorter than %v", o.ProbeInterval, minProbeInterval)
	}
	o.StreamMaxLen = first(o.StreamMaxLen, uo.maxLen, DefaultStreamMaxLen)
	if o.StreamMaxLen < minStreamMaxLen {
		return nil, fmt.Errorf("redisstore: StreamMaxLen %d is less than %d", o.StreamMaxLen, minStreamMaxLen)
	}
	o.WaitReplicas = first(o.WaitReplicas, uo.wait, 0)
	if o.WaitReplicas < 0 || o.WaitReplicas > maxWaitReplicas {
		return nil, fmt.Errorf("redisstore: WaitReplicas %d is not from 0 to %d", o.WaitReplicas, maxWaitReplicas)
	}
	o.WaitTimeout = first(o.WaitTimeout, uo.waitTimeout, DefaultWaitTimeout)
	if o.WaitTimeout < time.Millisecond {
		return nil, fmt.Errorf("redisstore: WaitTimeout %v is shorter than 1ms", o.WaitTimeout)
	}
	o.FeedURL = first(o.FeedURL, uo.feedURL, "")
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}

	ropts, err := redis.ParseURL(rURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	var fopts *redis.Options
	if o.FeedURL != "" {
		fURL, _, err := parseURL(o.FeedURL)
		if err != nil {
			return nil, fmt.Errorf("redisstore: feed URL: %w", err)
		}
		if fopts, err = redis.ParseURL(fURL); err != nil {
			return nil, fmt.Errorf("redisstore: feed URL: %w", err)
		}
	} else {
		c := *ropts
		fopts = &c
	}
	// A write is not idempotent: a retry after a lost reply could commit it
	// twice, or report a conflict with itself. Callers retry, knowing.
	ropts.MaxRetries = -1
	ropts.ContextTimeoutEnabled = true
	fopts.MaxRetries = -1
	fopts.ContextTimeoutEnabled = true
	fopts.PoolSize, fopts.MinIdleConns, fopts.MaxIdleConns = 1, 0, 1
	fopts.PipelinePoolSize = -1
	fopts.ClientName = FeedClientName

	s := &Store{k: newKeys(o.Prefix), probe: o.ProbeInterval, maxLen: o.StreamMaxLen,
		wait: o.WaitReplicas, waitTimeout: o.WaitTimeout, log: o.Logger}
	s.rdb = redis.NewClient(ropts)
	if rt := s.rdb.Options().ReadTimeout; o.WaitReplicas > 0 && rt > 0 && rt <= o.WaitTimeout {
		_ = s.rdb.Close()
		return nil, fmt.Errorf("redisstore: the read timeout (%v) must be longer than WaitTimeout (%v), which WAIT may take", rt, o.WaitTimeout)
	}
	fopts.OnConnect = func(context.Context, *redis.Conn) error {
		s.feedConns.Add(1)
		return nil
	}
	s.feedc = redis.NewClient(fopts)
	cur, err := s.connectFeed(ctx)
	if err != nil {
		_ = s.feedc.Close()
		_ = s.rdb.Close()
		return nil, fmt.Errorf("redisstore: open: change feed: %w", err)
	}
	s.status.Up()
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.run(runCtx, cur) })
	return s, nil
}

// first returns the first of vs that is not the zero value.
func first[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}

// Close stops the change feed and closes the connections. It waits for the
// feed's watcher calls in progress; after it returns no watcher is called
// again and the store's methods return [statesync.ErrClosed]. It must not
// be called from a Watch callback. It is idempotent and returns nil.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.cancel()
		_ = s.feedc.Close() // ends a blocked XREAD at once
		s.wg.Wait()
		_ = s.rdb.Close()
	})
	return nil
}

// FeedStatus implements [statesync.FeedReporter].
func (s *Store) FeedStatus() statesync.FeedStatus {
	return s.status.Status()
}

// Prefix returns the store's key prefix (the hash tag of its keys).
func (s *Store) Prefix() string { return s.k.prefix }

// opErr turns the error of an operation into what the caller gets:
// [statesync.ErrClosed] if the store was closed meanwhile, else err
// wrapped with op.
func (s *Store) opErr(op string, err error) error {
	if s.closed.Load() {
		return statesync.ErrClosed
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// Get implements [statesync.Store]. A topic never written has revision 0,
// data "null" and the store's epoch; so has an invalid topic name, which no
// write can have made. Get makes the store's epoch id if there is none (a
// new or emptied Redis).
func (s *Store) Get(ctx context.Context, topic string) (statesync.Record, error) {
	if s.closed.Load() {
		return statesync.Record{}, statesync.ErrClosed
	}
	key := s.k.topic(topic)
	if statesync.CheckTopic(topic) != nil {
		key = s.k.tag + "invalid" // no topic's key
	}
	res, err := getScript.Run(ctx, s.rdb, []string{key, s.k.epoch}, statesync.NewEpoch()).Slice()
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("get %q", topic), err)
	}
	if len(res) != 6 {
		return statesync.Record{}, s.opErr(fmt.Sprintf("get %q", topic), fmt.Errorf("unexpected reply %v", res))
	}
	rec := statesync.Record{Topic: topic, Epoch: epochOfReply(res[0], res[1]), Data: null()}
	res = res[2:]
	revS, ok := res[0].(string)
	if !ok {
		return rec, nil
	}
	rev, err := strconv.ParseUint(revS, 10, 64)
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("get %q", topic), fmt.Errorf("bad revision %q", revS))
	}
	rec.Revision = statesync.Revision(rev)
	data, _ := res[1].(string)
	rec.Data = []byte(data)
	rec.SourceID, _ = res[2].(string)
	rec.Time = microTime(res[3])
	return rec, nil
}

// microTime reads a time stored as microseconds since 1970 (zero if it is
// not one).
func microTime(v any) time.Time {
	s, _ := v.(string)
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// Write implements [statesync.Store]. The topic must be valid
// ([statesync.CheckTopic]). Nil or JSON null data is stored as "null";
// other data is stored as the exact bytes given (a [statesync.Source]
// checks it is JSON). The write is one Lua script, atomic on the server: it
// checks the condition (comparing revisions as decimal strings), gives the
// topic its revision (the greater of the last one plus one and the
// server's clock in microseconds since 1970), stores the data, indexes the
// topic and appends the write to the change stream. Write returns once the
// script ran (and, with [Options.WaitReplicas], once enough replicas have
// it); the watchers hear of it through the change feed, like those of
// every other Store on the same prefix.
//
// Write is not retried: if the connection fails before the reply, the
// error is returned and the write may or may not have been committed.
func (s *Store) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	if s.closed.Load() {
		return statesync.Record{}, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return statesync.Record{}, err
	}
	if err := statesync.CheckTopic(w.Topic); err != nil {
		return statesync.Record{}, fmt.Errorf("redisstore: write: %w", err)
	}
	data := w.Data
	if data == nil || isNull(data) {
		data = null()
	} else {
		data = slices.Clone(data)
	}
	cond := "0"
	if w.Conditional {
		cond = "1"
	}
	keys := []string{s.k.topic(w.Topic), s.k.index, s.k.stream, s.k.epoch, s.k.seq}
	args := []any{w.Topic, []byte(data), w.SourceID, cond, strconv.FormatUint(uint64(w.IfRevision), 10),
		statesync.NewEpoch(), s.maxLen}
	op := fmt.Sprintf("write %q", w.Topic)
	res, acked, err := s.runWrite(ctx, keys, args)
	if err != nil {
		return statesync.Record{}, s.opErr(op, err)
	}
	if len(res) != 4 && len(res) != 5 {
		return statesync.Record{}, s.opErr(op, fmt.Errorf("unexpected reply %v", res))
	}
	status, _ := res[0].(string)
	revS, _ := res[1].(string)
	rev, err := strconv.ParseUint(revS, 10, 64)
	if err != nil {
		return statesync.Record{}, s.opErr(op, fmt.Errorf("bad revision %q", revS))
	}
	epoch := epochOfReply(res[2], res[3])
	if status == "conflict" {
		return statesync.Record{}, &statesync.ConflictError{Topic: w.Topic, Expected: w.IfRevision,
			Current: statesync.Revision(rev), Epoch: epoch}
	}
	rec := statesync.Record{Topic: w.Topic, Revision: statesync.Revision(rev), Epoch: epoch, Data: data,
		SourceID: w.SourceID, Time: microTime(res[len(res)-1])}
	if acked < int64(s.wait) { // (s.wait is 0 without WaitReplicas)
		return rec, fmt.Errorf("%w: %s at revision %d: %d of %d replicas within %v", ErrNotReplicated, op, rev, acked, s.wait, s.waitTimeout)
	}
	return rec, nil
}

// runWrite runs writeScript, by EVALSHA and, if the server does not have
// it, EVAL. With WaitReplicas it pipes WAIT after it, on the same
// connection, and returns the number of replicas that acknowledged.
func (s *Store) runWrite(ctx context.Context, keys []string, args []any) ([]any, int64, error) {
	if s.wait == 0 {
		res, err := writeScript.Run(ctx, s.rdb, keys, args...).Slice()
		return res, 0, err
	}
	for _, eval := range []bool{false, true} {
		pipe := s.rdb.Pipeline()
		var c *redis.Cmd
		if eval {
			c = writeScript.Eval(ctx, pipe, keys, args...)
		} else {
			c = writeScript.EvalSha(ctx, pipe, keys, args...)
		}
		wc := pipe.Do(ctx, "wait", s.wait, s.waitTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		res, err := c.Slice()
		if !eval && redis.HasErrorPrefix(err, "NOSCRIPT") {
			continue // the script did not run: send it
		}
		if err != nil {
			return nil, 0, err
		}
		n, err := wc.Int64()
		if err != nil {
			return nil, 0, fmt.Errorf("WAIT: %w", err)
		}
		return res, n, nil
	}
	panic("unreachable")
}

// List implements [statesync.Store]: every written topic (deleted ones
// included, their data is null) with its revision, epoch, source id and
// time, sorted by topic in byte order, without data.
func (s *Store) List(ctx context.Context) ([]statesync.Record, error) {
	return s.ListPrefix(ctx, "")
}

// listChunk is how many topics List reads per round trip.
const listChunk = 512

// ListPrefix implements [statesync.PrefixLister]: the written topics
// starting with prefix, as [Store.List] returns them, read by a range of
// the topics' index (ZRANGE BYLEX) and then the topics' revisions, a chunk
// of topics per round trip. It is not a snapshot: a topic written
// meanwhile may be listed at its old or new revision.
func (s *Store) ListPrefix(ctx context.Context, prefix string) ([]statesync.Record, error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	op := "list"
	lo, hi := "-", "+"
	if prefix != "" {
		op = fmt.Sprintf("list %q", prefix)
		lo = "[" + prefix // any bytes: the range is exact
		if end, ok := prefixEnd(prefix); ok {
			hi = "(" + end
		}
	}
	topics, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.k.index, Start: lo, Stop: hi, ByLex: true}).Result()
	if err != nil {
		return nil, s.opErr(op, err)
	}
	epoch, err := s.epoch(ctx)
	if err != nil {
		return nil, s.opErr(op, err)
	}
	out := make([]statesync.Record, 0, len(topics))
	for chunk := range slices.Chunk(topics, listChunk) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(chunk))
		for i, t := range chunk {
			cmds[i] = pipe.HMGet(ctx, s.k.topic(t), "rev", "src", "us")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, s.opErr(op, err)
		}
		for i, c := range cmds {
			v := c.Val()
			revS, ok := v[0].(string)
			if !ok {
				continue // removed meanwhile
			}
			rev, err := strconv.ParseUint(revS, 10, 64)
			if err != nil {
				return nil, s.opErr(op, fmt.Errorf("topic %q: bad revision %q", chunk[i], revS))
			}
			src, _ := v[1].(string)
			out = append(out, statesync.Record{Topic: chunk[i], Revision: statesync.Revision(rev), Epoch: epoch,
				SourceID: src, Time: microTime(v[2])})
		}
	}
	return out, nil
}

// epoch reads the store's epoch, making its epoch id if there is none.
func (s *Store) epoch(ctx context.Context) (string, error) {
	res, err := getScript.Run(ctx, s.rdb, []string{s.k.tag + "invalid", s.k.epoch}, statesync.NewEpoch()).Slice()
	if err != nil {
		return "", err
	}
	if len(res) != 6 {
		return "", fmt.Errorf("unexpected reply %v", res)
	}
	return epochOfReply(res[0], res[1]), nil
}

// prefixEnd returns the least string greater than every string starting
// with prefix, for a range in byte order (Redis compares members as
// bytes): prefix without its trailing 0xFF bytes, its last byte plus one.
// ok is false if there is none (prefix is only 0xFF bytes, which no topic
// holds, being UTF-8: see [statesync.CheckTopic]).
func prefixEnd(prefix string) (end string, ok bool) {
	n := len(prefix)
	for n > 0 && prefix[n-1] == 0xff {
		n--
	}
	if n == 0 {
		return "", false
	}
	b := []byte(prefix[:n])
	b[n-1]++
	return string(b), true
}

// Watch implements [statesync.Store]. fn is called by the change feed's
// goroutine, one record at a time, with the writes of every Store on the
// same prefix (this one's included) in commit order, without their data
// (DataOmitted is set), and with a Resync record (see
// [statesync.Record.Resync]) after the feed reconnected, found itself
// silent, found the stream trimmed past what it had read, or found the
// epoch changed. fn may read and write the store; it must not block, for
// it holds up the feed. stop waits for a call of fn in progress, so it
// must not be called from fn; after it returns, fn is not called again.
// stop is idempotent.
func (s *Store) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.feed.Watch(fn), nil
}

// epochOfReply is epochOf of the epoch id and replication id of a script's
// reply.
func epochOfReply(epochID, replid any) string {
	e, _ := epochID.(string)
	r, _ := replid.(string)
	return epochOf(e, r)
}

// epochOf returns the epoch of records read with the epoch id and the
// replication id: a hash of the id (new when the keys are lost) and of the
// server's replication id (new when Redis restarts or fails over). It has
// the form of [statesync.NewEpoch].
func epochOf(epochID, replid string) string {
	h := sha256.New()
	h.Write([]byte(epochID))
	h.Write([]byte{0})
	h.Write([]byte(replid))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

func null() []byte { return []byte("null") }

func isNull(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }
