package pgstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/feedstatus"
)

// DefaultSchema is the default of [Options.Schema].
const DefaultSchema = "statesync"

// DefaultProbeInterval is the default of [Options.ProbeInterval]: a store
// restored from a dump is noticed within about 2 s, and a silent feed
// within 4 s.
const DefaultProbeInterval = 2 * time.Second

// minProbeInterval is the shortest probe interval accepted.
const minProbeInterval = 10 * time.Millisecond

// FeedApplicationName is the application_name of the change feed's
// connection, as pg_stat_activity shows it.
const FeedApplicationName = "statesync-feed"

// Options configures a [Store]. The zero value (or a nil *Options) gives the
// defaults, or the values the URL's query options set; a field set here
// wins over the URL.
type Options struct {
	// Schema is the PostgreSQL schema holding the store's tables, created
	// if missing: 1 to 63 characters a-z, 0-9 and _, starting with a letter
	// or _. Empty means the URL's schema option, else [DefaultSchema].
	// Stores on different schemas of one database are independent.
	Schema string
	// ProbeInterval is how often the change feed checks that it still
	// receives notifications (see the package documentation); a feed that
	// hears nothing for two intervals is declared dead and reconnected.
	// 0 means the URL's feed_probe option, else [DefaultProbeInterval].
	ProbeInterval time.Duration
	// FeedURL, if set, is the URL of the change feed's connection (a
	// session that LISTENs), when the store's URL goes through a pooler
	// that cannot hold one (PgBouncer in transaction mode). Empty means the
	// URL's feed_url option, else the store's URL.
	FeedURL string
	// Logger receives the feed's warnings (lost connection, bad
	// notifications). Nil means none.
	Logger *slog.Logger
}

// A Store is a [statesync.Store] in a PostgreSQL database, shared by every
// process that opens the same database and schema: a write through one is
// read by all and reported to the watchers of all. Make one with [Open] and
// release it with [Store.Close]. All methods are safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	feedCfg *pgx.ConnConfig
	n       names
	sql     queries
	probe   time.Duration
	probeCh string // the channel of this store's probes, heard by it alone
	log     *slog.Logger

	ident atomic.Pointer[ident] // the server's history, read by the feed
	feed  statesync.Feed

	closed atomic.Bool
	cancel context.CancelFunc // ends the feed
	wg     sync.WaitGroup     // the feed and its probes
	once   sync.Once          // Close

	status feedstatus.Status // the change feed's state, for FeedStatus
}

var (
	_ statesync.Store        = (*Store)(nil)
	_ statesync.PrefixLister = (*Store)(nil)
	_ statesync.FeedReporter = (*Store)(nil)
	_ io.Closer              = (*Store)(nil)
)

// queries are the statements of one schema.
type queries struct {
	get, write, writeNew, writeIf, current, list, listRange, listFrom, lookupSource, probe, meta, ensureMeta string
}

func newQueries(n names) queries {
	oid := "'" + n.topics + "'::regclass::oid" // n.topics is a validated, quoted name
	meta := "(SELECT id FROM " + n.meta + " LIMIT 1)"
	// The notification of a write: see decodePayload.
	tail := `
SELECT w.revision, w.updated_at, w.tableoid, m.id,
	pg_notify($4::text, CASE WHEN strpos($1::text, '|') = 0 THEN 'w|' ELSE 't|' END ||
		w.revision || '|' || (extract(epoch FROM w.updated_at) * 1000000)::bigint || '|' ||
		coalesce(m.id, '') || '|' || w.tableoid::bigint || '|' ||
		CASE WHEN strpos($1::text, '|') = 0 THEN '' ELSE octet_length($1::text) || '|' END || $1::text || '|' || $5::text)
FROM w LEFT JOIN ` + meta + ` AS m(id) ON true`
	usNow := "floor(extract(epoch FROM c.ts) * 1000000)::bigint"
	returning := " RETURNING t.revision, t.updated_at, t.tableoid)"
	return queries{
		get: "SELECT t.revision, t.data, t.source_id, t.updated_at, " + meta + ", " + oid +
			" FROM (SELECT 1) AS one LEFT JOIN " + n.topics + " AS t ON t.topic = $1",
		write: "WITH c AS (SELECT clock_timestamp() AS ts), w AS (INSERT INTO " + n.topics +
			" AS t (topic, revision, data, source_id, updated_at) SELECT $1::text, " + usNow + ", $2::bytea, $3::text, c.ts FROM c" +
			" ON CONFLICT (topic) DO UPDATE SET revision = greatest(t.revision + 1, excluded.revision)," +
			" data = excluded.data, source_id = excluded.source_id, updated_at = excluded.updated_at" + returning + tail,
		writeNew: "WITH c AS (SELECT clock_timestamp() AS ts), w AS (INSERT INTO " + n.topics +
			" AS t (topic, revision, data, source_id, updated_at) SELECT $1::text, " + usNow + ", $2::bytea, $3::text, c.ts FROM c" +
			" ON CONFLICT (topic) DO NOTHING" + returning + tail,
		writeIf: "WITH c AS (SELECT clock_timestamp() AS ts), w AS (UPDATE " + n.topics +
			" AS t SET revision = greatest(t.revision + 1, " + usNow + "), data = $2::bytea, source_id = $3::text, updated_at = c.ts" +
			" FROM c WHERE t.topic = $1::text AND t.revision = $6::bigint" + returning + tail,
		current:      "SELECT (SELECT revision FROM " + n.topics + " WHERE topic = $1), " + meta + ", " + oid,
		list:         "SELECT t.topic, t.revision, t.source_id, t.updated_at, t.tableoid, m.id FROM " + n.topics + " AS t LEFT JOIN " + meta + " AS m(id) ON true ORDER BY t.topic",
		listRange:    "SELECT t.topic, t.revision, t.source_id, t.updated_at, t.tableoid, m.id FROM " + n.topics + " AS t LEFT JOIN " + meta + " AS m(id) ON true WHERE t.topic >= $1 AND t.topic < $2 ORDER BY t.topic",
		listFrom:     "SELECT t.topic, t.revision, t.source_id, t.updated_at, t.tableoid, m.id FROM " + n.topics + " AS t LEFT JOIN " + meta + " AS m(id) ON true WHERE t.topic >= $1 ORDER BY t.topic",
		lookupSource: "SELECT source_id FROM " + n.topics + " WHERE topic = $1 AND revision = $2",
		probe:        "SELECT pg_notify($1, $2), " + meta + ", " + oid,
		meta:         "SELECT " + meta + ", " + oid,
		ensureMeta:   "INSERT INTO " + n.meta + " (id) VALUES ($1) ON CONFLICT DO NOTHING",
	}
}

// Open connects to the PostgreSQL database at url, creates or migrates the
// store's schema, starts the change feed (it returns once the feed
// listens, so a watcher added after Open misses nothing) and returns the
// store. url is a postgres:// URL as pgx reads it (host, port, user,
// password, database, sslmode, pool_max_conns and the other pgx and libpq
// options) plus this package's options, removed before pgx sees them:
// schema, feed_probe and feed_url (see the package documentation).
//
// ctx bounds the start-up only; the store lives until [Store.Close].
func Open(ctx context.Context, url string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	pgxURL, uo, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if o.Schema == "" {
		o.Schema = cmp(uo.schema, DefaultSchema)
	}
	if err := checkSchema(o.Schema); err != nil {
		return nil, err
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = uo.probe
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.ProbeInterval < minProbeInterval {
		return nil, fmt.Errorf("pgstore: ProbeInterval %v is shorter than %v", o.ProbeInterval, minProbeInterval)
	}
	if o.FeedURL == "" {
		o.FeedURL = uo.feedURL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}

	cfg, err := pgxpool.ParseConfig(pgxURL)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	var feedCfg *pgx.ConnConfig
	if o.FeedURL != "" {
		feedURL, _, err := parseURL(o.FeedURL)
		if err != nil {
			return nil, fmt.Errorf("pgstore: feed URL: %w", err)
		}
		fc, err := pgxpool.ParseConfig(feedURL) // drops pool_* options, meaningless here
		if err != nil {
			return nil, fmt.Errorf("pgstore: feed URL: %w", err)
		}
		feedCfg = fc.ConnConfig
	} else {
		feedCfg = cfg.ConnConfig.Copy()
	}
	feedCfg.RuntimeParams["application_name"] = FeedApplicationName

	n := newNames(o.Schema)
	s := &Store{feedCfg: feedCfg, n: n, sql: newQueries(n), probe: o.ProbeInterval, probeCh: probeChannel(), log: o.Logger}
	s.ident.Store(&ident{})
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if err := s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error { return migrate(ctx, c.Conn(), n) }); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	conn, epoch, err := s.connectFeed(ctx)
	if err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("pgstore: open: change feed: %w", err)
	}
	s.status.Up()
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.run(runCtx, conn, &feedState{known: epoch, probes: make(chan probeResult, 1)})
	return s, nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Close stops the change feed and closes the connections. It waits for
// the feed's watcher calls in progress and for the operations using the
// pool; after it returns no watcher is called again and the store's methods
// return [statesync.ErrClosed]. It must not be called from a Watch
// callback. It is idempotent and returns nil.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.cancel()
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

// FeedStatus implements [statesync.FeedReporter].
func (s *Store) FeedStatus() statesync.FeedStatus {
	return s.status.Status()
}

// Schema returns the name of the store's schema.
func (s *Store) Schema() string { return s.n.schema }

// opErr turns the error of an operation into what the caller gets:
// [statesync.ErrClosed] if the store was closed meanwhile, the context's
// error as is, else err wrapped with op.
func (s *Store) opErr(op string, err error) error {
	if s.closed.Load() {
		return statesync.ErrClosed
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// Get implements [statesync.Store]. A topic never written has revision 0,
// data "null" and the store's epoch; so has an invalid topic name, which
// no write can have made.
func (s *Store) Get(ctx context.Context, topic string) (statesync.Record, error) {
	if s.closed.Load() {
		return statesync.Record{}, statesync.ErrClosed
	}
	var (
		rev      *int64
		data     []byte
		sourceID *string
		updated  *time.Time
		metaID   *string
		oid      uint32
	)
	key := topic
	if statesync.CheckTopic(topic) != nil {
		key = "" // never written, and maybe not even text PostgreSQL takes
	}
	err := s.pool.QueryRow(ctx, s.sql.get, key).Scan(&rev, &data, &sourceID, &updated, &metaID, &oid)
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("get %q", topic), err)
	}
	epoch, err := s.epoch(ctx, metaID, oid)
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("get %q", topic), err)
	}
	rec := statesync.Record{Topic: topic, Epoch: epoch, Data: null()}
	if rev != nil {
		rec.Revision = statesync.Revision(*rev)
		rec.Data = data
		rec.SourceID = deref(sourceID)
		rec.Time = *updated
	}
	return rec, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// maxInlineSourceID is the longest source id, in bytes, carried in a
// write's notification; a longer one is read back by the receiving feeds.
// With a topic of at most [statesync.MaxTopicLen] bytes it keeps payloads
// far under PostgreSQL's limit of 8,000 bytes.
const maxInlineSourceID = 4096

// Write implements [statesync.Store]. The topic must be valid
// ([statesync.CheckTopic]) and the source id valid UTF-8 without NUL
// (PostgreSQL text). Nil or JSON null data is stored as "null"; other data
// is stored as the exact bytes given (a [statesync.Source] checks it is
// JSON). The revision of a topic's first write is the current time of
// the database server in microseconds since the Unix epoch, and of each
// later write the greater of the last revision plus one and that time.
// The condition of a conditional write is checked by the statement that
// writes; the notification of the write is sent in its transaction. Write
// returns once the write is committed; the watchers hear of it through the
// change feed, like those of every other Store on the same schema.
func (s *Store) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	if s.closed.Load() {
		return statesync.Record{}, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return statesync.Record{}, err
	}
	if err := statesync.CheckTopic(w.Topic); err != nil {
		return statesync.Record{}, fmt.Errorf("pgstore: write: %w", err)
	}
	if !utf8.ValidString(w.SourceID) || strings.IndexByte(w.SourceID, 0) >= 0 {
		return statesync.Record{}, fmt.Errorf("pgstore: write %q: the source id is not valid UTF-8 text without NUL", w.Topic)
	}
	data := w.Data
	if data == nil || isNull(data) {
		data = null()
	} else {
		data = slices.Clone(data)
	}
	notifySource := "+" // too long: the feeds read it from the table
	if len(w.SourceID) <= maxInlineSourceID {
		notifySource = "=" + w.SourceID
	}
	q, args := s.sql.write, []any{w.Topic, data, w.SourceID, s.n.channel, notifySource}
	if w.Conditional {
		switch {
		case w.IfRevision == 0:
			q = s.sql.writeNew
		case w.IfRevision > math.MaxInt64:
			return statesync.Record{}, s.conflict(ctx, w) // no revision is that high
		default:
			q, args = s.sql.writeIf, append(args, int64(w.IfRevision))
		}
	}
	var (
		rev     int64
		updated time.Time
		oid     uint32
		metaID  *string
	)
	err := s.pool.QueryRow(ctx, q, args...).Scan(&rev, &updated, &oid, &metaID, nil)
	if errors.Is(err, pgx.ErrNoRows) && w.Conditional {
		return statesync.Record{}, s.conflict(ctx, w)
	}
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("write %q", w.Topic), err)
	}
	epoch, err := s.epoch(ctx, metaID, oid)
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("write %q", w.Topic), err)
	}
	return statesync.Record{Topic: w.Topic, Revision: statesync.Revision(rev), Epoch: epoch, Data: data,
		SourceID: w.SourceID, Time: updated}, nil
}

// conflict returns the *ConflictError of a conditional write that wrote
// nothing, with the topic's current revision.
func (s *Store) conflict(ctx context.Context, w statesync.Write) error {
	var (
		cur    *int64
		metaID *string
		oid    uint32
	)
	if err := s.pool.QueryRow(ctx, s.sql.current, w.Topic).Scan(&cur, &metaID, &oid); err != nil {
		return s.opErr(fmt.Sprintf("write %q: reading the current revision", w.Topic), err)
	}
	epoch, err := s.epoch(ctx, metaID, oid)
	if err != nil {
		return s.opErr(fmt.Sprintf("write %q", w.Topic), err)
	}
	ce := &statesync.ConflictError{Topic: w.Topic, Expected: w.IfRevision, Epoch: epoch}
	if cur != nil {
		ce.Current = statesync.Revision(*cur)
	}
	return ce
}

// List implements [statesync.Store]: every written topic (deleted ones
// included, their data is null) with its revision, epoch, source id and
// time, sorted by topic in byte order, without data.
func (s *Store) List(ctx context.Context) ([]statesync.Record, error) {
	return s.ListPrefix(ctx, "")
}

// ListPrefix implements [statesync.PrefixLister]: the written topics
// starting with prefix, as [Store.List] returns them, read by a range scan
// of the topics' index.
func (s *Store) ListPrefix(ctx context.Context, prefix string) ([]statesync.Record, error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	op := "list"
	q, args := s.sql.list, []any(nil)
	trimmed := false
	if prefix != "" {
		op = fmt.Sprintf("list %q", prefix)
		lo, hi, trim, ok := prefixRange(prefix)
		switch {
		case !ok:
			return nil, ctx.Err() // no topic can start with prefix
		case hi == "":
			q, args = s.sql.listFrom, []any{lo}
		default:
			q, args = s.sql.listRange, []any{lo, hi}
		}
		trimmed = trim
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.opErr(op, err)
	}
	var (
		out     []statesync.Record
		topic   string
		rev     int64
		source  string
		updated time.Time
		oid     uint32
		metaID  *string
	)
	epochs := map[uint32]string{}
	_, err = pgx.ForEachRow(rows, []any{&topic, &rev, &source, &updated, &oid, &metaID}, func() error {
		e, ok := epochs[oid]
		if !ok {
			var err error
			if e, err = s.epoch(ctx, metaID, oid); err != nil {
				return err
			}
			epochs[oid] = e
		}
		if trimmed && !strings.HasPrefix(topic, prefix) {
			return nil
		}
		out = append(out, statesync.Record{Topic: topic, Revision: statesync.Revision(rev), Epoch: e, SourceID: source, Time: updated})
		return nil
	})
	if err != nil {
		return nil, s.opErr(op, err)
	}
	return out, nil
}

// prefixRange returns the range [lo, hi) of text, in code point order
// (byte order of UTF-8, the order of COLLATE "C"), holding every topic
// starting with prefix; hi is "" if the range has no end. Both are valid
// UTF-8 without NUL, as PostgreSQL text must be. A prefix ending inside a
// character gives the range of the prefix without that partial character
// (trimmed is then true, and the caller filters the rows); ok is false if
// no topic starts with prefix ([statesync.CheckTopicPrefix]).
func prefixRange(prefix string) (lo, hi string, trimmed, ok bool) {
	lo = prefix
	for k := 0; k < utf8.UTFMax-1 && lo != "" && !utf8.ValidString(lo); k++ {
		lo = lo[:len(lo)-1]
	}
	if statesync.CheckTopicPrefix(lo) != nil {
		return "", "", false, false
	}
	for end := lo; end != ""; {
		r, n := utf8.DecodeLastRuneInString(end)
		end = end[:len(end)-n]
		switch {
		case r == 0xd7ff:
			return lo, end + "\ue000", lo != prefix, true // no surrogates in UTF-8
		case r < utf8.MaxRune:
			return lo, end + string(r+1), lo != prefix, true
		}
	}
	return lo, "", lo != prefix, true
}

// Watch implements [statesync.Store]. fn is called by the change feed's
// goroutine, one record at a time, with the writes of every Store on the
// same schema (this one's included) in commit order, without their data
// (DataOmitted is set), and with a Resync record (see
// [statesync.Record.Resync]) after the feed reconnected, found itself
// silent, or found the epoch changed. fn may read and write the store; it
// must not block, for it holds up the feed. stop waits for a call of fn in
// progress, so it must not be called from fn; after it returns, fn is not
// called again. stop is idempotent.
func (s *Store) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.feed.Watch(fn), nil
}

// ident is what identifies the history of the database server: the system
// identifier (new at initdb, and so after a restore from a logical dump
// into a new cluster) and the timeline (new at each point-in-time recovery
// and promotion of a replica). Either is empty when the server does not
// let this role read it.
type ident struct {
	system, timeline string
}

// querier is what readIdent needs of a connection or a pool.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readIdent reads the server's ident. SQL errors (a function this role may
// not call, a server in recovery) leave the part empty; other errors
// (network) are returned.
func readIdent(ctx context.Context, q querier) (ident, error) {
	var id ident
	read := func(dst *string, sqls ...string) error {
		for _, sql := range sqls {
			err := q.QueryRow(ctx, sql).Scan(dst)
			var pgErr *pgconn.PgError
			if err == nil || !errors.As(err, &pgErr) {
				return err
			}
		}
		*dst = ""
		return nil
	}
	if err := read(&id.system, "SELECT system_identifier::text FROM pg_control_system()"); err != nil {
		return id, err
	}
	err := read(&id.timeline, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
		"SELECT lpad(upper(to_hex(timeline_id)), 8, '0') FROM pg_control_checkpoint()")
	return id, err
}

// epoch returns the epoch of a record read with the meta id and the
// topics table's oid, taking a new meta id if the meta row is missing
// (someone emptied the meta table: a new epoch).
func (s *Store) epoch(ctx context.Context, metaID *string, oid uint32) (string, error) {
	if metaID == nil {
		id, o, err := s.ensureMeta(ctx, s.pool)
		if err != nil {
			return "", err
		}
		metaID, oid = &id, o
	}
	return epochOf(*metaID, oid, *s.ident.Load()), nil
}

// ensureMeta inserts a meta row with a new id if there is none, and
// returns the meta id and the topics table's oid.
func (s *Store) ensureMeta(ctx context.Context, q interface {
	querier
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}) (string, uint32, error) {
	var (
		id  *string
		oid uint32
	)
	if err := q.QueryRow(ctx, s.sql.meta).Scan(&id, &oid); err != nil {
		return "", 0, err
	}
	if id != nil {
		return *id, oid, nil
	}
	if _, err := q.Exec(ctx, s.sql.ensureMeta, statesync.NewEpoch()); err != nil {
		return "", 0, err
	}
	if err := q.QueryRow(ctx, s.sql.meta).Scan(&id, &oid); err != nil {
		return "", 0, err
	}
	if id == nil {
		return "", 0, errors.New("the meta row vanished")
	}
	return *id, oid, nil
}

// epochOf derives the store's epoch from the meta row's id (new when the
// schema is made, and when the topics table is emptied or truncated), the
// topics table's oid (new when the table is dropped and made again, as a
// restore from a dump does) and the server's ident (new after a restore
// of a backup or a promotion). It has the form of [statesync.NewEpoch].
func epochOf(metaID string, oid uint32, id ident) string {
	h := sha256.New()
	for _, p := range []string{metaID, strconv.FormatUint(uint64(oid), 10), id.system, id.timeline} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

func null() []byte { return []byte("null") }

func isNull(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }
