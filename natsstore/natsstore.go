package natsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/feedstatus"
)

// DefaultBucket is the default of [Options.Bucket].
const DefaultBucket = "statesync"

// DefaultProbeInterval is the default of [Options.ProbeInterval].
const DefaultProbeInterval = 2 * time.Second

// DefaultRequestTimeout is the default of [Options.RequestTimeout].
const DefaultRequestTimeout = 5 * time.Second

// minProbeInterval is the shortest probe interval accepted.
const minProbeInterval = 10 * time.Millisecond

// SourceHeader is the message header holding a write's source id
// ([statesync.Write.SourceID]), query-escaped (url.QueryEscape), since a
// header value cannot hold every string; a write without one has no such
// header.
const SourceHeader = "Statesync-Source"

// headerRoom is what a write's message takes besides its value and source
// id: the NATS/1.0 header line and the source header's name.
const headerRoom = 64

// Options configures a [Store]. The zero value (or a nil *Options) gives
// the defaults, or the values the URL's query options set; a field set
// here wins over the URL.
type Options struct {
	// Bucket is the key-value bucket holding the topics, created if
	// missing: 1 to 64 characters A-Z a-z 0-9 _ -. Empty means the URL's
	// bucket option, else [DefaultBucket].
	Bucket string
	// Replicas is the number of replicas of a bucket this store creates
	// (1 to 5; 3 for a bucket that survives the loss of a server). It
	// does not change an existing bucket. 0 means the URL's replicas
	// option, else 1.
	Replicas int
	// ProbeInterval is how often the change feed checks that it is alive
	// (see the package documentation). 0 means the URL's feed_probe
	// option, else [DefaultProbeInterval].
	ProbeInterval time.Duration
	// FeedURL, if set, is the server URL of the change feed's own
	// connection (a proxy, or another server of the cluster). Empty means
	// the URL's feed_url option, else the store's servers.
	FeedURL string
	// Logger receives the feed's warnings. Nil means none.
	Logger *slog.Logger
	// RequestTimeout bounds each request to the servers (a read, a write,
	// a look at the stream), within the context's deadline: a request
	// whose answer is lost (a server that died with it) fails after it,
	// and a write's outcome is then unknown. 0 means the URL's timeout
	// option, else [DefaultRequestTimeout].
	RequestTimeout time.Duration
	// NATSOptions are added to the options of both connections (after
	// those this package sets, so they win).
	NATSOptions []nats.Option
}

// A Store is a [statesync.Store] in a NATS JetStream key-value bucket,
// shared by every process that opens the same bucket: a write through one
// is read by all and reported to the watchers of all. Make one with [Open]
// and release it with [Store.Close]. All methods are safe for concurrent
// use.
type Store struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	feedOpt []nats.Option // the feed connection's options
	feedURL string
	bucket  string
	stream  string // KV_<bucket>
	prefix  string // $KV.<bucket>.
	reps    int
	probe   time.Duration
	timeout time.Duration // of one request
	log     *slog.Logger

	hist atomic.Pointer[history] // the bucket's history as last read
	feed statesync.Feed

	closed atomic.Bool
	cancel context.CancelFunc // ends the feed
	wg     sync.WaitGroup     // the feed goroutine
	once   sync.Once          // Close

	fmu      sync.Mutex // protects the fields below: the feed's delivery
	gen      uint64     // the current consumer's generation
	lastSeen uint64     // the stream sequence last delivered (or skipped)

	probes atomic.Uint64 // the feed's probes passed, for tests
	mute   atomic.Bool   // tests: the feed's consumer delivers nothing

	status feedstatus.Status // the change feed's state, for FeedStatus
}

var (
	_ statesync.Store        = (*Store)(nil)
	_ statesync.PrefixLister = (*Store)(nil)
	_ statesync.FeedReporter = (*Store)(nil)
	_ io.Closer              = (*Store)(nil)
)

// history identifies the bucket's stream, by its epoch.
type history struct {
	epoch string
}

// Open connects to the NATS servers of rawURL, creates the bucket if it is
// missing, starts the change feed (it returns once the feed's consumer
// exists, so a watcher added after Open misses nothing) and returns the
// store. See the package documentation for the URL. ctx bounds the
// start-up only; the store lives until [Store.Close].
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	uo, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if o, err = resolveOptions(o, uo); err != nil {
		return nil, err
	}
	feedServers := uo.servers
	if o.FeedURL != "" {
		fo, err := parseURL(o.FeedURL)
		if err != nil {
			return nil, fmt.Errorf("natsstore: feed URL: %w", err)
		}
		feedServers = fo.servers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	common := []nats.Option{nats.Name("statesync")}
	if uo.creds != "" {
		common = append(common, nats.UserCredentials(uo.creds))
	}
	if uo.token != "" {
		common = append(common, nats.Token(uo.token))
	}
	if uo.tlsCA != "" {
		common = append(common, nats.RootCAs(uo.tlsCA))
	}
	if uo.tlsCert != "" {
		common = append(common, nats.ClientCert(uo.tlsCert, uo.tlsKey))
	}
	mainOpts := append(slices.Clone(common), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second), nats.RetryOnFailedConnect(false))
	mainOpts = append(mainOpts, o.NATSOptions...)
	// The feed's connection never reconnects by itself: the feed makes a
	// new one, and resyncs (see feed.go).
	feedOpt := append(slices.Clone(common), nats.Name("statesync-feed"), nats.NoReconnect())
	feedOpt = append(feedOpt, o.NATSOptions...)

	s := &Store{feedOpt: feedOpt, feedURL: feedServers, bucket: o.Bucket, stream: "KV_" + o.Bucket,
		prefix: "$KV." + o.Bucket + ".", reps: o.Replicas, probe: o.ProbeInterval, timeout: o.RequestTimeout, log: o.Logger}
	s.hist.Store(&history{})
	if s.nc, err = connect(ctx, uo.servers, mainOpts); err != nil {
		return nil, fmt.Errorf("natsstore: connect: %w", err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("natsstore: %w", err)
	}
	if err := s.openBucket(ctx); err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("natsstore: open bucket %s: %w", s.bucket, err)
	}
	if s.kv, err = s.js.KeyValue(ctx, s.bucket); err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("natsstore: open bucket %s: %w", s.bucket, err)
	}
	f, err := s.startFeed(ctx, nil)
	if err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("natsstore: open: change feed: %w", err)
	}
	s.status.Up()
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.run(runCtx, f)
	return s, nil
}

// resolveOptions fills the zero fields of o from the URL's options uo and
// the defaults, and checks them.
func resolveOptions(o Options, uo urlOptions) (Options, error) {
	if o.Bucket == "" {
		o.Bucket = cmp(uo.bucket, DefaultBucket)
	}
	if err := checkBucket(o.Bucket); err != nil {
		return o, err
	}
	if o.Replicas == 0 {
		o.Replicas = max(uo.replicas, 1)
	}
	if o.Replicas < 1 || o.Replicas > maxReplicas {
		return o, fmt.Errorf("natsstore: Replicas %d: want 1 to %d", o.Replicas, maxReplicas)
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = uo.probe
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.ProbeInterval < minProbeInterval {
		return o, fmt.Errorf("natsstore: ProbeInterval %v is shorter than %v", o.ProbeInterval, minProbeInterval)
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = cmpDur(uo.timeout, DefaultRequestTimeout)
	}
	if o.RequestTimeout < minProbeInterval {
		return o, fmt.Errorf("natsstore: RequestTimeout %v is shorter than %v", o.RequestTimeout, minProbeInterval)
	}
	if o.FeedURL == "" {
		o.FeedURL = uo.feedURL
	}
	return o, nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cmpDur(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// reqContext bounds ctx by the store's request timeout.
func (s *Store) reqContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// connect connects to servers within ctx.
func connect(ctx context.Context, servers string, opts []nats.Option) (*nats.Conn, error) {
	if d, ok := ctx.Deadline(); ok {
		opts = append(slices.Clone(opts), nats.Timeout(max(time.Until(d), time.Millisecond)))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() { nc, err := nats.Connect(servers, opts...); ch <- result{nc, err} }()
	select {
	case r := <-ch:
		return r.nc, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// streamConfig is the configuration of a new bucket's stream: a key-value
// bucket as jetstream.CreateKeyValue makes it, with history 1, but with
// direct gets off (reads go to the stream's leader, never to a replica
// that may lag) and a first sequence taken from the clock (see the
// package documentation).
func (s *Store) streamConfig(now time.Time) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              s.stream,
		Description:       "statesync topics",
		Subjects:          []string{s.prefix + ">"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          s.reps,
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        2 * time.Minute,
		Discard:           jetstream.DiscardNew,
		AllowDirect:       false,
		FirstSeq:          firstSeq(now),
	}
}

// firstSeq is the first sequence of a stream made at now: the time in
// microseconds since 1970.
func firstSeq(now time.Time) uint64 { return uint64(max(now.UnixMicro(), 1)) }

// openBucket is [Store.ensureBucket] for Open, on servers that may not be
// ready yet. A cluster that has no quorum yet (servers started together
// with the daemon, a meta leader being elected) or that answers late (a
// replicated stream being placed on a loaded machine) is asked again, with a growing
// pause, for up to [openTries] request timeouts, each try logged: a
// timed-out request, no responders, and the JetStream errors "temporarily
// unavailable" and "no suitable peers" are such answers. Any other error,
// or ctx's end, fails at once. Making the stream again after a try that
// timed out is harmless: the server answers that the name is in use, and
// the stream is then looked up.
func (s *Store) openBucket(ctx context.Context) error {
	giveUp := time.Now().Add(openTries * s.timeout)
	pause := openPause
	for {
		err := s.ensureBucket(ctx)
		if err == nil || !notReady(err) || ctx.Err() != nil || time.Now().Add(pause).After(giveUp) {
			return err
		}
		s.log.Warn("natsstore: the servers cannot make or find the bucket yet; trying again",
			"bucket", s.bucket, "err", err, "in", pause)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

// openTries is how many request timeouts Open spends trying to make or
// find the bucket on servers that are not ready; openPause is the first
// pause between two tries.
const (
	openTries = 4
	openPause = 100 * time.Millisecond
)

// notReady reports whether err, from a request that makes or looks up
// the bucket, comes from servers that may answer it later.
func notReady(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 503 ||
		apiErr.ErrorCode == jsClusterNotAvail || apiErr.ErrorCode == jsClusterNoPeers)
}

// JetStream error codes that nats.go does not name: the cluster has no
// meta leader now (JSClusterNotAvailErr), and it finds too few servers
// online for the replicas asked (JSClusterNoPeersErr).
const (
	jsClusterNotAvail jetstream.ErrorCode = 10008
	jsClusterNoPeers  jetstream.ErrorCode = 10005
)

// ensureBucket creates the bucket's stream if it is missing, and reads its
// history, in one request of the store's timeout (a read or a write that
// finds the bucket gone makes it again so).
func (s *Store) ensureBucket(ctx context.Context) error {
	ctx, cancel := s.reqContext(ctx)
	defer cancel()
	st, err := s.js.CreateStream(ctx, s.streamConfig(time.Now()))
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = s.js.Stream(ctx, s.stream)
	}
	if err != nil {
		return err
	}
	info := st.CachedInfo()
	if info.Config.MaxMsgsPerSubject < 1 {
		return fmt.Errorf("stream %s is not a key-value bucket", s.stream)
	}
	if info.Config.AllowDirect {
		s.log.Warn("natsstore: the bucket allows direct gets; this store reads from the stream's leader anyway",
			"bucket", s.bucket)
	}
	s.setHistory(info)
	return nil
}

// setHistory records the bucket's history from its stream's info and
// returns it.
func (s *Store) setHistory(info *jetstream.StreamInfo) *history {
	h := &history{epoch: epochOf(s.stream, info.Created)}
	if old := s.hist.Load(); old.epoch == h.epoch {
		return old
	}
	s.hist.Store(h)
	return h
}

// epochOf derives the epoch of a stream from its name and its creation
// time: a bucket deleted and made again, or restored, has a new one. It
// has the form of [statesync.NewEpoch].
func epochOf(stream string, created time.Time) string {
	h := sha256.New()
	h.Write([]byte(stream))
	h.Write([]byte{0})
	h.Write([]byte(created.UTC().Format(time.RFC3339Nano)))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

// Close stops the change feed and closes the connections. It waits for the
// feed's watcher calls in progress; after it returns no watcher is called
// again and the store's methods return [statesync.ErrClosed]. It must not
// be called from a Watch callback. It is idempotent and returns nil.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.cancel()
		s.wg.Wait()
		// A delivery of the last consumer may still be running on a
		// goroutine of its connection: wait for it, and make any later
		// one a no-op.
		s.fmu.Lock()
		s.gen++
		s.fmu.Unlock()
		s.nc.Close()
	})
	return nil
}

// FeedStatus implements [statesync.FeedReporter].
func (s *Store) FeedStatus() statesync.FeedStatus {
	return s.status.Status()
}

// Bucket returns the name of the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Epoch returns the bucket's epoch as the store last read it.
func (s *Store) Epoch() string { return s.hist.Load().epoch }

// MaxValue returns the largest value, in bytes, a write with a source id
// of sourceIDLen bytes (as encoded in the header: see [SourceHeader]) can
// store: the server's max_payload less the message's header.
func (s *Store) MaxValue(sourceIDLen int) int {
	return int(s.nc.MaxPayload()) - headerRoom - len(SourceHeader) - sourceIDLen
}

// opErr turns the error of an operation into what the caller gets.
func (s *Store) opErr(op string, err error) error {
	if s.closed.Load() {
		return statesync.ErrClosed
	}
	return fmt.Errorf("natsstore: %s: %w", op, err)
}

// Get implements [statesync.Store]. The record is read from the stream's
// leader, never from a replica: it holds every write acknowledged before.
// A topic never written has revision 0, data "null" and the store's
// epoch; so has the empty topic, which no write can have made.
func (s *Store) Get(ctx context.Context, topic string) (statesync.Record, error) {
	if s.closed.Load() {
		return statesync.Record{}, statesync.ErrClosed
	}
	key := encodeKey(topic)
	if key == "" {
		return statesync.Record{Topic: topic, Epoch: s.Epoch(), Data: null()}, nil
	}
	m, err := s.lastMsg(ctx, key)
	if errors.Is(err, errNoStream) {
		if err = s.ensureBucket(ctx); err == nil {
			m, err = s.lastMsg(ctx, key)
		}
	}
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("get %q", topic), err)
	}
	rec := statesync.Record{Topic: topic, Epoch: s.Epoch(), Data: null()}
	if m != nil {
		rec.Revision = statesync.Revision(m.seq)
		rec.SourceID = decodeSource(m.header.Get(SourceHeader))
		rec.Time = m.time
		if len(m.data) > 0 && deleteOp(m.header) == "" {
			rec.Data = m.data
		}
	}
	return rec, nil
}

// encodeSource returns the header value of a source id.
func encodeSource(id string) string { return url.QueryEscape(id) }

// decodeSource returns the source id of a header value; a value that is
// not query-escaped (written by something else) is taken as it is.
func decodeSource(v string) string {
	if id, err := url.QueryUnescape(v); err == nil {
		return id
	}
	return v
}

// deleteOp returns the KV operation of a delete or purge marker ("DEL",
// "PURGE"), "" for a value. This package never writes markers (a deletion
// is a "null" value); a marker written by something else reads as null.
func deleteOp(h nats.Header) string {
	return h.Get("KV-Operation")
}

// Write implements [statesync.Store]. The topic must be valid
// ([statesync.CheckTopic]). Nil or JSON null data is stored as "null";
// other data is stored as the exact bytes given. The write is one publish
// to the bucket's stream; a conditional one carries the expected last
// sequence of the key's subject (0 for a key never written), which the
// stream's leader checks as it stores the message. The revision is the
// message's stream sequence. The record's Time is this process's clock.
func (s *Store) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	if s.closed.Load() {
		return statesync.Record{}, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return statesync.Record{}, err
	}
	if err := statesync.CheckTopic(w.Topic); err != nil {
		return statesync.Record{}, fmt.Errorf("natsstore: write: %w", err)
	}
	data := w.Data
	if data == nil || isNull(data) {
		data = null()
	} else {
		data = slices.Clone(data)
	}
	source := encodeSource(w.SourceID)
	if limit := s.MaxValue(len(source)); len(data) > limit {
		return statesync.Record{}, fmt.Errorf("natsstore: write %q: %d bytes of data (with a %d-byte encoded source id) exceed the %d bytes the NATS server's max_payload leaves",
			w.Topic, len(data), len(source), limit)
	}
	msg := &nats.Msg{Subject: s.prefix + encodeKey(w.Topic), Data: data}
	if source != "" {
		msg.Header = nats.Header{SourceHeader: []string{source}}
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(s.stream)}
	if w.Conditional {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(uint64(w.IfRevision)))
	}
	ack, err := s.publish(ctx, msg, opts)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// No stream listens: the bucket is gone. Make it again (a new
		// epoch) and write once more.
		if err = s.ensureBucket(ctx); err == nil {
			ack, err = s.publish(ctx, msg, opts)
		}
	}
	if w.Conditional && isWrongLastSeq(err) {
		return statesync.Record{}, s.conflict(ctx, w)
	}
	if err != nil {
		return statesync.Record{}, s.opErr(fmt.Sprintf("write %q", w.Topic), err)
	}
	return statesync.Record{Topic: w.Topic, Revision: statesync.Revision(ack.Sequence), Epoch: s.Epoch(), Data: data,
		SourceID: w.SourceID, Time: time.Now()}, nil
}

// publish publishes msg to the stream within the request timeout.
func (s *Store) publish(ctx context.Context, msg *nats.Msg, opts []jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ctx, cancel := s.reqContext(ctx)
	defer cancel()
	return s.js.PublishMsg(ctx, msg, opts...)
}

// isWrongLastSeq reports whether err is the stream's refusal of a
// conditional publish: 10071 on a stream of one replica, 10164 on a
// replicated one.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// conflict returns the *ConflictError of a conditional write that the
// stream refused, with the topic's current revision.
func (s *Store) conflict(ctx context.Context, w statesync.Write) error {
	cur, err := s.Get(ctx, w.Topic)
	if err != nil {
		return s.opErr(fmt.Sprintf("write %q: reading the current revision", w.Topic), err)
	}
	return &statesync.ConflictError{Topic: w.Topic, Expected: w.IfRevision, Current: cur.Revision, Epoch: cur.Epoch}
}

// List implements [statesync.Store]: every written topic (deleted ones
// included, their data is null) with its revision, epoch and time, sorted
// by topic in byte order, without data or source id. It reads the last
// message of every key with an ordered consumer of the stream's leader
// (a key-value watcher), and fails if the servers send nothing for the
// request timeout.
// Keys that are not topics of this package are left out.
func (s *Store) List(ctx context.Context) ([]statesync.Record, error) {
	return s.ListPrefix(ctx, "")
}

// ListPrefix implements [statesync.PrefixLister]: the records of List
// whose topics start with prefix. Keys are single NATS tokens, which a
// subject filter cannot select by prefix: it reads every key as List does,
// but keeps only the matching records, so a narrow prefix of a large
// bucket holds little memory.
func (s *Store) ListPrefix(ctx context.Context, prefix string) ([]statesync.Record, error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	w, err := s.kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return nil, s.opErr("list", err)
	}
	defer func() { _ = w.Stop() }()
	epoch := s.Epoch()
	var out []statesync.Record
	idle := time.NewTimer(s.timeout)
	defer idle.Stop()
	for {
		idle.Reset(s.timeout)
		select {
		case <-idle.C:
			return nil, s.opErr("list", fmt.Errorf("no answer within %v", s.timeout))
		case e, ok := <-w.Updates():
			if !ok {
				return nil, s.opErr("list", errors.New("the listing ended early"))
			}
			if e == nil {
				slices.SortFunc(out, func(a, b statesync.Record) int { return strings.Compare(a.Topic, b.Topic) })
				return out, nil
			}
			topic, ok := decodeKey(e.Key())
			if !ok || !strings.HasPrefix(topic, prefix) {
				continue
			}
			out = append(out, statesync.Record{Topic: topic, Revision: statesync.Revision(e.Revision()), Epoch: epoch, Time: e.Created()})
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Watch implements [statesync.Store]. fn is called by the change feed's
// goroutine, one record at a time, with the writes of every Store on the
// same bucket (this one's included) in stream order, without their data
// (DataOmitted is set), and with a Resync record (see
// [statesync.Record.Resync]) after the feed was recreated, found itself
// silent, or found the bucket's history lost. fn may read and write the
// store; it must not block, for it holds up the feed. stop waits for a
// call of fn in progress, so it must not be called from fn; after it
// returns, fn is not called again. stop is idempotent.
func (s *Store) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.feed.Watch(fn), nil
}

// A rawMsg is a message read from the stream.
type rawMsg struct {
	seq    uint64
	header nats.Header
	data   []byte
	time   time.Time
}

// errNoStream is the error of a read of a stream that does not exist.
var errNoStream = errors.New("the bucket's stream does not exist")

// JetStream API error codes this package reads.
const (
	codeNoMessage = 10037
	codeNoStream  = 10059
)

// lastMsg reads the last message of key from the stream's leader, through
// the STREAM.MSG.GET API (never a direct get, which any replica may
// answer). It returns nil if key has none.
func (s *Store) lastMsg(ctx context.Context, key string) (*rawMsg, error) {
	req, _ := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{s.prefix + key})
	ctx, cancel := s.reqContext(ctx)
	defer cancel()
	resp, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.stream, req)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, errNoStream
	}
	if err != nil {
		return nil, err
	}
	return decodeMsgGet(resp.Data)
}

// decodeMsgGet decodes the answer of the STREAM.MSG.GET API: the message,
// nil if there is none, or errNoStream.
func decodeMsgGet(b []byte) (*rawMsg, error) {
	var r struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrorCode   int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs"`
			Data     []byte    `json:"data"`
			Time     time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bad answer from the server: %w", err)
	}
	switch {
	case r.Error != nil && r.Error.ErrorCode == codeNoMessage:
		return nil, nil
	case r.Error != nil && r.Error.ErrorCode == codeNoStream:
		return nil, errNoStream
	case r.Error != nil:
		return nil, fmt.Errorf("server error %d (%d): %s", r.Error.ErrorCode, r.Error.Code, r.Error.Description)
	case r.Message == nil || r.Message.Sequence == 0:
		return nil, errors.New("bad answer from the server: no message")
	}
	m := &rawMsg{seq: r.Message.Sequence, data: r.Message.Data, time: r.Message.Time}
	if len(r.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(r.Message.Header)
		if err != nil {
			return nil, fmt.Errorf("bad message header: %w", err)
		}
		m.header = h
	}
	return m, nil
}

func null() []byte { return []byte("null") }

func isNull(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

// FeedSkipsSuperseded reports true: the bucket keeps one revision per key,
// so a revision that a later write of the same topic replaced before the
// change feed read it is gone, and the feed reports only the later one
// (see statesynctest.SupersedingStore).
func (s *Store) FeedSkipsSuperseded() bool { return true }
