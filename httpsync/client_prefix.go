package httpsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
)

// SubscribePrefix follows every topic whose name starts with prefix that
// the client's token may read, those created later included, as
// `etcdctl watch --prefix` does: h receives the current revision of each
// such topic written so far, then an invalidation for every later write
// to one. The empty prefix follows every topic the token may read. The
// server filters the topics by the token's grants, one by one: a prefix
// wider than them is not refused, and h never hears of a topic outside
// them.
//
// Each SubscribePrefix has an event stream of its own (GET
// /v1/events?prefix=…), which counts against the server's
// MaxStreamsPerToken, and reconnects with [ClientOptions.Backoff] as the
// topics' stream does; after each reconnection h receives the current
// revision of every topic again, so it misses nothing while the stream
// is down. With [ClientOptions.Inline], the stream carries small
// snapshots, which [Client.Snapshot] then returns without a request.
//
// SubscribePrefix returns once the server has accepted the stream, or
// with the error of the first attempt: a *[StatusError] for a refusal
// (400 for a malformed prefix, or too_many_topics when the prefix
// matches more topics than the server lets one stream follow; 401), the
// transport's error otherwise, ctx.Err() if ctx ends first. A stream the
// server ends because new topics took its prefix over that bound is
// logged, and retried with backoff.
//
// The returned stop function ends the stream and waits for its
// goroutine; it may not be called from inside h. No delivery to h begins
// after it returns.
func (c *Client) SubscribePrefix(ctx context.Context, prefix string, h statesync.InvalidationHandler) (stop func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("httpsync: nil handler")
	}
	sctx, cancel := context.WithCancel(c.ctx)
	ready := make(chan error, 1)
	done := make(chan struct{})
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return nil, statesync.ErrClosed
	}
	c.wg.Go(func() { // Close waits for it
		defer close(done)
		c.runPrefix(sctx, prefix, h, ready)
	})
	c.mu.Unlock()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	select {
	case err := <-ready:
		if err != nil {
			stop()
			return nil, err
		}
		return stop, nil
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

// runPrefix keeps the prefix stream open until ctx ends. It sends the
// result of the first attempt on ready.
func (c *Client) runPrefix(ctx context.Context, prefix string, h statesync.InvalidationHandler, ready chan<- error) {
	rc := &reconnector{c: c}
	for {
		r := c.prefixStream(ctx, prefix, h, ready)
		ready = nil // sent by the first attempt
		c.forgetInline()
		if ctx.Err() != nil {
			return
		}
		delay, farewell := rc.next(r, time.Now())
		rc.logEnd(ctx, "prefix event stream", r, delay, farewell, slog.String("prefix", prefix))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// forgetInline drops the inline snapshots: a prefix stream that ended no
// longer says whether those it brought are the newest.
func (c *Client) forgetInline() {
	c.mu.Lock()
	for _, tc := range c.cache {
		tc.hasInl, tc.inline = false, statesync.Snapshot{}
	}
	c.mu.Unlock()
}

// prefixStream opens the event stream of prefix and delivers its frames to
// h until it ends. If ready is not nil, it receives nil once the server
// accepted the stream, or the error that ended the attempt.
func (c *Client) prefixStream(ctx context.Context, prefix string, h statesync.InvalidationHandler, ready chan<- error) (res streamResult) {
	defer func() {
		if ready != nil {
			err := res.err
			if res.opened {
				err = nil
			}
			ready <- err
		}
	}()
	q := url.Values{"prefix": {prefix}}
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
	var idle *time.Timer
	if c.opts.IdleTimeout > 0 {
		idle = time.AfterFunc(c.opts.IdleTimeout, cancel)
		defer idle.Stop()
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return streamResult{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return streamResult{err: readError(resp, "", 0), status: resp.StatusCode}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return streamResult{err: fmt.Errorf("httpsync: event stream has Content-Type %q", resp.Header.Get("Content-Type"))}
	}
	opened := time.Now()
	if ready != nil {
		ready <- nil
		ready = nil
	}
	p := newSSEReader(resp.Body, c.opts.MaxFrame)
	var hint time.Duration // the retry hint before the first frame
	framed := false
	for {
		ev, err := p.next()
		if err != nil {
			return ended(p, err, err, true, framed, hint, opened)
		}
		if !framed {
			framed, hint = true, p.retry
		}
		if idle != nil {
			idle.Reset(c.opts.IdleTimeout)
		}
		switch ev.typ {
		case "invalidation", "message":
			c.deliver(ev.data, false, h)
		case "snapshot":
			c.deliver(ev.data, true, h)
		case "refused":
			var f struct{ Prefix, Code, Message string }
			_ = json.Unmarshal(ev.data, &f)
			c.log.LogAttrs(ctx, slog.LevelWarn, "httpsync: the server ended a prefix event stream",
				slog.String("prefix", f.Prefix), slog.String("code", f.Code), slog.String("message", f.Message))
		}
	}
}
