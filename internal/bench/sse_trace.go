package bench

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// connTrace records the event stream's connects and failures of one
// consumer's client, from the client's log records (ClientOptions.Logger),
// so that the herd's notes can say when each consumer tried again, how
// often, and after which delay.
type connTrace struct {
	f   *fleet
	mu  sync.Mutex // protects evs
	evs []connEvent
}

// A connEvent is one record: a stream opened, or failed (with the
// attempt number and the delay the client chose).
type connEvent struct {
	at      time.Duration // since the fleet's origin
	opened  bool
	attempt int64
	retryIn time.Duration
	err     string
}

const (
	msgStreamOpen     = "httpsync: event stream open"
	msgStreamFailed   = "httpsync: event stream failed"
	msgStreamFarewell = "httpsync: event stream ended by the server"
)

func (t *connTrace) Enabled(context.Context, slog.Level) bool { return true }

func (t *connTrace) Handle(_ context.Context, r slog.Record) error {
	var ev connEvent
	switch r.Message {
	case msgStreamOpen:
		ev.opened = true
	case msgStreamFarewell:
		ev.err = "farewell"
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "retryIn" {
				ev.retryIn = a.Value.Duration()
			}
			return true
		})
	case msgStreamFailed:
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "attempt":
				ev.attempt = a.Value.Int64()
			case "retryIn":
				ev.retryIn = a.Value.Duration()
			case "err":
				ev.err = a.Value.String()
			}
			return true
		})
	default:
		return nil
	}
	ev.at = t.f.since()
	t.mu.Lock()
	t.evs = append(t.evs, ev)
	t.mu.Unlock()
	return nil
}

func (t *connTrace) WithAttrs([]slog.Attr) slog.Handler { return t }
func (t *connTrace) WithGroup(string) slog.Handler      { return t }

// events returns a copy of the records so far.
func (t *connTrace) events() []connEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]connEvent(nil), t.evs...)
}

// herdNotes summarises how the consumers came back after the server went
// down at down: how many stream failures each met before its stream
// opened again (connections refused while no server listened), the
// delays the clients chose for their first and later tries, when the
// streams opened again, and the time from a stream's opening to the
// consumer's apply (its snapshot GET).
func herdNotes(f *fleet, down time.Duration, epoch string, logf func(string, ...any)) {
	var firstDelay, laterDelay, opened, toApply []time.Duration
	failures := map[int]int{} // failures before the reopening -> consumers
	errs := map[string]int{}
	for _, h := range f.hs {
		n := 0
		var open time.Duration = -1
		for _, ev := range h.trace.events() {
			if ev.at < down {
				continue
			}
			if ev.opened {
				open = ev.at
				break
			}
			if n == 0 {
				firstDelay = append(firstDelay, ev.retryIn)
			} else {
				laterDelay = append(laterDelay, ev.retryIn)
			}
			n++
			errs[errKind(ev.err)]++
		}
		failures[n]++
		if open < 0 {
			continue
		}
		opened = append(opened, open-down)
		for _, a := range h.applies() {
			if a.epoch == epoch {
				toApply = append(toApply, a.at-open)
				break
			}
		}
	}
	pct := func(ds []time.Duration) string {
		return fmt.Sprintf("p50 %v, p90 %v, p99 %v, max %v ms (%d)", percentileMs(ds, 50), percentileMs(ds, 90),
			percentileMs(ds, 99), percentileMs(ds, 100), len(ds))
	}
	logf("%s: stream failures before reopening, consumers: %v; failures by kind: %v", NameSSEReconnectHerd, failures, errs)
	logf("%s: first reconnection delay chosen: %s", NameSSEReconnectHerd, pct(firstDelay))
	if len(laterDelay) > 0 {
		logf("%s: later reconnection delays chosen: %s", NameSSEReconnectHerd, pct(laterDelay))
	}
	logf("%s: streams open again after: %s", NameSSEReconnectHerd, pct(opened))
	logf("%s: from the stream's opening to the apply: %s", NameSSEReconnectHerd, pct(toApply))
}

// errKind shortens a stream error to its kind, for the notes.
func errKind(s string) string {
	for _, k := range []string{"farewell", "connection refused", "connection reset", "EOF", "timeout", "503", "deadline"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}
