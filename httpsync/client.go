package httpsync

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
)

// ClientOptions configures a [Client]. Nil or zero fields mean the
// documented defaults; the options are copied by [NewClient].
type ClientOptions struct {
	// HTTPClient makes the requests. It must not have a Timeout, which
	// would cut the event stream; bound requests with their context
	// instead. Nil means a client with a transport of its own, whose idle
	// connections [Client.Close] closes.
	HTTPClient *http.Client
	// Token, if set, is sent as a bearer token with every request.
	Token string
	// SourceID, if set, is sent with every write (X-Source-Id), so that the
	// invalidations of this client's writes carry it and its consumers can
	// skip their own echo with [statesync.ConsumerOptions.ShouldRefresh].
	// A server with tokens takes only the token's name or the name
	// followed by "/" and anything ("worker/1"), and refuses other writes
	// with 403.
	SourceID string
	// Logger receives the client's records (stream errors and reconnects at
	// warn level, connects at debug level). Nil discards them.
	Logger *slog.Logger
	// Inline asks the event stream to carry the snapshots of at most this
	// many bytes in its frames, so that [Client.Snapshot] returns them
	// without a request. 0 means no inline snapshots.
	Inline int
	// Backoff spaces the event stream's reconnections.
	Backoff Backoff
	// Debounce is how long the client waits after the set of followed
	// topics changes before it reopens the event stream with the new set,
	// so that many subscriptions made together cost one reconnection.
	// 0 means 10 ms.
	Debounce time.Duration
	// IdleTimeout is how long the event stream may stay silent before the
	// client drops it and reconnects. It must be longer than the server's
	// heartbeat interval (HandlerOptions.Heartbeat, 15 s by default).
	// 0 means 45 s; negative means no limit.
	IdleTimeout time.Duration
	// MaxFrame is the largest event stream frame accepted, in bytes; a
	// larger one breaks the connection. 0 means 1 MiB plus Inline.
	MaxFrame int
}

// Backoff is the reconnection policy of the event stream: full-jitter
// exponential backoff, the n-th consecutive failure waiting a uniformly
// random time in [0, min(Max, Initial·2ⁿ)). Responses 400, 401, 403 and
// 404, which retrying soon would not cure, wait between Max/2 and Max.
//
// A stream that a server shutting down ended with a retry field of its
// own (see [HandlerOptions].ReconnectRate) is reopened after that delay
// (at most Max) instead, and the failures of the next 5 s (a restarted
// server not listening yet) wait between half and all of the smallest of
// Initial, the retry hint and 500 ms; the backoff then goes on from the
// attempts made meanwhile. Such an ending is honoured at most once per
// ResetAfter.
type Backoff struct {
	// Initial is the base delay. 0 means the server's retry hint if it
	// sent one, else 500 ms.
	Initial time.Duration
	// Max caps the delay. 0 means 30 s.
	Max time.Duration
	// ResetAfter is how long a connection must have been up for the next
	// failure to count as the first again. 0 means 30 s.
	ResetAfter time.Duration
}

// A Client talks to a statesync HTTP server (a [Handler]). It is a
// [statesync.Subscriber], multiplexing every topic it follows over one
// event stream; a [statesync.Provider], making conditional GETs; and a
// writer (Put, PutIf, Patch, Delete) for producers.
//
// A Client is safe for concurrent use. Its goroutines (one for the event
// stream while it follows topics, one per connection) end with
// [Client.Close].
type Client struct {
	base string // without a trailing slash
	hc   *http.Client
	own  *http.Transport // nil if the caller gave HTTPClient
	opts ClientOptions
	log  *slog.Logger

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	changed chan struct{} // capacity 1: the set of followed topics changed

	mu      sync.Mutex // protects the fields below
	closed  bool
	running bool                       // the stream goroutine was started
	subs    map[string][]*subscription // topic -> handlers, replaced on change
	cache   map[string]*topicCache
	live    map[string]bool // the topics of the open stream; nil if none
	refused map[string]bool // the topics the open stream refused; nil if none
	written writtenRevs     // the revisions of this client's latest writes
}

// maxWritten bounds the topics whose written revision a Client remembers.
const maxWritten = 4096

// writtenRevs remembers the revision of this client's latest successful
// write of each topic (or the current revision a failed compare-and-set
// reported), for the most recently written maxWritten topics (least
// recently written out first), so that a later read of the topic asks for
// at least it (read-your-writes across daemons).
type writtenRevs struct {
	order *list.List               // of *writtenRev, most recent first
	byKey map[string]*list.Element // topic -> element of order
}

type writtenRev struct {
	topic string
	epoch string
	rev   statesync.Revision
}

// note records a write of topic at rev in epoch, unless a later revision
// of the same epoch is recorded.
func (w *writtenRevs) note(topic, epoch string, rev statesync.Revision) {
	if rev == 0 {
		return
	}
	if w.byKey == nil {
		w.order, w.byKey = list.New(), map[string]*list.Element{}
	}
	if e := w.byKey[topic]; e != nil {
		wr := e.Value.(*writtenRev)
		if wr.epoch != epoch || rev > wr.rev {
			wr.epoch, wr.rev = epoch, rev
		}
		w.order.MoveToFront(e)
		return
	}
	w.byKey[topic] = w.order.PushFront(&writtenRev{topic: topic, epoch: epoch, rev: rev})
	if w.order.Len() > maxWritten {
		old := w.order.Remove(w.order.Back()).(*writtenRev)
		delete(w.byKey, old.topic)
	}
}

// get returns the recorded write of topic.
func (w *writtenRevs) get(topic string) (epoch string, rev statesync.Revision, ok bool) {
	if e := w.byKey[topic]; e != nil {
		wr := e.Value.(*writtenRev)
		return wr.epoch, wr.rev, true
	}
	return "", 0, false
}

// minRev is the least revision a read asks for (see minRevision).
type minRev struct {
	epoch string
	rev   statesync.Revision
	ok    bool
}

// satisfiedBy reports whether s is at least m: of m's epoch (or either
// has none) and at m's revision or above.
func (m minRev) satisfiedBy(s statesync.Snapshot) bool {
	return !m.ok || s.Revision >= m.rev && (m.epoch == "" || s.Epoch == "" || s.Epoch == m.epoch)
}

// minRevision returns the least revision a read of topic asks the server
// for: the larger of the one ctx carries ([statesync.MinRevision], set by
// the engine from the invalidation it acts on) and that of this client's
// last write of topic. Of two epochs, ctx's wins. c.mu is held.
func (c *Client) minRevision(ctx context.Context, topic string) minRev {
	var m minRev
	m.epoch, m.rev, m.ok = statesync.MinRevision(ctx)
	if we, wr, ok := c.written.get(topic); ok {
		switch {
		case !m.ok:
			m = minRev{we, wr, true}
		case m.epoch == "" || we == "" || m.epoch == we:
			if wr > m.rev {
				m.rev = wr
			}
			if m.epoch == "" {
				m.epoch = we
			}
		}
	}
	return m
}

// A subscription is one Subscribe call.
type subscription struct {
	h      statesync.InvalidationHandler
	active atomic.Bool
	ready  chan struct{} // closed once a connection attempt for its topic ended
	err    error         // set before ready is closed: the server refused the topic
}

// topicCache is what the client knows of a topic's snapshots.
type topicCache struct {
	etag    string             // of snap
	snap    statesync.Snapshot // the last one a GET returned
	hasSnap bool
	inline  statesync.Snapshot // the last inline snapshot of the open stream
	hasInl  bool
}

var (
	_ statesync.Subscriber     = (*Client)(nil)
	_ statesync.SharedProvider = (*Client)(nil)
	_ statesync.SnapshotPeeker = (*Client)(nil)
)

// NewClient returns a Client of the server at baseURL (http or https, with
// an optional path prefix, e.g. "http://127.0.0.1:8765"). It does no I/O:
// the event stream opens with the first subscription.
func NewClient(baseURL string, opts *ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("httpsync: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("httpsync: base URL %q: want http://host[:port][/prefix] or https://…", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("httpsync: base URL %q has a query or fragment", baseURL)
	}
	c := &Client{base: strings.TrimRight(u.String(), "/"), changed: make(chan struct{}, 1),
		subs: map[string][]*subscription{}, cache: map[string]*topicCache{}}
	if opts != nil {
		c.opts = *opts
	}
	c.hc = c.opts.HTTPClient
	if c.hc == nil {
		c.own = http.DefaultTransport.(*http.Transport).Clone()
		c.hc = &http.Client{Transport: c.own}
	}
	if c.opts.Backoff.Max <= 0 {
		c.opts.Backoff.Max = 30 * time.Second
	}
	if c.opts.Backoff.ResetAfter <= 0 {
		c.opts.Backoff.ResetAfter = 30 * time.Second
	}
	if c.opts.Debounce <= 0 {
		c.opts.Debounce = 10 * time.Millisecond
	}
	if c.opts.IdleTimeout == 0 {
		c.opts.IdleTimeout = 45 * time.Second
	}
	if c.opts.Inline < 0 {
		c.opts.Inline = 0
	}
	if c.opts.MaxFrame <= 0 {
		c.opts.MaxFrame = 1<<20 + c.opts.Inline
	}
	c.log = c.opts.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With(slog.String("component", "httpsync"), slog.String("server", c.base))
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close closes the event stream, stops the client's goroutines and waits
// for them, and cancels its requests in flight. Afterwards Subscribe and
// the requests return [statesync.ErrClosed]. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
	return nil
}

// signal tells the stream goroutine that the set of topics changed.
func (c *Client) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Subscribe implements [statesync.Subscriber]: h receives the
// invalidations of topic from the client's event stream until the returned
// function is called.
//
// The stream (re)opens in the background with the new set of topics, and
// Subscribe waits until the server has taken the topic in, so that every
// invalidation of the topic made after Subscribe returns is delivered, or
// until that attempt failed (the client then retries in the background),
// or ctx ends (Subscribe then undoes the subscription and returns
// ctx.Err()). A stream's first frames carry the current revision of each
// topic, after every reconnection too, so a consumer misses nothing while
// the stream is down. A malformed frame is given to h.InvalidateRaw, so
// that the consumer reports it.
//
// All the topics of a Client share one stream. A topic the server refuses
// (one the token may not read, 403, or whose name it finds invalid, 400)
// fails alone: Subscribe returns a *[StatusError] with the status, code and
// message of the refusal, which is not retryable, and the other topics are
// followed all the same. A topic refused later, when the stream reconnects
// (the token's grants changed), is logged at warn level and no longer
// followed: its handlers receive nothing more.
//
// Once the returned function has returned, no delivery to h begins; one
// already running on the stream's goroutine may finish. It may be called
// from inside h.
func (c *Client) Subscribe(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := statesync.CheckTopic(topic); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("httpsync: nil handler")
	}
	s := &subscription{h: h, ready: make(chan struct{})}
	s.active.Store(true)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, statesync.ErrClosed
	}
	list := c.subs[topic]
	c.subs[topic] = append(list[:len(list):len(list)], s)
	if c.live[topic] {
		close(s.ready)
	}
	if len(list) == 0 {
		c.signal()
	}
	if !c.running {
		c.running = true
		c.wg.Go(c.run)
	}
	c.mu.Unlock()
	var once sync.Once
	unsub := func() {
		once.Do(func() {
			s.active.Store(false)
			c.mu.Lock()
			list := c.subs[topic]
			for i, x := range list {
				if x == s {
					nl := make([]*subscription, 0, len(list)-1)
					c.subs[topic] = append(append(nl, list[:i]...), list[i+1:]...)
					break
				}
			}
			if len(c.subs[topic]) == 0 {
				delete(c.subs, topic)
				c.signal()
			}
			c.mu.Unlock()
		})
	}
	select {
	case <-s.ready:
		if s.err != nil {
			unsub()
			return nil, s.err
		}
		return unsub, nil
	case <-ctx.Done():
		unsub()
		return nil, ctx.Err()
	case <-c.ctx.Done():
		unsub()
		return nil, statesync.ErrClosed
	}
}

// attempted records the end of a connection attempt for topics: the
// subscriptions waiting for it may return. If open, the stream is live,
// for the topics it did not refuse.
func (c *Client) attempted(topics []string, open bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if open {
		c.live = make(map[string]bool, len(topics))
	}
	for _, t := range topics {
		if c.refused[t] {
			continue
		}
		if open {
			c.live[t] = true
		}
		for _, s := range c.subs[t] {
			select {
			case <-s.ready:
			default:
				close(s.ready)
			}
		}
	}
}

// --- requests ---

// request makes a request bound by ctx and by the client's life.
func (c *Client) request(ctx context.Context, method, path string, body []byte, hdr map[string]string) (*http.Response, context.CancelFunc, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, statesync.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	done := func() { stop(); cancel() }
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		done()
		return nil, nil, err
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		done()
		if c.ctx.Err() != nil && ctx.Err() != nil {
			return nil, nil, statesync.ErrClosed
		}
		return nil, nil, err
	}
	return resp, done, nil
}

// Snapshot implements [statesync.Provider]. It returns the inline snapshot
// the event stream last carried for topic, if it is still the newest known,
// and otherwise makes a GET, conditional on the snapshot of the previous
// one (a 304 returns that snapshot; the client keeps the last snapshot of
// each topic it fetched for this). A malformed body is reported as the
// *[statesync.SnapshotError] of [statesync.DecodeSnapshot]; another status
// than 200 and 304 as a *[StatusError] (whose Retryable says whether to
// try again).
//
// The GET asks for at least the revision ctx carries
// ([statesync.WithMinRevision], which the engine sets from the
// invalidation it acts on) and at least that of this client's last write
// of topic, or the current revision its last refused compare-and-set
// reported (the client remembers them for the 4096 topics it wrote last):
// the query parameters minRevision and epoch, which make a daemon whose
// memory is older read its store, so that behind a load balancer a read
// on another daemon never goes back before what the client was told of or
// wrote. An inline snapshot older than that is not returned.
func (c *Client) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	c.mu.Lock()
	m := c.minRevision(ctx, topic)
	c.mu.Unlock()
	if s, ok := c.PeekSnapshot(topic); ok && m.satisfiedBy(s) {
		return s, nil
	}
	return c.fetch(ctx, topic, m)
}

// SharedSnapshots marks a Client as a [statesync.SharedProvider]: it reads
// with its own token, so its answers are the same for each of its
// consumers, and the consumers of one topic on one Client share their GETs
// (one GET per invalidation, not one per consumer).
func (c *Client) SharedSnapshots() {}

// PeekSnapshot implements [statesync.SnapshotPeeker]: the inline snapshot
// of topic that the event stream brought (ClientOptions.Inline), if it is
// still the latest the client knows of. A consumer with
// statesync.ConsumerOptions.InlineRefresh then applies it on the stream's
// goroutine, without a goroutine hand-off; snapshots that need a GET are
// fetched on the consumer's goroutine.
func (c *Client) PeekSnapshot(topic string) (statesync.Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc := c.cache[topic]; tc != nil && tc.hasInl {
		return tc.inline, true
	}
	return statesync.Snapshot{}, false
}

// fetch is Snapshot without an inline snapshot at hand: a conditional GET
// of at least m.
func (c *Client) fetch(ctx context.Context, topic string, m minRev) (statesync.Snapshot, error) {
	if err := statesync.CheckTopic(topic); err != nil {
		return statesync.Snapshot{}, err
	}
	hdr := map[string]string{"Accept": "application/json"}
	c.mu.Lock()
	tc := c.cache[topic]
	var prev statesync.Snapshot // what a 304 confirms
	var prevTag string
	if tc != nil && tc.hasSnap {
		prev, prevTag = tc.snap, tc.etag
		hdr["If-None-Match"] = prevTag
	}
	c.mu.Unlock()

	path := topicPath(topic)
	if m.ok {
		q := url.Values{"minRevision": {m.rev.String()}}
		if m.epoch != "" {
			q.Set("epoch", m.epoch)
		}
		path += "?" + q.Encode()
	}
	resp, done, err := c.request(ctx, http.MethodGet, path, nil, hdr)
	if err != nil {
		return statesync.Snapshot{}, err
	}
	defer done()
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		if tag := resp.Header.Get("ETag"); prevTag != "" && (tag == "" || tag == prevTag) {
			return prev, nil
		}
		return statesync.Snapshot{}, &StatusError{Method: http.MethodGet, URL: resp.Request.URL.String(), StatusCode: resp.StatusCode,
			Message: "304 without a cached snapshot of that entity tag"}
	case http.StatusOK:
	default:
		return statesync.Snapshot{}, readError(resp, topic, 0)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return statesync.Snapshot{}, fmt.Errorf("httpsync: reading snapshot of %q: %w", topic, err)
	}
	snap, err := statesync.DecodeSnapshot(body)
	if err != nil {
		return statesync.Snapshot{}, err
	}
	if tag := resp.Header.Get("ETag"); tag != "" {
		c.mu.Lock()
		tc := c.topicCache(topic)
		if !tc.hasSnap || snap.Epoch != tc.snap.Epoch || snap.Revision >= tc.snap.Revision {
			tc.etag, tc.snap, tc.hasSnap = tag, snap, true
		}
		c.mu.Unlock()
	}
	return snap, nil
}

// topicCache returns the cache of topic, creating it. c.mu is held.
func (c *Client) topicCache(topic string) *topicCache {
	tc := c.cache[topic]
	if tc == nil {
		tc = &topicCache{}
		c.cache[topic] = tc
	}
	return tc
}

// Topics lists the topics the client's token may read, with their
// revisions, sorted by name.
func (c *Client) Topics(ctx context.Context) ([]statesync.TopicInfo, error) {
	resp, done, err := c.request(ctx, http.MethodGet, "/v1/topics", nil, map[string]string{"Accept": "application/json"})
	if err != nil {
		return nil, err
	}
	defer done()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readError(resp, "", 0)
	}
	var list topicList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("httpsync: decoding topic list: %w", err)
	}
	if list.Topics == nil {
		list.Topics = []statesync.TopicInfo{}
	}
	return list.Topics, nil
}

// Put sets the data of topic (nil means null) and returns the new
// snapshot, which a consumer of this client may be given with
// [statesync.Consumer.Offer] so that it does not pull its own write again.
func (c *Client) Put(ctx context.Context, topic string, data json.RawMessage) (statesync.Snapshot, error) {
	return c.write(ctx, http.MethodPut, topic, data, nil)
}

// PutIf sets the data of topic only if its revision is rev (0 for a topic
// never written); otherwise it returns a *[statesync.ConflictError] with the
// current revision, and nothing is written.
func (c *Client) PutIf(ctx context.Context, topic string, data json.RawMessage, rev statesync.Revision) (statesync.Snapshot, error) {
	return c.write(ctx, http.MethodPut, topic, data, &rev)
}

// Patch applies the JSON merge patch (RFC 7396, see [MergePatch]) patch to
// the data of topic, atomically on the server, and returns the new
// snapshot. A token that may write the topic but not read it gets the
// snapshot's revision and epoch without its Data (nil). A patch that
// changes nothing returns the current snapshot.
func (c *Client) Patch(ctx context.Context, topic string, patch json.RawMessage) (statesync.Snapshot, error) {
	return c.write(ctx, http.MethodPatch, topic, patch, nil)
}

// PatchIf is [Client.Patch] only if the topic's revision is rev; otherwise
// it returns a *[statesync.ConflictError], as [Client.PutIf] does.
func (c *Client) PatchIf(ctx context.Context, topic string, patch json.RawMessage, rev statesync.Revision) (statesync.Snapshot, error) {
	return c.write(ctx, http.MethodPatch, topic, patch, &rev)
}

// Delete sets the data of topic to null at a new revision and returns the
// new snapshot.
func (c *Client) Delete(ctx context.Context, topic string) (statesync.Snapshot, error) {
	return c.write(ctx, http.MethodDelete, topic, nil, nil)
}

// DeleteIf is [Client.Delete] only if the topic's revision is rev.
func (c *Client) DeleteIf(ctx context.Context, topic string, rev statesync.Revision) (statesync.Snapshot, error) {
	return c.write(ctx, http.MethodDelete, topic, nil, &rev)
}

func (c *Client) write(ctx context.Context, method, topic string, data json.RawMessage, ifRev *statesync.Revision) (statesync.Snapshot, error) {
	if err := statesync.CheckTopic(topic); err != nil {
		return statesync.Snapshot{}, err
	}
	hdr := map[string]string{"Accept": "application/json"}
	var body []byte
	switch method {
	case http.MethodPut, http.MethodPatch:
		body = bytes.TrimSpace(data)
		if len(body) == 0 {
			body = []byte("null")
		}
		if !json.Valid(body) {
			return statesync.Snapshot{}, fmt.Errorf("%w: data for topic %q is not valid JSON", statesync.ErrInvalidPayload, topic)
		}
		body = bytes.Clone(body)
		hdr["Content-Type"] = "application/json"
		if method == http.MethodPatch {
			hdr["Content-Type"] = "application/merge-patch+json"
		}
	}
	var expected statesync.Revision
	if ifRev != nil {
		expected = *ifRev
		hdr["If-Match"] = etag("", expected)
	}
	if c.opts.SourceID != "" {
		hdr["X-Source-Id"] = c.opts.SourceID
	}
	resp, done, err := c.request(ctx, method, topicPath(topic), body, hdr)
	if err != nil {
		return statesync.Snapshot{}, err
	}
	defer done()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := readError(resp, topic, expected)
		var ce *statesync.ConflictError
		if errors.As(err, &ce) && ce.Current > 0 {
			// The caller reads the topic again to retry: at least the
			// revision the conflict reported, even on a daemon that lags.
			c.mu.Lock()
			c.written.note(topic, ce.Epoch, ce.Current)
			c.mu.Unlock()
		}
		return statesync.Snapshot{}, err
	}
	var res writeResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, int64(c.opts.MaxFrame)+maxErrorBody)).Decode(&res); err != nil {
		return statesync.Snapshot{}, fmt.Errorf("httpsync: decoding %s response: %w", method, err)
	}
	c.wrote(topic, res.Epoch, res.Revision)
	snap := statesync.Snapshot{Revision: res.Revision, Epoch: res.Epoch}
	switch method {
	case http.MethodPut:
		snap.Data = json.RawMessage(body)
	case http.MethodDelete:
		snap.Data = json.RawMessage("null")
	default:
		if res.Data == nil { // a token that may not read, or a server that does not return the result
			full, err := c.Snapshot(ctx, topic)
			var se *StatusError
			if errors.As(err, &se) && se.StatusCode == http.StatusForbidden {
				return snap, nil // written; the token may not read the result
			}
			return full, err
		}
		snap.Data = res.Data
	}
	return snap, nil
}

// wrote records this client's write of topic at rev in epoch, which later
// reads ask for at least, and forgets the inline snapshot of topic, which
// the write made stale before the stream says so.
func (c *Client) wrote(topic, epoch string, rev statesync.Revision) {
	c.mu.Lock()
	c.written.note(topic, epoch, rev)
	if tc := c.cache[topic]; tc != nil {
		tc.hasInl, tc.inline = false, statesync.Snapshot{}
	}
	c.mu.Unlock()
}

// topicPath returns the path of topic's resource, /v1/topics/{topic}, the
// topic escaped as one path segment: '/', '%', '?', '#', space and every
// byte outside ASCII as %XX, so that the handler reads back the exact
// name. (A valid topic is never "." or "..", which no escaping carries
// through URL parsers.)
func topicPath(topic string) string { return "/v1/topics/" + url.PathEscape(topic) }
