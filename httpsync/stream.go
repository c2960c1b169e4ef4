package httpsync

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
)

// A stream is one open GET /v1/events. The handler's fan-out goroutine
// records the latest revision of each of its topics and wakes its
// goroutine (the request's), which writes the frames. Memory per stream is O(its topics):
// a revision waiting to be sent is replaced by a newer one, never queued.
type stream struct {
	wake chan struct{} // capacity 1: "something is pending"
	// signals holds the signal* bits set for the stream's goroutine (each
	// also sends on wake), so that it waits on one channel only.
	signals atomic.Uint32
	// grantMu protects owner, grants and grantGen once the stream is
	// registered; it is taken before mu, never after.
	grantMu sync.Mutex
	owner   *TokenGrants // the token it counts against (nil: none)
	grants  Grants       // the request's; nil without Auth (Handler.Regrant replaces them)
	// grantGen is the generation of the Regrant that gave grants (0:
	// the request's own).
	grantGen uint64
	// Set before the stream is registered, then read-only.
	named     []string // the topics it names (topic=), registered in Handler.byTopic
	prefixes  []string // its prefixes (prefix=), registered in Handler.byPrefix (prefix.go)
	maxTopics int      // the most topics a prefix stream may follow

	mu      sync.Mutex // protects the fields below
	topics  map[string]*streamTopic
	dirty   []*streamTopic // topics with a pending revision
	dl      writeDeadliner // the response's (or the hijacked connection's)
	alive   bool           // the stream's goroutine is running: dl may be used
	aborted bool           // Close aborted the stream's writes
	// countedInline says the stream counts in Handler.inlineStreams.
	countedInline bool
	// deadlineSet is when setDeadline last moved the write deadline.
	deadlineSet time.Time

	// The stream's buffered bytes (HandlerOptions.MaxStreamBuffer), see
	// streambuf.go.
	inline       int           // the stream's inline bound (-1: none), set by configure
	max          int64         // HandlerOptions.MaxStreamBuffer (<= 0: none)
	grace        time.Duration // how long the stream may stay over max
	timeout      time.Duration // HandlerOptions.WriteTimeout
	unsent       int64         // bytes of the write in progress not yet accepted by the connection
	pendingBytes int64         // the sizes of the pending inline snapshots
	writing      bool          // a write is in progress
	overSince    time.Time     // when unsent+pendingBytes went over max; zero if not over
	slowDL       bool          // the write deadline is overSince+grace
	// overflow is the prefix that came to match more than maxTopics
	// topics: the stream ends with a refused frame for it. "" if none.
	overflow string
}

// The signals of a stream's goroutine (stream.signals).
const (
	signalGone      = 1 << iota // the client went away
	signalDone                  // the handler is closing
	signalRevoked               // the stream's grants no longer cover it (Handler.Regrant)
	signalHeartbeat             // a heartbeat is due
)

// signal sets s in the stream's signals and wakes its goroutine.
func (st *stream) signal(s uint32) {
	st.signals.Or(s)
	st.wakeUp()
}

// streamTopic is the state of one topic of a stream.
type streamTopic struct {
	name string
	st   *stream // the stream it belongs to
	// idx is its index in its Handler.byTopic list, for the streams that
	// name it (h.mu protects it); unused for the topics of prefixes.
	idx        int
	pending    statesync.Invalidation
	hasPending bool
	// pendingFr holds pending's frames, if the fan-out goroutine built
	// them (nil: the stream builds them).
	pendingFr *fanFrame
	sent      statesync.Invalidation // the last frame's revision and epoch
	hasSent   bool
	// pendingSz is the size of pending's inline snapshot, counted in the
	// stream's pendingBytes.
	pendingSz int64
}

// writeDeadliner is what sets a stream's write deadline: an
// *http.ResponseController, or the net.Conn of a hijacked stream.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// newer reports whether a is a newer revision than b.
func newer(a, b statesync.Invalidation) bool {
	return a.Epoch != b.Epoch || a.Revision > b.Revision
}

// notifyTopic records inv for t, one of the stream's topics, and wakes
// the stream. It never blocks for long (a short lock) and allocates
// nothing. It reports whether one invalidation was coalesced (replaced, or
// dropped as already sent). size is about the size of the topic's inline
// snapshot (0 if unknown), counted in the stream's buffered bytes if the
// stream would send it inline. fr holds inv's frames, built once by the
// fan-out goroutine for every stream (nil: the stream builds them).
func (st *stream) notifyTopic(t *streamTopic, inv statesync.Invalidation, size int64, fr *fanFrame) (coalesced bool) {
	st.mu.Lock()
	return st.notifyLocked(t, inv, size, fr)
}

// notifyLocked is notifyTopic with st.mu held, which it unlocks.
func (st *stream) notifyLocked(t *streamTopic, inv statesync.Invalidation, size int64, fr *fanFrame) (coalesced bool) {
	if size > int64(st.inline) {
		size = 0 // sent as an invalidation
	}
	switch {
	case t.hasPending:
		if newer(inv, t.pending) {
			t.pending, t.pendingFr = inv, fr
			st.pendingBytes += size - t.pendingSz
			t.pendingSz = size
		}
		coalesced = true // one of the two is never sent
	case t.hasSent && !newer(inv, t.sent):
		coalesced = true // already sent (a duplicate, or an older write reported late)
	default:
		t.pending, t.pendingFr, t.hasPending, t.pendingSz = inv, fr, true, size
		st.pendingBytes += size
		st.dirty = append(st.dirty, t)
	}
	st.checkOver()
	st.mu.Unlock()
	st.wakeUp()
	return coalesced
}

// A pendingFrame is a pending invalidation of one of a stream's topics,
// with its frames if the fan-out goroutine built them.
type pendingFrame struct {
	t   *streamTopic
	inv statesync.Invalidation
	fr  *fanFrame
}

// take returns the pending invalidations and clears them. It skips, and
// counts in dups, those already sent meanwhile (by the initial frames,
// when a write lands between a stream's registration and its first read).
func (st *stream) take(buf []pendingFrame) (_ []pendingFrame, dups uint64) {
	st.mu.Lock()
	for _, t := range st.dirty {
		fr := t.pendingFr
		t.hasPending, t.pendingFr = false, nil
		st.pendingBytes -= t.pendingSz
		t.pendingSz = 0
		if t.hasSent && !newer(t.pending, t.sent) {
			dups++
			continue
		}
		buf = append(buf, pendingFrame{t, t.pending, fr})
	}
	clear(st.dirty)
	st.dirty = st.dirty[:0]
	st.mu.Unlock()
	return buf, dups
}

// markSent records the revision of the frame written for a topic; t is
// the topic's state if known (else it is looked up).
func (st *stream) markSent(t *streamTopic, inv statesync.Invalidation) {
	st.mu.Lock()
	if t == nil {
		t = st.topics[inv.Topic]
	}
	if t != nil && (!t.hasSent || newer(inv, t.sent)) {
		t.sent, t.hasSent = inv, true
		if t.hasPending && !newer(t.pending, t.sent) {
			// take skips it: it is no longer buffered.
			st.pendingBytes -= t.pendingSz
			t.pendingSz = 0
			st.checkOver()
		}
	}
	st.mu.Unlock()
}

// setDeadline makes sure the next writes have a write deadline at least
// timeout/2 away, unless the stream was aborted. Moving it re-arms a
// runtime timer on every flush, so it is moved (to now+timeout) only when it
// was last set more than timeout/2 ago: a client that reads nothing is cut
// between timeout/2 and timeout after a write starts blocking.
//
// Over the stream's buffer bound, the deadline is instead the end of the
// grace (see checkOver), unless the write timeout comes first.
func (st *stream) setDeadline(timeout time.Duration) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.aborted {
		return false
	}
	if timeout > 0 {
		now := time.Now()
		if st.deadlineSet.IsZero() || now.Sub(st.deadlineSet) > timeout/2 {
			if !st.slowDL { // else the grace's deadline is earlier
				_ = st.dl.SetWriteDeadline(now.Add(timeout)) // ErrNotSupported: no deadline
			}
			st.deadlineSet = now
		}
	}
	switch {
	case !st.overSince.IsZero() && !st.slowDL:
		st.armSlow()
	case st.overSince.IsZero() && st.slowDL:
		st.restoreDeadline()
	}
	return true
}

// abort unblocks a write in progress, by moving the deadline to the past.
func (st *stream) abort() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.alive && !st.aborted {
		st.aborted = true
		_ = st.dl.SetWriteDeadline(time.Unix(1, 0))
	}
}

// closing prepares a stream that is ending because of Close to end
// cleanly: it takes the place of abort (whose past deadline would cut the
// end of the response) and gives the response's final chunk a short
// deadline of its own.
func (st *stream) closing() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.aborted = true
	_ = st.dl.SetWriteDeadline(time.Now().Add(time.Second))
}

// invalidated is the source's watch callback. It runs on the writer's
// goroutine, so it does O(1) work whatever the number of streams: it
// records inv as the latest invalidation of its topic (latest-wins, so
// memory is O(topics)) and makes sure the fan-out goroutine is running,
// which notifies the streams.
func (h *Handler) invalidated(inv statesync.Invalidation) {
	h.fanMu.Lock()
	defer h.fanMu.Unlock()
	if h.fanClosed {
		return
	}
	if p, ok := h.fanPending[inv.Topic]; ok {
		if newer(inv, p.inv) {
			p.inv = inv
		}
		p.dropped++ // one of the two is never sent
		h.fanPending[inv.Topic] = p
		return
	}
	h.fanPending[inv.Topic] = fanEntry{inv: inv}
	h.fanDirty = append(h.fanDirty, inv.Topic)
	if !h.fanRunning {
		h.fanRunning = true
		h.fanWG.Add(1)
		go h.fanout()
	}
}

// fanEntry is the pending invalidation of a topic, waiting for the fan-out
// goroutine, and the number of older ones it replaced; then, for the
// fan-out goroutine, whether streams follow the topic and its frames.
type fanEntry struct {
	inv      statesync.Invalidation
	dropped  uint64
	followed bool
	fr       *fanFrame
}

// fanout is the handler's fan-out goroutine: it notifies the streams of the
// invalidations recorded by invalidated until none is pending, then
// returns (a handler without writes has no goroutine, and one that is
// dropped without Close leaks none). At most one runs at a time, and it is
// the only caller of stream.notifyTopic (and notifyPrefixed); it takes each topic's latest
// invalidation once, so a topic's invalidations reach a stream in order.
func (h *Handler) fanout() {
	defer h.fanWG.Done()
	var batch []fanEntry
	var prefixed []*stream // the prefix streams of an invalidation
	for {
		h.fanMu.Lock()
		if len(h.fanDirty) == 0 || h.fanClosed {
			h.fanRunning = false
			h.fanMu.Unlock()
			return
		}
		for _, topic := range h.fanDirty {
			batch = append(batch, h.fanPending[topic])
			delete(h.fanPending, topic)
		}
		clear(h.fanDirty)
		h.fanDirty = h.fanDirty[:0]
		h.fanMu.Unlock()
		// The frames of the followed topics, built outside h.mu (a large
		// snapshot takes a while to encode, and h.mu also admits new
		// streams). A stream that comes meanwhile is notified without
		// them, and builds its frame itself.
		h.mu.RLock()
		for i := range batch {
			topic := batch[i].inv.Topic
			batch[i].followed = len(h.byTopic[topic]) > 0 || (len(h.prefixLens) > 0 && len(h.prefixStreams(topic, prefixed[:0])) > 0)
		}
		clear(prefixed)
		h.mu.RUnlock()
		inline := h.inlineStreams.Load() > 0
		for i, p := range batch {
			if p.followed {
				batch[i].fr = h.fanFrame(p.inv, inline)
			}
		}
		var coalesced uint64
		h.mu.RLock()
		for _, p := range batch {
			named := h.byTopic[p.inv.Topic]
			prefixed = prefixed[:0]
			if len(h.prefixLens) > 0 {
				prefixed = h.prefixStreams(p.inv.Topic, prefixed)
			}
			// Each stream of the topic missed the replaced invalidations.
			coalesced += p.dropped * uint64(len(named))
			var size int64
			if len(named) > 0 || len(prefixed) > 0 {
				size = h.inlineEstimate(p.inv.Topic)
			}
			fr := p.fr
			for _, t := range named {
				if t.st.notifyTopic(t, p.inv, size, fr) {
					coalesced++
				}
			}
			for _, st := range prefixed {
				if st.notifyPrefixed(p.inv, size, fr) {
					coalesced++
				}
			}
		}
		clear(prefixed)
		h.mu.RUnlock()
		if coalesced > 0 {
			h.stats.invalidationsCoalesced.Add(coalesced)
		}
		clear(batch)
		batch = batch[:0]
	}
}

// stopFanout stops the fan-out goroutine, if one runs, and waits for it.
func (h *Handler) stopFanout() {
	h.fanMu.Lock()
	h.fanClosed = true
	h.fanMu.Unlock()
	h.fanWG.Wait()
}

func (h *Handler) register(st *stream) (ok bool) {
	h.mu.Lock()
	regrant, gen := h.regrant, h.regrantGen
	defer func() {
		h.mu.Unlock()
		if regrant != nil && ok {
			// st may have been authenticated before the latest Regrant.
			h.regrantStream(st, regrant, gen)
		}
	}()
	if h.closed.Load() {
		return false
	}
	h.streams[st] = struct{}{}
	h.registerPrefixes(st)
	for _, name := range st.named {
		t := st.topics[name]
		t.st, t.idx = st, len(h.byTopic[name])
		h.byTopic[name] = append(h.byTopic[name], t)
	}
	if !h.beatRunning {
		h.startHeartbeats()
	}
	h.stats.streamsOpen.Add(1)
	h.stats.streamsTotal.Add(1)
	return true
}

func (h *Handler) unregister(st *stream) {
	st.mu.Lock()
	st.alive = false
	if st.countedInline {
		st.countedInline = false
		h.inlineStreams.Add(-1)
	}
	st.mu.Unlock()
	h.mu.Lock()
	delete(h.streams, st)
	h.unregisterPrefixes(st)
	for _, name := range st.named {
		// Swap-remove st's entry from the topic's list.
		t, list := st.topics[name], h.byTopic[name]
		if last := len(list) - 1; last > 0 {
			list[t.idx] = list[last]
			list[t.idx].idx = t.idx
			list[last] = nil
			h.byTopic[name] = list[:last]
		} else {
			delete(h.byTopic, name)
		}
	}
	empty := len(h.streams) == 0
	if empty && h.beatRunning {
		h.stopHeartbeats()
	}
	h.mu.Unlock()
	st.grantMu.Lock()
	h.tokenStreams.release(st.owner)
	st.owner = nil
	st.grantMu.Unlock()
	h.stats.streamsOpen.Add(-1)
	if empty && h.closed.Load() {
		h.drain.Do(func() { close(h.drained) })
	}
}

// serveEvents serves GET /v1/events?topic=a&topic=b&prefix=c[&inline=N].
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request, g Grants) {
	q := r.URL.Query()
	names, prefixes := q["topic"], q["prefix"]
	if len(names) == 0 && len(prefixes) == 0 {
		h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "name at least one topic or prefix: /v1/events?topic=a&topic=b or /v1/events?prefix=a:")
		return
	}
	st := &stream{wake: make(chan struct{}, 1), topics: make(map[string]*streamTopic, len(names))}
	if h.opts.Auth != nil {
		st.grants = g
	}
	// A topic the stream may not follow (an invalid name, or one the token
	// may not read) is refused alone, with a refused frame: the others
	// are followed all the same.
	var refused []refusal
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		if len(seen) > h.opts.MaxStreamTopics {
			h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "more than "+strconv.Itoa(h.opts.MaxStreamTopics)+" topics in one stream")
			return
		}
		if err := statesync.CheckTopic(name); err != nil {
			refused = append(refused, refusal{Topic: name, Code: CodeInvalidTopic, Message: err.Error()})
			continue
		}
		if !g.CanRead(name) {
			refused = append(refused, refusal{Topic: name, Code: CodeForbidden, Message: "this token may not read topic " + strconv.Quote(name)})
			continue
		}
		st.topics[name] = &streamTopic{name: name}
		st.named = append(st.named, name)
	}
	// Prefixes are filtered per topic, never refused for the grants: a
	// prefix wider than them follows the topics under it the token may
	// read. A malformed one fails the request.
	seenPrefix := make(map[string]bool, len(prefixes))
	for _, p := range prefixes {
		if seenPrefix[p] {
			continue
		}
		seenPrefix[p] = true
		if len(seenPrefix) > maxStreamPrefixes {
			h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "more than "+strconv.Itoa(maxStreamPrefixes)+" prefixes in one stream")
			return
		}
		if err := checkPrefix(p); err != nil {
			h.fail(w, http.StatusBadRequest, CodeInvalidParameter, err.Error())
			return
		}
		st.prefixes = append(st.prefixes, p)
	}
	st.maxTopics = h.opts.MaxPrefixTopics
	if len(st.named) > st.maxTopics {
		st.maxTopics = len(st.named)
	}
	inline := -1
	if s := q.Get("inline"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			h.fail(w, http.StatusBadRequest, CodeInvalidParameter, "inline must be a number of bytes")
			return
		}
		inline = n
	}

	if len(st.named) == 0 && len(st.prefixes) == 0 {
		h.refuseAll(w, refused)
		return
	}

	owner, ok := h.tokenStreams.acquire(g, h.opts.MaxStreamsPerToken)
	if !ok {
		h.fail(w, http.StatusTooManyRequests, CodeTooManyStreams, "this token has "+strconv.Itoa(h.opts.MaxStreamsPerToken)+" event streams open, the most allowed")
		return
	}
	st.owner = owner
	rc := http.NewResponseController(w)
	st.dl = rc
	st.alive = true
	if !h.register(st) {
		h.tokenStreams.release(owner)
		h.fail(w, http.StatusServiceUnavailable, CodeUnavailable, "the server is shutting down")
		return
	}
	handedOff := false // to a goroutine of the stream's own, which unregisters it
	defer func() {
		if !handedOff {
			h.unregister(st)
		}
	}()
	if st.isRevoked() {
		// Authenticated with tokens replaced meanwhile (Regrant), which do
		// not cover it: nothing is sent; trying again asks the new ones.
		h.fail(w, http.StatusServiceUnavailable, CodeUnavailable, "the server's tokens changed while the stream opened: reconnect")
		return
	}

	// Registered first, read second: a write in between is both pending
	// and in the initial frame, and sent once.
	ctx := r.Context()
	initial := make([]statesync.Invalidation, 0, len(st.named))
	for _, name := range st.named {
		snap, err := h.src.Snapshot(ctx, name)
		if err != nil {
			h.sourceFailed(w, r, name, err)
			return
		}
		initial = append(initial, statesync.Invalidation{Topic: name, Revision: snap.Revision, Epoch: snap.Epoch})
	}
	if len(st.prefixes) > 0 {
		listed, err := h.listPrefixes(ctx, st, g)
		switch {
		case errors.Is(err, errTooManyTopics):
			h.fail(w, http.StatusBadRequest, CodeTooManyTopics, overflowMessage(st.maxTopics))
			return
		case err != nil:
			h.sourceFailed(w, r, "", err)
			return
		}
		initial = append(initial, listed...)
	}
	followed := len(initial)

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	sw := &frameWriter{h: h, st: st, inline: inline}
	st.configure(h, inline)
	sw.buf = strconv.AppendInt(append(sw.buf, "retry: "...), h.opts.RetryHint.Milliseconds(), 10)
	sw.buf = append(sw.buf, "\n\n"...)
	sw.buf = appendRefused(sw.buf, refused)

	if h.opts.HijackStreams && r.ProtoMajor == 1 {
		if conn, _, err := rc.Hijack(); err == nil {
			handedOff = true
			h.hijacked(conn, st, sw, hdr, initial, r.RemoteAddr)
			return
		}
	}

	w.WriteHeader(http.StatusOK)
	h.log.LogAttrs(ctx, slog.LevelDebug, "httpsync: stream opened", slog.Int("topics", followed), slog.String("remote", r.RemoteAddr))
	defer h.log.LogAttrs(ctx, slog.LevelDebug, "httpsync: stream closed", slog.String("remote", r.RemoteAddr))
	sw.ctx, sw.out, sw.flusher = ctx, w, rc.Flush
	for _, inv := range initial {
		sw.frame(inv)
	}
	stop := context.AfterFunc(ctx, func() { st.signal(signalGone) })
	defer stop()
	h.pump(st, sw)
}

// hijacked serves a stream whose connection was taken over from net/http
// (HandlerOptions.HijackStreams): it writes the response head, which
// announces that the body ends with the connection, and hands the stream
// to a goroutine of its own, so that the request's goroutine returns and
// net/http's buffers, request and context are freed. A second, small
// goroutine reads the connection to learn at once when the client goes
// away (or sends anything, which an event-stream client never does).
func (h *Handler) hijacked(conn net.Conn, st *stream, sw *frameWriter, hdr http.Header, initial []statesync.Invalidation, remote string) {
	st.mu.Lock()
	st.dl = conn
	st.mu.Unlock()
	_ = conn.SetReadDeadline(time.Time{}) // net/http's deadlines must not cut the stream
	tc := tcpConn(conn)
	if tc != nil && h.opts.MaxStreamBuffer > 0 {
		_ = tc.SetWriteBuffer(streamSendBuffer(h.opts.MaxStreamBuffer))
	}
	hdr.Set("Connection", "close")
	hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat)) // as net/http would
	// The status line, the header, then the retry hint already in sw.buf.
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&head) // a bytes.Buffer does not fail
	head.WriteString("\r\n")
	head.Write(sw.buf)
	sw.buf = head.Bytes()
	sw.ctx, sw.out = context.Background(), conn
	if tc != nil && !overTLS(conn) {
		// net.Buffers writes with writev only to the connection itself;
		// over TLS the frames must go through the *tls.Conn, never to the
		// TCP connection under it.
		sw.out = tc
	}
	for _, inv := range initial {
		sw.frame(inv)
	}
	h.log.LogAttrs(context.Background(), slog.LevelDebug, "httpsync: stream opened", slog.Int("topics", len(initial)),
		slog.String("remote", remote), slog.Bool("hijacked", true))
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		var b [1]byte
		_, _ = conn.Read(b[:]) // returns when the client closes, or sends something
		st.signal(signalGone)
	}()
	go func() {
		defer func() {
			if tc != nil && sw.slow {
				_ = tc.SetLinger(0) // a reset: the kernel drops the unsent data at once
			}
			_ = conn.Close() // ends the reader too
			<-gone
			h.unregister(st)
			h.log.LogAttrs(context.Background(), slog.LevelDebug, "httpsync: stream closed", slog.String("remote", remote))
		}()
		h.pump(st, sw)
	}()
}

// pump writes what sw holds, then frames, heartbeats and flushes until
// the client goes away (signalGone), the stream fails or is revoked, or
// the handler is closed. It waits on st.wake alone: whatever ends the
// stream, and the handler's heartbeats, set a signal and wake it.
func (h *Handler) pump(st *stream, sw *frameWriter) {
	if !sw.flush() {
		return
	}
	var batch []pendingFrame
	for range st.wake {
		sig := st.signals.Load()
		switch {
		case sig&signalGone != 0:
			return
		case sig&signalDone != 0:
			st.closing()
			h.farewell(sw)
			return
		case sig&signalRevoked != 0:
			// No frame for a token that lost its grants.
			sw.buf = append(sw.buf, revokedComment...)
			sw.flush()
			return
		}
		if sig&signalHeartbeat != 0 {
			st.signals.And(^uint32(signalHeartbeat))
			sw.buf = append(sw.buf, ": heartbeat\n\n"...)
			h.stats.heartbeats.Add(1)
		}
		var dups uint64
		batch, dups = st.take(batch[:0])
		if dups > 0 {
			h.stats.invalidationsCoalesced.Add(dups)
		}
		for _, p := range batch {
			sw.frameOf(p.t, p.inv, p.fr)
		}
		clear(batch)
		if p := st.overflowed(); p != "" {
			// Its prefixes match more topics than it may follow: end
			// it, with a frame that says why; the client's
			// reconnection is refused with 400 too_many_topics.
			sw.buf = appendOverflow(sw.buf, p, st.maxTopics)
			sw.flush()
			return
		}
		if !sw.flush() {
			select {
			case <-h.done: // aborted by Close: still end the response cleanly
				st.closing()
			default:
			}
			return
		}
	}
}

// startHeartbeats starts the handler's heartbeat goroutine, which asks
// every stream for a heartbeat once per HandlerOptions.Heartbeat while
// streams are open. h.mu is held.
func (h *Handler) startHeartbeats() {
	stop := make(chan struct{})
	h.beatRunning, h.beatStop = true, stop
	h.beatWG.Add(1)
	go h.heartbeats(stop)
}

// stopHeartbeats stops the heartbeat goroutine: the last stream is gone.
// h.mu is held.
func (h *Handler) stopHeartbeats() {
	close(h.beatStop)
	h.beatRunning, h.beatStop = false, nil
}

// heartbeats is the heartbeat goroutine: one ticker for all the streams,
// instead of one each. A stream's heartbeat is written, with its write
// deadline, by the stream's goroutine, so a dead client is still found
// out by its own heartbeats.
func (h *Handler) heartbeats(stop <-chan struct{}) {
	defer h.beatWG.Done()
	tick := time.NewTicker(h.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		h.mu.RLock()
		for st := range h.streams {
			st.signal(signalHeartbeat)
		}
		h.mu.RUnlock()
	}
}

// farewell writes the last frame of a stream that ends because the
// handler shuts down: a retry field that tells the client when to come
// back, farewellFloor plus i/ReconnectRate seconds for the i-th stream to
// end, so that the clients' reconnections are spread at about
// ReconnectRate a second (see HandlerOptions.ReconnectRate). It is written directly, within the short
// deadline of closing, and only between frames (the pump's select): a
// write that fails leaves the client to its own reconnection policy.
func (h *Handler) farewell(sw *frameWriter) {
	rate := h.opts.ReconnectRate
	if rate < 0 {
		return
	}
	i := h.farewells.Add(1) - 1
	b := appendFarewell(sw.buf[:0], farewellDelay(i, rate))
	sw.buf = b[:0]
	if _, err := sw.out.Write(b); err == nil && sw.flusher != nil {
		_ = sw.flusher()
	}
}

// farewellDelay is the reconnection delay the i-th stream to end at
// shutdown is given, at rate streams a second.
func farewellDelay(i int64, rate int) time.Duration {
	return farewellFloor + time.Duration(i)*time.Second/time.Duration(rate)
}

// farewellFloor is the shortest farewell delay. A browser's EventSource
// keeps the last retry value as its reconnection time, also between the
// failed attempts of a server that is not back yet (the standard allows a
// backoff of the browser's own, but does not require one): a delay near 0
// could make it retry in a tight loop. Few servers restart faster, so the
// clients lose little by it.
const farewellFloor = 500 * time.Millisecond

// appendFarewell appends a stream's last frame: "retry: MS", then a blank
// line (which dispatches nothing: the field only sets the reconnection
// delay).
func appendFarewell(b []byte, d time.Duration) []byte {
	b = strconv.AppendInt(append(b, "retry: "...), d.Milliseconds(), 10)
	return append(b, "\n\n"...)
}

// frameWriter formats frames into buf and writes them in one go.
type frameWriter struct {
	h       *Handler
	st      *stream
	ctx     context.Context // for reading snapshots
	out     io.Writer       // the response, or the hijacked connection
	flusher func() error    // flushes out; nil if out does not buffer
	inline  int             // -1: no inline snapshots

	// The next write: parts, then buf[mark:]. buf holds the stream's own
	// bytes (heads, invalidations, heartbeats); parts holds pieces of buf
	// and the bodies of shared frames, never copied (see sharedFrame).
	buf         []byte
	parts       [][]byte
	mark        int
	inlineBytes int  // the inline snapshots in the next write
	slow        bool // the stream was cut for staying over MaxStreamBuffer
	chunk, vec  net.Buffers
}

// frame appends the frame of inv: an inline snapshot if asked for and
// small enough, else an invalidation.
func (fw *frameWriter) frame(inv statesync.Invalidation) { fw.frameOf(nil, inv, nil) }

// frameOf is frame for t, the state of inv's topic in the stream if known
// (nil: looked up), with fr, inv's frames built by the fan-out goroutine
// (nil: built here).
func (fw *frameWriter) frameOf(t *streamTopic, inv statesync.Invalidation, fr *fanFrame) {
	if fw.inline >= 0 && fr != nil && fr.snap != nil {
		if enc := fr.snap.enc; len(enc) <= fw.inline && fw.fits(len(enc)) {
			if fr.whole != nil {
				fw.buf = append(fw.buf, fr.whole...)
			} else {
				fw.buf = append(fw.buf, fr.head...)
				fw.addShared(fr.snap.body)
				fw.buf = append(fw.buf, "\n\n"...)
			}
			fw.inlineBytes += len(enc)
			fw.st.markSent(t, fr.sent)
			fw.h.stats.snapshotsSent.Add(1)
			return
		}
	} else if fw.inline >= 0 {
		enc, snap, err := fw.h.encoded(fw.ctx, inv.Topic)
		if err == nil && len(enc) <= fw.inline && len(enc) > 1 && (snap.Epoch != inv.Epoch || snap.Revision >= inv.Revision) && fw.fits(len(enc)) {
			// {"topic":…,[sourceId,timestampMs,]"revision":…,"epoch":…,"data":…},
			// built once per revision and shared by the streams.
			f := fw.h.sharedFrame(inv.Topic, snap, enc)
			head := f.bare // a newer snapshot than inv: not inv's sourceId
			if snap.Revision == inv.Revision && snap.Epoch == inv.Epoch {
				head = f.head(inv)
			}
			fw.buf = append(fw.buf, head...)
			fw.addShared(f.body)
			fw.buf = append(fw.buf, "\n\n"...)
			fw.inlineBytes += len(enc)
			fw.st.markSent(t, statesync.Invalidation{Topic: inv.Topic, Revision: snap.Revision, Epoch: snap.Epoch})
			fw.h.stats.snapshotsSent.Add(1)
			return
		}
	}
	if fr != nil {
		fw.buf = append(fw.buf, fr.invalidation...)
	} else {
		fw.buf = append(fw.buf, "event: invalidation\ndata: "...)
		fw.buf = inv.AppendJSON(fw.buf)
		fw.buf = append(fw.buf, "\n\n"...)
	}
	fw.st.markSent(t, inv)
	fw.h.stats.invalidationsSent.Add(1)
}

// appendDataLines appends b as the value of an SSE data field: JSON may
// hold line breaks between tokens (never inside strings), and each one
// starts a new "data:" line, which the client joins back with "\n".
func appendDataLines(buf, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\n':
			buf = append(buf, "\ndata: "...)
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			buf = append(buf, "\ndata: "...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendQuoted appends s as a JSON string, as json.Marshal writes it.
func appendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// tcpConn returns the TCP connection under c: c itself, or the connection
// that a wrapper (a listener's, such as a connection-counting one, or
// *tls.Conn) returns from its NetConn method; nil if there is none.
func tcpConn(c net.Conn) *net.TCPConn {
	for range 8 { // wrappers of wrappers, within reason
		switch x := c.(type) {
		case *net.TCPConn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// overTLS reports whether c is, or wraps, a *tls.Conn: then tcpConn's
// connection may take socket options, but not writes.
func overTLS(c net.Conn) bool {
	for range 8 {
		switch x := c.(type) {
		case *tls.Conn:
			return true
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return false
		}
	}
	return false
}
