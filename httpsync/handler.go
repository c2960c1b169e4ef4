package httpsync

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/statesync-go/statesync"
)

// HandlerOptions configures a [Handler]. Nil or zero fields mean the
// documented defaults.
type HandlerOptions struct {
	// Auth authenticates each request and says which topics it may read
	// and write. Nil lets every request read and write every topic.
	Auth Authenticator
	// Heartbeat is the interval of the heartbeat comments of event
	// streams, which keep proxies from closing idle streams and let
	// clients notice dead ones. 0 means 15 s. One ticker serves every
	// stream: a stream's first heartbeat comes at most one interval after
	// it opens, then one per interval.
	Heartbeat time.Duration
	// RetryHint is the reconnection delay an event stream suggests to
	// clients (its "retry:" field). 0 means 2 s.
	RetryHint time.Duration
	// ReconnectRate spreads the return of the clients when the handler
	// shuts down ([Handler.Shutdown], [Handler.Close]): each event stream
	// ends with a retry field of its own, the i-th stream to end (from 0,
	// in no particular order) asking its client to reconnect after 500 ms
	// plus i/ReconnectRate seconds, so that a restarted server (or the
	// other servers behind a load balancer) sees at most about
	// ReconnectRate reconnections a second instead of all of them at once.
	// 10,000 streams at the default rate are told to come back between
	// 0.5 and 2.5 s. (The 500 ms keep browsers, whose EventSource may retry
	// a server that is not back yet at that same delay, out of a tight
	// loop.) 0 means 5,000 a second; negative means no such field
	// (the clients use their own reconnection policy).
	ReconnectRate int
	// MaxBody is the largest accepted request body, in bytes; a larger one
	// is refused with 413 and nothing is stored. 0 means 1 MiB.
	MaxBody int64
	// MaxDepth is the deepest nesting of arrays and objects a PUT or PATCH
	// body may have ({} and [1] are 1 deep, {"a":[]} is 2); a deeper one is
	// refused with 400 (code invalid_json) before anything parses it.
	// 0 means 256. Above 10,000, encoding/json's own limit applies.
	MaxDepth int
	// WriteTimeout bounds each write to an event stream: a client that
	// reads nothing for that long while the stream has something to send
	// is disconnected (it reconnects and misses nothing). It replaces the
	// http.Server's WriteTimeout for streams. 0 means 1 minute; negative
	// means none.
	WriteTimeout time.Duration
	// MaxStreamTopics is the largest number of topics one event stream may
	// follow. 0 means 1024.
	MaxStreamTopics int
	// MaxPrefixTopics is the largest number of topics an event stream
	// with prefixes (prefix=) may follow: the topics under its prefixes
	// that its token may read, and those it names. A stream whose
	// prefixes match more when it opens is refused with 400
	// (too_many_topics); one whose prefixes come to match more, as topics
	// are created, ends with a refused frame saying so. 0 means 10,000.
	MaxPrefixTopics int
	// ReadTimeout bounds reading a request's body, counted from when the
	// handler gets the request: a body not all received by then is
	// refused with 408 and its connection closed. It replaces the
	// http.Server's ReadTimeout for bodies. 0 means 10 s; negative means
	// none. Requests refused before their body is read (401, 403, 404,
	// 405, 413, 408) are answered at once with "Connection: close", so
	// that net/http closes the connection instead of reading the rest of
	// the body.
	ReadTimeout time.Duration
	// MaxStreamsPerToken is the largest number of event streams open at
	// once with one token of a [Tokens]; one more is refused with 429.
	// Streams are counted per [*TokenGrants], so the streams of other
	// Authenticators, and of a handler without Auth, are not capped.
	// 0 means 1000; negative means no cap.
	MaxStreamsPerToken int
	// Logger receives the handler's records (failed store calls at error
	// level, streams at debug level). Nil discards them.
	Logger *slog.Logger
	// HijackStreams serves HTTP/1.x event streams on connections taken
	// over from net/http ([http.Hijacker]) once accepted, which cuts the
	// server memory per stream by about two thirds. Such a response ends
	// with the connection, and http.Server's Close and Shutdown do not end
	// it: use [Handler.Close] or [Handler.Shutdown]. HTTP/2 streams are
	// served the standard way. See "Hijacked streams" in
	// docs/ARCHITECTURE.md.
	HijackStreams bool
	// MaxStreamBuffer bounds the bytes an event stream may hold for a
	// client that does not keep up (frames the connection has not accepted,
	// plus pending inline snapshots). A stream over the bound for 5 s is
	// disconnected (Stats.SlowDisconnects) and its client reconnects; a
	// hijacked stream's kernel send buffer is an eighth of the bound. 0
	// means 1 MiB; negative means no bound. See "Slow streams" in
	// docs/ARCHITECTURE.md.
	MaxStreamBuffer int64
}

// defaultReconnectRate is the default HandlerOptions.ReconnectRate.
const defaultReconnectRate = 5000

// gzipMinSize is the smallest snapshot that is gzipped: below it gzip
// saves nothing.
const gzipMinSize = 256

// maxSourceID bounds the X-Source-Id header.
const maxSourceID = 256

// A Handler is the HTTP API of a [statesync.Source] (see the package
// documentation for the routes). It answers the paths /v1/topics,
// /v1/topics/{topic} and /v1/events as they are, so mount it at "/v1/"
// without stripping the prefix.
//
// A Handler is safe for concurrent use. Its event streams end when the
// client goes away and when [Handler.Close] or [Handler.Shutdown] is
// called; after that every request is answered 503.
type Handler struct {
	src  *statesync.Source
	opts HandlerOptions
	log  *slog.Logger

	stopWatch func()
	enc       sync.Map // topic -> *encEntry, the newest encoded revision
	gz        sync.Map // topic -> *gzEntry, the newest gzipped revision
	stats     counters

	closed  atomic.Bool
	done    chan struct{} // closed by Close
	drained chan struct{} // closed when closed and no stream is left
	// farewells numbers the streams that end because of Close, for their
	// last retry field (HandlerOptions.ReconnectRate).
	farewells atomic.Int64

	// The watch callback records the latest invalidation of each topic
	// here and starts the fan-out goroutine, which notifies the streams.
	fanMu      sync.Mutex // protects the fan fields below
	fanPending map[string]fanEntry
	fanDirty   []string // the topics of fanPending, in arrival order
	fanRunning bool     // a fan-out goroutine runs
	fanClosed  bool     // Close was called: no more fan-out
	fanWG      sync.WaitGroup

	tokenStreams tokenStreams // streams open per token

	mu         sync.RWMutex // protects streams, byTopic, byPrefix, prefixLens, regrant and regrantGen
	streams    map[*stream]struct{}
	regrant    func(Grants) Grants // the latest Regrant's; nil before
	regrantGen uint64              // the number of Regrant calls
	// byTopic lists, for each topic, the streams that name it, by their
	// state of the topic (streamTopic.idx is the index in the list).
	byTopic map[string][]*streamTopic
	// The heartbeat goroutine runs while streams are open (beatRunning);
	// closing beatStop stops it.
	beatRunning bool
	beatStop    chan struct{}
	beatWG      sync.WaitGroup
	// inlineStreams counts the open streams that ask for inline
	// snapshots: without any, the fan-out goroutine builds no snapshot
	// frame.
	inlineStreams atomic.Int64
	// The prefix streams by prefix, and the number of prefixes of
	// byPrefix of each length (prefix.go).
	byPrefix   map[string]map[*stream]struct{}
	prefixLens map[int]int
	fanSeen    map[*stream]struct{} // the fan-out goroutine's scratch set
	listings   chan struct{}        // the prefix listings running (prefix.go)
	drain      sync.Once

	// frames holds the newest inline frame of each topic sent inline
	// (topic -> *sharedFrame), shared by the streams.
	frames sync.Map
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler serving src and starts following src's
// invalidations. [Handler.Close] stops it; it does not close src.
func NewHandler(src *statesync.Source, opts *HandlerOptions) *Handler {
	h := &Handler{
		src:     src,
		done:    make(chan struct{}),
		drained: make(chan struct{}),
		streams: map[*stream]struct{}{},
		byTopic: map[string][]*streamTopic{},

		byPrefix:   map[string]map[*stream]struct{}{},
		prefixLens: map[int]int{},
		fanSeen:    map[*stream]struct{}{},
		listings:   make(chan struct{}, maxPrefixListings),

		fanPending: map[string]fanEntry{},
	}
	if opts != nil {
		h.opts = *opts
	}
	if h.opts.Heartbeat <= 0 {
		h.opts.Heartbeat = 15 * time.Second
	}
	if h.opts.RetryHint <= 0 {
		h.opts.RetryHint = 2 * time.Second
	}
	if h.opts.ReconnectRate == 0 {
		h.opts.ReconnectRate = defaultReconnectRate
	}
	if h.opts.MaxBody <= 0 {
		h.opts.MaxBody = 1 << 20
	}
	if h.opts.MaxDepth <= 0 {
		h.opts.MaxDepth = 256
	}
	if h.opts.WriteTimeout == 0 {
		h.opts.WriteTimeout = time.Minute
	}
	if h.opts.MaxStreamTopics <= 0 {
		h.opts.MaxStreamTopics = 1024
	}
	if h.opts.MaxPrefixTopics <= 0 {
		h.opts.MaxPrefixTopics = defaultMaxPrefixTopics
	}
	if h.opts.ReadTimeout == 0 {
		h.opts.ReadTimeout = 10 * time.Second
	}
	if h.opts.MaxStreamsPerToken == 0 {
		h.opts.MaxStreamsPerToken = 1000
	}
	if h.opts.MaxStreamBuffer == 0 {
		h.opts.MaxStreamBuffer = 1 << 20
	}
	h.log = h.opts.Logger
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	stop, err := src.Watch(context.Background(), h.invalidated)
	if err != nil {
		// src is closed: it emits nothing more, and reads fail with
		// statesync.ErrClosed.
		stop = func() {}
	}
	h.stopWatch = stop
	return h
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats { return h.stats.snapshot() }

// Close ends every event stream and makes the handler answer 503 from now
// on, and waits for the streams' handlers to return. It is
// [Handler.Shutdown] without a deadline. It is idempotent.
func (h *Handler) Close() error { return h.Shutdown(context.Background()) }

// Shutdown stops notifying streams, ends every event stream (clients reconnect elsewhere, or to
// this address once a new server is up, and miss nothing; each stream's
// last frame is a retry field that spreads their return, see
// HandlerOptions.ReconnectRate), makes the
// handler answer 503 from now on, and waits until the streams' handlers
// have returned or ctx ends. Requests other than streams are not waited
// for: http.Server.Shutdown does that. Call Shutdown before
// http.Server.Shutdown, which would otherwise wait for streams that never
// go idle (or register it with http.Server.RegisterOnShutdown). It is
// idempotent.
func (h *Handler) Shutdown(ctx context.Context) error {
	if !h.closed.Swap(true) {
		close(h.done)
		h.stopWatch()
	}
	h.stopFanout()
	h.mu.RLock()
	streams := make([]*stream, 0, len(h.streams))
	for st := range h.streams {
		streams = append(streams, st)
	}
	empty := len(h.streams) == 0
	h.mu.RUnlock()
	for _, st := range streams {
		st.signal(signalDone)
	}
	for _, st := range streams {
		st.abort()
	}
	if empty {
		h.drain.Do(func() { close(h.drained) })
	}
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.limitBody(w, r)
	path := r.URL.Path
	var route func(http.ResponseWriter, *http.Request, Grants)
	var topic string
	switch {
	case path == "/v1/topics":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.dropBody(w, r)
			h.methodNotAllowed(w, "GET, HEAD")
			return
		}
		route = h.serveList
	case strings.HasPrefix(path, "/v1/topics/"):
		topic = path[len("/v1/topics/"):]
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			route = h.readRoute(topic, h.serveSnapshot)
		case http.MethodPut:
			route = h.writeRoute(topic, h.servePut)
		case http.MethodPatch:
			route = h.writeRoute(topic, h.servePatch)
		case http.MethodDelete:
			route = h.writeRoute(topic, h.serveDelete)
		default:
			h.dropBody(w, r)
			h.methodNotAllowed(w, "GET, HEAD, PUT, PATCH, DELETE")
			return
		}
	case path == "/v1/events":
		if r.Method != http.MethodGet {
			h.dropBody(w, r)
			h.methodNotAllowed(w, "GET")
			return
		}
		route = h.serveEvents
	default:
		h.dropBody(w, r)
		h.fail(w, http.StatusNotFound, CodeNotFound, "no route "+strconv.Quote(path))
		return
	}
	if h.closed.Load() {
		h.dropBody(w, r)
		h.fail(w, http.StatusServiceUnavailable, CodeUnavailable, "the server is shutting down")
		return
	}
	grants := Grants(allGrants{})
	if h.opts.Auth != nil {
		g, err := h.opts.Auth.Authenticate(r)
		if err != nil || g == nil {
			msg := "authentication failed"
			if err != nil {
				msg = err.Error()
			}
			h.dropBody(w, r)
			h.fail(w, http.StatusUnauthorized, CodeUnauthorized, msg)
			return
		}
		grants = g
	}
	route(w, r, grants)
}

// readRoute and writeRoute check the topic and the grants before serve.
func (h *Handler) readRoute(topic string, serve func(http.ResponseWriter, *http.Request, string)) func(http.ResponseWriter, *http.Request, Grants) {
	return func(w http.ResponseWriter, r *http.Request, g Grants) {
		if h.checkTopic(w, topic) && h.allowed(w, topic, g.CanRead(topic), "read") {
			serve(w, r, topic)
		}
	}
}

func (h *Handler) writeRoute(topic string, serve func(http.ResponseWriter, *http.Request, string, Grants)) func(http.ResponseWriter, *http.Request, Grants) {
	return func(w http.ResponseWriter, r *http.Request, g Grants) {
		if statesync.CheckTopic(topic) != nil || !g.CanWrite(topic) {
			h.dropBody(w, r) // refused before its body is read
		}
		if h.checkTopic(w, topic) && h.allowed(w, topic, g.CanWrite(topic), "write") {
			serve(w, r, topic, g)
		}
	}
}

func (h *Handler) checkTopic(w http.ResponseWriter, topic string) bool {
	if err := statesync.CheckTopic(topic); err != nil {
		h.fail(w, http.StatusBadRequest, CodeInvalidTopic, err.Error())
		return false
	}
	return true
}

func (h *Handler) allowed(w http.ResponseWriter, topic string, ok bool, what string) bool {
	if !ok {
		h.fail(w, http.StatusForbidden, CodeForbidden, "this token may not "+what+" topic "+strconv.Quote(topic))
	}
	return ok
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	h.fail(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "allowed methods: "+allow)
}

// fail writes an error response and counts it.
func (h *Handler) fail(w http.ResponseWriter, status int, code, msg string) {
	h.stats.countError(status)
	writeError(w, status, code, msg)
}

// sourceFailed answers an error of the source.
func (h *Handler) sourceFailed(w http.ResponseWriter, r *http.Request, topic string, err error) {
	var ce *statesync.ConflictError
	switch {
	case errors.As(err, &ce):
		h.stats.conflicts.Add(1)
		h.stats.countError(http.StatusPreconditionFailed)
		cur, exp := ce.Current, ce.Expected
		w.Header().Set("ETag", etag(ce.Epoch, ce.Current))
		writeErrorBody(w, http.StatusPreconditionFailed, errorDetail{Code: CodeConflict,
			Message: "topic " + strconv.Quote(topic) + " is at revision " + cur.String() + ", not " + exp.String(),
			Topic:   topic, Revision: &cur, Epoch: ce.Epoch, Expected: &exp})
	case errors.Is(err, statesync.ErrConflict):
		h.fail(w, http.StatusConflict, CodeContention, err.Error())
	case errors.Is(err, statesync.ErrInvalidTopic):
		h.fail(w, http.StatusBadRequest, CodeInvalidTopic, err.Error())
	case errors.Is(err, statesync.ErrInvalidPayload):
		h.fail(w, http.StatusBadRequest, CodeInvalidJSON, err.Error())
	case errors.Is(err, statesync.ErrClosed):
		h.fail(w, http.StatusServiceUnavailable, CodeUnavailable, "the source is closed")
	case r.Context().Err() != nil:
		h.fail(w, http.StatusServiceUnavailable, CodeUnavailable, "request cancelled")
	default:
		h.log.LogAttrs(r.Context(), slog.LevelError, "httpsync: source failed",
			slog.String("method", r.Method), slog.String("topic", topic), slog.Any("err", err))
		h.fail(w, http.StatusInternalServerError, CodeInternal, "the store failed")
	}
}

// --- reads ---

func (h *Handler) serveSnapshot(w http.ResponseWriter, r *http.Request, topic string) {
	ctx, ok := h.readContext(w, r)
	if !ok {
		return
	}
	enc, snap, err := h.encoded(ctx, topic)
	if err != nil {
		h.sourceFailed(w, r, topic, err)
		return
	}
	tag := etag(snap.Epoch, snap.Revision)
	hdr := w.Header()
	hdr.Set("ETag", tag)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Add("Vary", "Accept-Encoding") // Add: a CORS middleware may have set Vary: Origin
	if inm := r.Header.Get("If-None-Match"); inm != "" && noneMatch(inm, tag) {
		h.stats.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := enc
	if len(enc) >= gzipMinSize && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = h.gzipped(topic, snap, enc)
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	h.stats.snapshotGets.Add(1)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// maxEpoch bounds the epoch parameter of a snapshot GET.
const maxEpoch = 256

// readContext returns the context of a snapshot GET, carrying its
// minRevision and epoch parameters (see [statesync.WithMinRevision]); ok is
// false if an error was written.
func (h *Handler) readContext(w http.ResponseWriter, r *http.Request) (context.Context, bool) {
	ctx := r.Context()
	if r.URL.RawQuery == "" {
		return ctx, true
	}
	q := r.URL.Query()
	revs, epochs := q["minRevision"], q["epoch"]
	if len(revs) == 0 && len(epochs) == 0 {
		return ctx, true
	}
	if len(revs) != 1 || len(epochs) > 1 {
		h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "give minRevision once, with at most one epoch: ?minRevision=42&epoch=E")
		return nil, false
	}
	rev, err := statesync.ParseRevision(revs[0])
	if err != nil {
		h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "minRevision must be a canonical decimal revision (0 to 18446744073709551615, no leading zeros)")
		return nil, false
	}
	var epoch string
	if len(epochs) == 1 {
		epoch = epochs[0]
		if !validEpoch(epoch) {
			h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "epoch must be 1 to "+strconv.Itoa(maxEpoch)+" visible ASCII characters other than '\"'")
			return nil, false
		}
	}
	return statesync.WithMinRevision(ctx, epoch, rev), true
}

// validEpoch reports whether s can be an epoch: what fits in an entity tag
// (RFC 9110 etagc without obs-text), 1 to maxEpoch bytes.
func validEpoch(s string) bool {
	if s == "" || len(s) > maxEpoch {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' {
			return false
		}
	}
	return true
}

// encEntry is the JSON encoding of one revision of a topic.
type encEntry struct {
	version
	once sync.Once
	b    []byte
}

// encoded returns the latest snapshot of topic and its JSON encoding, built
// once per revision and shared by every caller (do not modify it): the
// newest revision of each topic is kept. The encoding is always that of
// the snapshot returned: newestEntry gives an entry of exactly its epoch
// and revision, never an older or newer one cached for the topic, so a
// snapshot read through to the store for a minRevision (ctx) is served
// as read.
func (h *Handler) encoded(ctx context.Context, topic string) ([]byte, statesync.Snapshot, error) {
	snap, err := h.src.Snapshot(ctx, topic)
	if err != nil {
		return nil, statesync.Snapshot{}, err
	}
	return h.encodedSnapshot(topic, snap), snap, nil
}

// encodedSnapshot is encoded for snap, a snapshot of topic already read.
func (h *Handler) encodedSnapshot(topic string, snap statesync.Snapshot) []byte {
	e := newestEntry(&h.enc, topic, version{snap.Epoch, snap.Revision}, func(v version) *encEntry { return &encEntry{version: v} })
	e.once.Do(func() { e.b = snap.AppendJSON(nil) })
	return e.b
}

// gzEntry is the gzip encoding of one revision of a topic.
type gzEntry struct {
	version
	once sync.Once
	b    []byte
}

// gzipped returns the gzip encoding of enc, the snapshot snap of topic,
// built once per revision: the newest revision of each topic is kept.
func (h *Handler) gzipped(topic string, snap statesync.Snapshot, enc []byte) []byte {
	e := newestEntry(&h.gz, topic, version{snap.Epoch, snap.Revision}, func(v version) *gzEntry { return &gzEntry{version: v} })
	e.once.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression) // a valid level
		_, _ = zw.Write(enc)                                        // a bytes.Buffer never fails
		_ = zw.Close()
		e.b = buf.Bytes()
		h.stats.gzipEncodes.Add(1)
	})
	return e.b
}

// topicList is the body of GET /v1/topics.
type topicList struct {
	Topics []statesync.TopicInfo `json:"topics"`
}

func (h *Handler) serveList(w http.ResponseWriter, r *http.Request, g Grants) {
	infos, err := h.readableTopics(r.Context(), g)
	if err != nil {
		h.sourceFailed(w, r, "", err)
		return
	}
	out := topicList{Topics: make([]statesync.TopicInfo, 0, len(infos))}
	for _, ti := range infos {
		if g.CanRead(ti.Topic) {
			out.Topics = append(out.Topics, ti)
		}
	}
	h.writeJSON(w, r, http.StatusOK, out)
}

func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "httpsync: encoding response", slog.Any("err", err))
		h.fail(w, http.StatusInternalServerError, CodeInternal, "encoding the response failed")
		return
	}
	b = append(b, '\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// --- writes ---

// writeResult is the body of a successful write. Data is set for PATCH
// only, and only for a caller that may read the topic: the writer of a PUT
// knows it, the writer of a PATCH does not.
type writeResult struct {
	Revision statesync.Revision `json:"revision"`
	Epoch    string             `json:"epoch,omitempty"`
	Data     json.RawMessage    `json:"data,omitempty"`
}

// precondition reads If-Match; ok is false if an error was written.
func (h *Handler) precondition(w http.ResponseWriter, r *http.Request) (p precondition, has, ok bool) {
	v := r.Header.Values("If-Match")
	if len(v) == 0 {
		return precondition{}, false, true
	}
	if len(v) > 1 {
		h.dropBody(w, r) // refused before its body is read
		h.fail(w, http.StatusBadRequest, CodeInvalidIfMatch, errIfMatch.Error())
		return precondition{}, false, false
	}
	p, err := parseIfMatch(v[0])
	if err != nil {
		h.dropBody(w, r) // refused before its body is read
		h.fail(w, http.StatusBadRequest, CodeInvalidIfMatch, err.Error())
		return precondition{}, false, false
	}
	return p, !p.any, true
}

// writeContext returns the context of a write, carrying X-Source-Id once
// checked against the caller's name (see sourceIDAllowed).
func (h *Handler) writeContext(w http.ResponseWriter, r *http.Request, g Grants) (context.Context, bool) {
	ctx := r.Context()
	if id := r.Header.Get("X-Source-Id"); id != "" {
		if len(id) > maxSourceID {
			h.dropBody(w, r) // refused before its body is read
			h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "X-Source-Id is longer than "+strconv.Itoa(maxSourceID)+" bytes")
			return nil, false
		}
		if msg, ok := sourceIDAllowed(id, g); !ok {
			h.dropBody(w, r) // refused before its body is read
			h.fail(w, http.StatusForbidden, CodeForbidden, msg)
			return nil, false
		}
		ctx = statesync.WithSourceID(ctx, id)
	}
	return ctx, true
}

// readBody reads a JSON body of at most MaxBody bytes; ok is false if an
// error was written.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		h.dropBody(w, r)
		var mbe *http.MaxBytesError
		switch {
		case bodyTimedOut(err):
			h.fail(w, http.StatusRequestTimeout, CodeTimeout, "the body did not arrive in time")
		case errors.As(err, &mbe):
			h.fail(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than "+strconv.FormatInt(h.opts.MaxBody, 10)+" bytes")
		default:
			h.fail(w, http.StatusBadRequest, CodeInvalidJSON, "reading the body: "+err.Error())
		}
		return nil, false
	}
	// The depth first, in one pass: nothing else may parse a deep body.
	if jsonDepth(b, h.opts.MaxDepth) > h.opts.MaxDepth {
		h.fail(w, http.StatusBadRequest, CodeInvalidJSON, "the body nests arrays and objects deeper than "+strconv.Itoa(h.opts.MaxDepth)+" levels")
		return nil, false
	}
	if !json.Valid(b) {
		h.fail(w, http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON")
		return nil, false
	}
	if !utf8.Valid(b) {
		h.fail(w, http.StatusBadRequest, CodeInvalidJSON, "the body is not valid UTF-8")
		return nil, false
	}
	return b, true
}

func (h *Handler) servePut(w http.ResponseWriter, r *http.Request, topic string, g Grants) {
	p, conditional, ok := h.precondition(w, r)
	if !ok {
		return
	}
	ctx, ok := h.writeContext(w, r, g)
	if !ok {
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	h.store(w, r, ctx, topic, body, p, conditional)
}

func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request, topic string, g Grants) {
	p, conditional, ok := h.precondition(w, r)
	if !ok {
		return
	}
	ctx, ok := h.writeContext(w, r, g)
	if !ok {
		return
	}
	h.store(w, r, ctx, topic, nil, p, conditional)
}

// store writes data (nil: null) to topic, compare-and-set if conditional.
func (h *Handler) store(w http.ResponseWriter, r *http.Request, ctx context.Context, topic string, data json.RawMessage, p precondition, conditional bool) {
	var snap statesync.Snapshot
	var err error
	switch {
	case !conditional:
		snap, err = h.src.Put(ctx, topic, data)
	default:
		if p.hasEpoch {
			// The ETag form: the epoch must be the current one too. Epochs
			// change only when a store loses continuity, so checking it
			// before the compare-and-set is enough.
			cur, gerr := h.src.Snapshot(ctx, topic)
			if gerr != nil {
				h.sourceFailed(w, r, topic, gerr)
				return
			}
			if cur.Epoch != p.epoch {
				h.sourceFailed(w, r, topic, &statesync.ConflictError{Topic: topic, Expected: p.rev, Current: cur.Revision, Epoch: cur.Epoch})
				return
			}
		}
		snap, err = h.src.PutIf(ctx, topic, data, p.rev)
	}
	if err != nil {
		h.sourceFailed(w, r, topic, err)
		return
	}
	h.written(w, r, snap, false)
}

func (h *Handler) written(w http.ResponseWriter, r *http.Request, snap statesync.Snapshot, withData bool) {
	h.stats.writes.Add(1)
	res := writeResult{Revision: snap.Revision, Epoch: snap.Epoch}
	if withData {
		res.Data = snap.Data
		if len(res.Data) == 0 {
			res.Data = json.RawMessage("null")
		}
	}
	w.Header().Set("ETag", etag(snap.Epoch, snap.Revision))
	h.writeJSON(w, r, http.StatusOK, res)
}

func (h *Handler) servePatch(w http.ResponseWriter, r *http.Request, topic string, g Grants) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/merge-patch+json" && mt != "application/json") {
			h.dropBody(w, r) // refused before its body is read
			h.fail(w, http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"PATCH takes a JSON merge patch (RFC 7396), Content-Type application/merge-patch+json")
			return
		}
	}
	p, conditional, ok := h.precondition(w, r)
	if !ok {
		return
	}
	ctx, ok := h.writeContext(w, r, g)
	if !ok {
		return
	}
	patch, ok := h.readBody(w, r)
	if !ok {
		return
	}
	snap, err := h.src.Update(ctx, topic, func(cur statesync.Snapshot) (json.RawMessage, error) {
		if conditional && (cur.Revision != p.rev || p.hasEpoch && cur.Epoch != p.epoch) {
			return nil, &statesync.ConflictError{Topic: topic, Expected: p.rev, Current: cur.Revision, Epoch: cur.Epoch}
		}
		data, err := MergePatch(cur.Data, patch)
		if err == nil && sameJSON(cur.Data, data) {
			return nil, &unchangedError{cur} // a no-op: no new revision
		}
		return data, err
	})
	var unchanged *unchangedError
	if errors.As(err, &unchanged) {
		snap, err = unchanged.cur, nil
	}
	if err != nil {
		h.sourceFailed(w, r, topic, err)
		return
	}
	h.written(w, r, snap, g.CanRead(topic))
}
