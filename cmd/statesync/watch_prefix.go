package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/sleep"
)

// prefixesFlag is the repeatable --prefix of watch.
type prefixesFlag []string

func (f *prefixesFlag) String() string { return strings.Join(*f, ",") }

func (f *prefixesFlag) Set(s string) error {
	*f = append(*f, s)
	return nil
}

// prefixInline is the inline bound of watch --prefix's client: snapshots
// up to this size come in the stream's frames, without a GET each.
const prefixInline = 64 << 10

// prefixPrinter prints the snapshots of the topics a prefix stream
// announces, newest first come, one line per revision it reaches. The
// stream's goroutine only records the newest invalidation of each topic
// (latest wins: memory is O(topics)); print's goroutine reads and prints.
type prefixPrinter struct {
	m      *Main
	c      *httpsync.Client
	log    *slog.Logger
	out    *sync.Mutex // one line at a time, shared with the named topics
	wake   chan struct{}
	mu     sync.Mutex
	queue  []string
	latest map[string]statesync.Invalidation // the topics of queue
	shown  map[string]statesync.Snapshot     // print's goroutine only
}

func newPrefixPrinter(m *Main, c *httpsync.Client, log *slog.Logger, out *sync.Mutex) *prefixPrinter {
	return &prefixPrinter{m: m, c: c, log: log, out: out, wake: make(chan struct{}, 1),
		latest: map[string]statesync.Invalidation{}, shown: map[string]statesync.Snapshot{}}
}

// Invalidate implements statesync.InvalidationHandler.
func (p *prefixPrinter) Invalidate(inv statesync.Invalidation) {
	p.mu.Lock()
	prev, queued := p.latest[inv.Topic]
	if !queued {
		p.queue = append(p.queue, inv.Topic)
	}
	if !queued || inv.Epoch != prev.Epoch || inv.Revision > prev.Revision {
		p.latest[inv.Topic] = inv
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// InvalidateRaw implements statesync.InvalidationHandler.
func (p *prefixPrinter) InvalidateRaw(payload []byte) {
	inv, err := statesync.DecodeInvalidation(payload)
	if err != nil {
		p.log.Warn("malformed invalidation ignored", slog.Any("error", err))
		return
	}
	p.Invalidate(inv)
}

// requeue puts inv, whose snapshot could not be read, and rest, the
// topics after it (still in latest), back in the queue, before the topics
// queued since.
func (p *prefixPrinter) requeue(inv statesync.Invalidation, rest []string) {
	p.mu.Lock()
	if prev, ok := p.latest[inv.Topic]; !ok || prev.Epoch == inv.Epoch && prev.Revision < inv.Revision {
		p.latest[inv.Topic] = inv
	}
	if !slices.Contains(p.queue, inv.Topic) {
		rest = append([]string{inv.Topic}, rest...)
	}
	p.queue = append(rest[:len(rest):len(rest)], p.queue...)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// print prints until ctx ends. A snapshot that cannot be read is tried
// again after a pause: the topic stays queued.
func (p *prefixPrinter) print(ctx context.Context) error {
	for {
		select {
		case <-p.wake:
		case <-ctx.Done():
			return nil
		}
		p.mu.Lock()
		queue := p.queue
		p.queue = nil
		p.mu.Unlock()
		for i, topic := range queue {
			p.mu.Lock()
			inv := p.latest[topic]
			delete(p.latest, topic)
			p.mu.Unlock()
			snap, err := p.c.Snapshot(statesync.WithMinRevision(ctx, inv.Epoch, inv.Revision), topic)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				p.log.Warn("cannot read; retrying", slog.String("topic", topic), slog.Any("error", err))
				p.requeue(inv, queue[i+1:])
				if sleep.For(ctx, 250*time.Millisecond) != nil {
					return nil
				}
				break
			}
			if last, ok := p.shown[topic]; ok && last.Epoch == snap.Epoch && snap.Revision <= last.Revision {
				continue // printed already (the stream sends each topic again after a reconnection)
			}
			p.shown[topic] = snap
			p.out.Lock()
			err = p.m.printJSON(topicSnapshot{Topic: topic, Revision: snap.Revision, Epoch: snap.Epoch, Data: snap.Data})
			p.out.Unlock()
			if err != nil {
				return err
			}
		}
	}
}

// subscribePrefixUntilDone opens the prefix stream of prefix, retrying
// with capped backoff while the server is unreachable, until it opens or
// ctx ends. It returns the error of a refusal that retrying cannot cure,
// and nil otherwise (with stop nil if ctx ended first).
func subscribePrefixUntilDone(ctx context.Context, c *httpsync.Client, prefix string, h statesync.InvalidationHandler, log *slog.Logger) (stop func(), err error) {
	delay := 250 * time.Millisecond
	for {
		stop, err := c.SubscribePrefix(ctx, prefix, h)
		if err == nil {
			return stop, nil
		}
		if ctx.Err() != nil || errors.Is(err, statesync.ErrClosed) {
			return nil, nil
		}
		if errors.Is(err, statesync.ErrInvalidTopic) {
			return nil, fmt.Errorf("prefix %q: %w", prefix, err)
		}
		if se := refused(err); se != nil {
			msg := fmt.Sprintf("the server refused: %d %s", se.StatusCode, http.StatusText(se.StatusCode))
			if se.Message != "" {
				msg += ": " + se.Message
			}
			if se.StatusCode == http.StatusUnauthorized {
				msg += " (give a valid token in STATESYNC_TOKEN)"
			}
			return nil, errors.New(msg)
		}
		log.Warn("cannot watch the prefix; retrying", slog.String("prefix", prefix), slog.Any("error", err), slog.Duration("in", delay))
		if sleep.For(ctx, delay) != nil {
			return nil, nil
		}
		delay = min(delay*2, 5*time.Second)
	}
}
