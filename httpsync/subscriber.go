package httpsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/statesync-go/statesync"
)

// streamResult is how a connection of the event stream ended.
type streamResult struct {
	err       error
	status    int           // the HTTP status, if the server answered with an error
	opened    bool          // the server accepted the stream
	connected time.Duration // how long the stream was open
	retry     time.Duration // the server's retry hint, if it sent one
	// farewell is the retry field the server ended the stream with, after
	// its frames, when it shut down (HandlerOptions.ReconnectRate): when
	// to come back. hasFarewell says there was one.
	farewell    time.Duration
	hasFarewell bool
}

// reconnector is the reconnection policy of one event stream (the topics'
// stream, or a prefix stream), fed with how each connection ended.
//
// Failures back off as Backoff says. A stream that the server ended with a
// farewell (a retry field after its frames, then a clean end: the server
// shut down and spreads its clients' returns) is reopened after that
// delay instead, without jitter of the client's own: the server has
// spread the delays over its streams. The failures that follow it within
// quickFor (the connections refused while a restarted server is not yet
// listening) are retried after a random wait between quickBase/2 and
// quickBase (or the smaller base Backoff or the hint gives), not after
// the growing waits of the backoff, so that a restart's clients are back
// within about quickBase of its listening; past quickFor the backoff
// takes over, with the attempts counted meanwhile, so that a server that
// does not come back is not hammered. A farewell is honoured at most once
// per Backoff.ResetAfter, so that a server that sends one and ends every
// stream at once cannot make its clients reconnect in a loop.
type reconnector struct {
	c          *Client
	attempt    int
	hint       time.Duration // the server's retry hint
	farewellAt time.Time     // when a farewell was last honoured
	quickUntil time.Time     // until when failures are retried quickly
}

// quickBase is the longest wait between quick retries after a farewell,
// and quickFor how long after the farewell's delay they go on.
const (
	quickBase = 500 * time.Millisecond
	quickFor  = 5 * time.Second
)

// next returns the delay before the next connection attempt after a
// connection that ended as r, at now, and whether it is a farewell's.
func (rc *reconnector) next(r streamResult, now time.Time) (time.Duration, bool) {
	b := rc.c.opts.Backoff
	if r.opened {
		rc.quickUntil = time.Time{}
	}
	if r.retry > 0 {
		rc.hint = r.retry
	}
	if r.connected >= b.ResetAfter {
		rc.attempt = 0
	}
	if r.hasFarewell && (rc.farewellAt.IsZero() || now.Sub(rc.farewellAt) >= b.ResetAfter) {
		d := min(r.farewell, b.Max)
		rc.farewellAt, rc.attempt, rc.quickUntil = now, 0, now.Add(d+quickFor)
		return d, true
	}
	var d time.Duration
	if now.Before(rc.quickUntil) && !slowStatus(r.status) {
		q := b.Initial
		if q <= 0 {
			q = rc.hint
		}
		if q <= 0 || q > quickBase {
			q = quickBase
		}
		d = q/2 + rand.N(q/2+1)
	} else {
		d = rc.c.backoff(rc.attempt, r.status, rc.hint)
	}
	rc.attempt++
	return d, false
}

// logEnd logs how a connection of the event stream ended and when the
// next attempt comes: a failure at warn level, a farewell (the server
// shut down and said when to come back) at info level.
// what names the stream in the message ("event stream").
func (rc *reconnector) logEnd(ctx context.Context, what string, r streamResult, delay time.Duration, farewell bool, attrs ...slog.Attr) {
	if farewell {
		rc.c.log.LogAttrs(ctx, slog.LevelInfo, "httpsync: "+what+" ended by the server", append(attrs,
			slog.Duration("retryIn", delay))...)
		return
	}
	rc.c.log.LogAttrs(ctx, slog.LevelWarn, "httpsync: "+what+" failed", append(attrs,
		slog.Any("err", r.err), slog.Int("attempt", rc.attempt), slog.Duration("retryIn", delay))...)
}

// topicSet returns the followed topics, sorted.
func (c *Client) topicSet() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	topics := make([]string, 0, len(c.subs))
	for t := range c.subs {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	return topics
}

// sleep waits d; false if the client closed meanwhile.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// run keeps the event stream open on the current set of topics: it
// reopens it (after Debounce) when the set changes, and after a failure
// waits with backoff. It owns the connection goroutines.
func (c *Client) run() {
	rc := &reconnector{c: c}
	for {
		if len(c.topicSet()) == 0 {
			select {
			case <-c.changed:
				continue
			case <-c.ctx.Done():
				return
			}
		}
		if !c.sleep(c.opts.Debounce) {
			return
		}
		select { // the changes made during the debounce are in this set
		case <-c.changed:
		default:
		}
		topics := c.topicSet()
		if len(topics) == 0 {
			continue
		}
		connCtx, cancel := context.WithCancel(c.ctx)
		res := make(chan streamResult, 1)
		c.wg.Go(func() { res <- c.stream(connCtx, topics) })
		var r streamResult
		reopen := false
		for wait := true; wait; {
			select {
			case <-c.changed:
				if slices.Equal(c.topicSet(), c.followed(topics)) {
					continue // changed and changed back, or a topic refused: keep the stream
				}
				reopen, wait = true, false
				cancel()
				r = <-res
			case r = <-res:
				wait = false
			}
		}
		cancel()
		c.streamClosed()
		if c.ctx.Err() != nil {
			return
		}
		if !reopen && !r.opened {
			c.attempted(topics, false) // failed: the waiting subscriptions return
		}
		if reopen {
			if r.retry > 0 {
				rc.hint = r.retry
			}
			c.signal() // the change is still to be handled: loop to debounce
			continue
		}
		delay, farewell := rc.next(r, time.Now())
		rc.logEnd(c.ctx, "event stream", r, delay, farewell)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.changed: // a new set of topics may fare better: try it now
			c.log.LogAttrs(c.ctx, slog.LevelInfo, "httpsync: event stream retrying early: the topics changed")
			c.signal()
		case <-c.ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// backoff returns the delay before reconnection attempt+1.
func (c *Client) backoff(attempt, status int, hint time.Duration) time.Duration {
	b := c.opts.Backoff
	if slowStatus(status) {
		return b.Max/2 + rand.N(b.Max/2+1)
	}
	base := b.Initial
	if base <= 0 {
		base = hint
	}
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	ceiling := b.Max
	if attempt < 62 && base < b.Max>>attempt {
		ceiling = base << attempt
	}
	return rand.N(ceiling + 1)
}

// slowStatus reports whether an event stream refused with status is
// retried slowly: retrying soon would not cure it.
func slowStatus(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	return false
}

// streamClosed forgets the live topics and the inline snapshots: without
// a stream, nothing says whether they are still the newest.
func (c *Client) streamClosed() {
	c.mu.Lock()
	c.live, c.refused = nil, nil
	for _, tc := range c.cache {
		tc.hasInl, tc.inline = false, statesync.Snapshot{}
	}
	c.mu.Unlock()
}

// stream opens the event stream of topics and delivers its frames until
// it ends.
func (c *Client) stream(ctx context.Context, topics []string) streamResult {
	q := url.Values{"topic": topics}
	if c.opts.Inline > 0 {
		q.Set("inline", strconv.Itoa(c.opts.Inline))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events?"+q.Encode(), nil)
	if err != nil {
		return streamResult{err: err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	// IdleTimeout also bounds the wait for the response.
	var idle *time.Timer
	idleFired := make(chan struct{})
	if c.opts.IdleTimeout > 0 {
		idle = time.AfterFunc(c.opts.IdleTimeout, func() { close(idleFired); cancel() })
		defer idle.Stop()
	}
	silent := func(err error) error {
		select {
		case <-idleFired:
			return fmt.Errorf("httpsync: event stream silent for %v: %w", c.opts.IdleTimeout, err)
		default:
			return err
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return streamResult{err: silent(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return streamResult{err: readError(resp, "", 0), status: resp.StatusCode}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return streamResult{err: fmt.Errorf("httpsync: event stream has Content-Type %q", resp.Header.Get("Content-Type"))}
	}
	opened := time.Now()
	c.log.LogAttrs(ctx, slog.LevelDebug, "httpsync: event stream open", slog.Int("topics", len(topics)))

	// The refused frames, if any, come first: the stream has taken its
	// topics in at its first other frame.
	taken, refused := false, 0
	var hint time.Duration // the retry hint when the stream was taken
	p := newSSEReader(resp.Body, c.opts.MaxFrame)
	for {
		ev, err := p.next()
		if err != nil {
			if !taken && refused > 0 && err == io.EOF {
				err = fmt.Errorf("httpsync: the server refused %d of the %d topics of the event stream and ended it", refused, len(topics))
			}
			return ended(p, err, silent(err), taken, taken, hint, opened)
		}
		if idle != nil {
			idle.Reset(c.opts.IdleTimeout)
		}
		if ev.comment {
			continue
		}
		if ev.typ == "refused" {
			c.refuse(req, topics, ev.data)
			refused++
			continue
		}
		if !taken {
			taken, hint = true, p.retry
			c.attempted(topics, true)
		}
		switch ev.typ {
		case "invalidation", "message":
			c.deliver(ev.data, false, nil)
		case "snapshot":
			c.deliver(ev.data, true, nil)
		}
	}
}

// ended returns the result of a stream read by p that ended with err
// (reported as report): opened says whether the server had accepted it,
// framed whether a frame or comment came after its first retry hint, and
// hint is the retry hint it had then. A stream that had frames and that
// ends cleanly right after a retry field was ended by the server with a
// farewell (see reconnector).
func ended(p *sseReader, err, report error, opened, framed bool, hint time.Duration, since time.Time) streamResult {
	r := streamResult{err: report, opened: opened, connected: time.Since(since), retry: p.retry}
	// A body cut right after the farewell (its connection closed before
	// the end of a chunked response) still carried the whole farewell.
	if framed && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) && p.retryLast {
		r.farewell, r.hasFarewell, r.retry = p.retry, true, hint
	}
	return r
}

// followed returns those of topics the open stream did not refuse.
func (c *Client) followed(topics []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.refused) == 0 {
		return topics
	}
	return slices.DeleteFunc(slices.Clone(topics), func(t string) bool { return c.refused[t] })
}

// refuse handles a refused frame of the stream of topics: the server does
// not follow its topic. The subscriptions of the topic are dropped; those
// still waiting in Subscribe return a *StatusError, and a refusal of a
// topic that was followed before (after a reconnection) is logged. The
// stream stays open for the other topics.
func (c *Client) refuse(req *http.Request, topics []string, data []byte) {
	var f refusal
	if json.Unmarshal(data, &f) != nil || !slices.Contains(topics, f.Topic) {
		c.log.LogAttrs(c.ctx, slog.LevelWarn, "httpsync: malformed refused frame ignored", slog.String("data", string(data)))
		return
	}
	status := http.StatusBadRequest
	switch f.Code {
	case CodeForbidden:
		status = http.StatusForbidden
	case CodeUnauthorized:
		status = http.StatusUnauthorized
	}
	err := &StatusError{Method: req.Method, URL: req.URL.String(), StatusCode: status, Code: f.Code, Message: f.Message}
	c.mu.Lock()
	if c.refused == nil {
		c.refused = map[string]bool{}
	}
	c.refused[f.Topic] = true
	late := false
	for _, s := range c.subs[f.Topic] {
		select {
		case <-s.ready:
			late = late || s.active.Load()
		default:
			s.err = err
			close(s.ready)
		}
	}
	delete(c.subs, f.Topic)
	delete(c.live, f.Topic)
	c.mu.Unlock()
	if late {
		c.log.LogAttrs(c.ctx, slog.LevelWarn, "httpsync: the server refused a topic; it is no longer followed",
			slog.String("topic", f.Topic), slog.Any("err", err))
	}
}

// deliver hands a frame's payload to the handlers of its topic, or to to
// alone if it is not nil (a prefix stream's handler).
func (c *Client) deliver(data []byte, isSnapshot bool, to statesync.InvalidationHandler) {
	payload := bytes.Clone(data) // handlers may keep it
	var inv statesync.Invalidation
	var snap statesync.Snapshot
	var err, serr error
	fast := false
	if isSnapshot {
		inv, snap, fast = decodeInline(payload)
	}
	if !fast {
		inv, err = statesync.DecodeInvalidation(payload)
		if err != nil {
			c.deliverRaw(payload, to)
			return
		}
		if isSnapshot {
			snap, serr = statesync.DecodeSnapshot(payload)
		}
	}
	c.mu.Lock()
	tc := c.cache[inv.Topic]
	if isSnapshot {
		if serr == nil {
			tc = c.topicCache(inv.Topic)
			tc.inline, tc.hasInl = snap, true
		} else {
			c.log.LogAttrs(c.ctx, slog.LevelWarn, "httpsync: malformed inline snapshot; it will be fetched",
				slog.String("topic", inv.Topic), slog.Any("err", serr))
			if tc != nil {
				tc.hasInl, tc.inline = false, statesync.Snapshot{}
			}
		}
	} else if tc != nil && tc.hasInl && (inv.Epoch != tc.inline.Epoch && inv.Epoch != "" || inv.Revision > tc.inline.Revision) {
		tc.hasInl, tc.inline = false, statesync.Snapshot{}
	}
	subs := c.subs[inv.Topic]
	c.mu.Unlock()
	if to != nil {
		to.Invalidate(inv)
		return
	}
	for _, s := range subs {
		if s.active.Load() {
			s.h.Invalidate(inv)
		}
	}
}

// inlineFrame is the payload of an inline snapshot frame: an invalidation
// and a snapshot in one object.
type inlineFrame struct {
	Topic       *string             `json:"topic"`
	Revision    *statesync.Revision `json:"revision"`
	Epoch       *string             `json:"epoch"`
	SourceID    *string             `json:"sourceId"`
	TimestampMs *float64            `json:"timestampMs"`
	Data        json.RawMessage     `json:"data"`
}

// decodeInline decodes a well-formed inline snapshot frame in one pass,
// giving what statesync.DecodeInvalidation and statesync.DecodeSnapshot
// would. ok is false for any payload it is not sure of (a missing or
// mistyped field, a blank topic, an out-of-range timestamp): the caller
// then decodes it with those two, which say what is wrong.
func decodeInline(payload []byte) (inv statesync.Invalidation, snap statesync.Snapshot, ok bool) {
	if inv, snap, ok = scanInline(payload); ok {
		return inv, snap, true
	}
	var f inlineFrame
	if json.Unmarshal(payload, &f) != nil || f.Topic == nil || strings.TrimSpace(*f.Topic) == "" ||
		f.Revision == nil || f.Data == nil {
		return inv, snap, false
	}
	inv = statesync.Invalidation{Topic: *f.Topic, Revision: *f.Revision}
	if f.Epoch != nil {
		inv.Epoch = *f.Epoch
	}
	if f.SourceID != nil {
		inv.SourceID = *f.SourceID
	}
	if f.TimestampMs != nil {
		ts := *f.TimestampMs
		if ts >= math.MaxInt64 || ts < math.MinInt64 {
			return statesync.Invalidation{}, snap, false
		}
		inv.TimestampMs = int64(ts)
	}
	snap = statesync.Snapshot{Revision: inv.Revision, Epoch: inv.Epoch, Data: f.Data}
	return inv, snap, true
}

// deliverRaw hands a malformed payload to InvalidateRaw of the handlers
// of its topic, if it names one as a non-blank string, else to every handler: the
// engine reports it and, for a topic not its own, drops it.
func (c *Client) deliverRaw(payload []byte, to statesync.InvalidationHandler) {
	if to != nil {
		to.InvalidateRaw(payload)
		return
	}
	var probe struct {
		Topic json.RawMessage `json:"topic"`
	}
	var topic string
	named := json.Unmarshal(payload, &probe) == nil && len(probe.Topic) > 0 && probe.Topic[0] == '"' &&
		json.Unmarshal(probe.Topic, &topic) == nil && strings.TrimSpace(topic) != ""
	var targets []*subscription
	c.mu.Lock()
	if named {
		targets = c.subs[topic]
	} else {
		for _, list := range c.subs {
			targets = append(targets, list...)
		}
	}
	c.mu.Unlock()
	for _, s := range targets {
		if s.active.Load() {
			s.h.InvalidateRaw(payload)
		}
	}
}

// scanInline decodes an inline snapshot frame in the exact form the
// Handler writes, without reflection: {"topic":…[,"sourceId":…]
// [,"timestampMs":…],"revision":…[,"epoch":…],"data":…}, with no space
// between tokens, strings of printable ASCII without escapes and a
// non-negative integer timestamp. Its data is a slice of payload. For
// anything else ok is false and decodeInline goes the general way; where
// ok is true, the result is the general way's (checked by
// FuzzDecodeInline).
func scanInline(payload []byte) (inv statesync.Invalidation, snap statesync.Snapshot, ok bool) {
	p := payload
	var found bool
	var rev string
	if inv.Topic, p, found, ok = cutField(p, `{"topic":"`); !found || !ok || strings.TrimSpace(inv.Topic) == "" {
		return inv, snap, false
	}
	if inv.SourceID, p, _, ok = cutField(p, `,"sourceId":"`); !ok {
		return inv, snap, false
	}
	if rest, found := bytes.CutPrefix(p, []byte(`,"timestampMs":`)); found {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		// At most 15 digits: exact as a float64, as the general way reads it.
		if n == 0 || n > 15 || (rest[0] == '0' && n > 1) {
			return inv, snap, false
		}
		ts, err := strconv.ParseInt(string(rest[:n]), 10, 64)
		if err != nil {
			return inv, snap, false
		}
		inv.TimestampMs, p = ts, rest[n:]
	}
	if rev, p, found, ok = cutField(p, `,"revision":"`); !found || !ok {
		return inv, snap, false
	}
	r, err := statesync.ParseRevision(rev)
	if err != nil {
		return inv, snap, false
	}
	inv.Revision = r
	if inv.Epoch, p, _, ok = cutField(p, `,"epoch":"`); !ok {
		return inv, snap, false
	}
	data, found := bytes.CutPrefix(p, []byte(`,"data":`))
	if !found || len(data) == 0 || data[len(data)-1] != '}' {
		return inv, snap, false
	}
	data = bytes.Trim(data[:len(data)-1], " \t\r\n") // JSON's white space
	if len(data) == 0 || !json.Valid(data) {
		return inv, snap, false
	}
	snap = statesync.Snapshot{Revision: inv.Revision, Epoch: inv.Epoch, Data: data}
	return inv, snap, true
}

// cutField cuts prefix from p, then a string of printable ASCII other than
// '"' and '\\' up to its closing quote, and returns the string and the
// rest. found is false (and ok true) if p does not start with prefix; ok
// is false if the string is not of that form.
func cutField(p []byte, prefix string) (s string, rest []byte, found, ok bool) {
	rest, found = bytes.CutPrefix(p, []byte(prefix))
	if !found {
		return "", p, false, true
	}
	for i, c := range rest {
		switch {
		case c == '"':
			return string(rest[:i]), rest[i+1:], true, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", p, true, false
		}
	}
	return "", p, true, false
}
