package statesync_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// B-LOG-02, B-LOG-08: the engine's debug records, their attributes, and on
// every record topic and component=statesync (no prefix in messages, no
// duplicate keys).
func TestEngineLogDebugMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger,
			ShouldRefresh: func(engInv statesync.Invalidation) bool { return engInv.SourceID != "me" }})
		e.start(t)
		if got, want := logs.messages(), []string{"starting", "subscribed", "refresh started", "applied snapshot", "started"}; !slices.Equal(got, want) {
			t.Errorf("Start records = %q; want %q", got, want)
		}
		if got := logs.find("applied snapshot")[0].str("revision"); got != "1" {
			t.Errorf("applied snapshot revision = %s; want 1", got)
		}

		mark := len(logs.records())
		e.prov.setDelay(10 * time.Millisecond)
		e.prov.set(3, `"v3"`)
		e.sub.send(engInv(2))                                                            // triggers a run
		e.sub.send(engInv(3))                                                            // coalesced
		e.sub.send(engInv(1))                                                            // not newer
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 9, SourceID: "me"}) // filtered
		time.Sleep(time.Second)
		got := logs.records()[mark:]
		var msgs []string
		for _, r := range got {
			msgs = append(msgs, r.Msg)
		}
		want := []string{
			"invalidation triggered refresh", "refresh started",
			"invalidation triggered refresh", "refresh coalesced (in-flight)",
			"invalidation skipped (not newer)",
			"invalidation skipped (shouldRefresh)",
			"applied snapshot",
			"refresh started", "snapshot skipped (not newer)",
		}
		// The run's records interleave with the events' only after the
		// events: compare as sets of counts, then check a few orders.
		if !engSameCounts(msgs, want) {
			t.Errorf("records = %q; want (in some order) %q", msgs, want)
		}
		if r := logs.find("invalidation triggered refresh"); len(r) != 2 || r[0].str("eventRevision") != "2" || r[1].str("eventRevision") != "3" {
			t.Errorf("invalidation triggered refresh records = %v; want eventRevision 2 then 3", r)
		}
		if r := logs.find("invalidation skipped (not newer)"); len(r) != 1 || r[0].str("eventRevision") != "1" || r[0].str("localRevision") != "1" {
			t.Errorf("invalidation skipped (not newer) records = %v; want eventRevision 1, localRevision 1", r)
		}
		if r := logs.find("snapshot skipped (not newer)"); len(r) != 1 || r[0].str("snapshotRevision") != "3" || r[0].str("localRevision") != "3" {
			t.Errorf("snapshot skipped (not newer) records = %v; want snapshotRevision 3, localRevision 3", r)
		}
		if r := logs.find("invalidation skipped (shouldRefresh)"); len(r) != 1 || r[0].Attrs["event"].Any().(statesync.Invalidation).Revision != 9 {
			t.Errorf("invalidation skipped (shouldRefresh) records = %v; want the event at revision 9", r)
		}

		e.c.Stop()
		recs := logs.records()
		if last := recs[len(recs)-1]; last.Msg != "stopped" {
			t.Errorf("last record = %q; want %q", last.Msg, "stopped")
		}
		for _, r := range recs {
			if r.Level != slog.LevelDebug {
				t.Errorf("record %q at %v; want DEBUG", r.Msg, r.Level)
			}
			if r.str("topic") != engTopic || r.str("component") != "statesync" {
				t.Errorf("record %q: topic=%s component=%s; want %s and statesync", r.Msg, r.str("topic"), r.str("component"), engTopic)
			}
			if strings.Contains(r.Msg, "state-sync") || strings.Contains(r.Msg, "statesync") {
				t.Errorf("record %q carries a prefix", r.Msg)
			}
			for k := range r.Attrs {
				if strings.HasPrefix(k, "!dup:") {
					t.Errorf("record %q has duplicate key %s", r.Msg, k[5:])
				}
			}
		}
	})
}

func engSameCounts(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// B-LOG-02: a Refresh that joins a run in flight is logged as coalesced,
// not as started.
func TestEngineLogRefreshCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
		e.start(t)
		e.prov.setDelay(10 * time.Millisecond)
		mark := len(logs.records())
		e.sub.send(engInv(2))
		synctest.Wait() // the run has begun its fetch
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, r := range logs.records()[mark:] {
			if strings.HasPrefix(r.Msg, "refresh") {
				msgs = append(msgs, r.Msg)
			}
		}
		if want := []string{"refresh started", "refresh coalesced (in-flight)", "refresh started"}; !slices.Equal(msgs, want) {
			t.Errorf("refresh records = %q; want %q", msgs, want)
		}
	})
}

// B-LOG-03: error records carry the full context; "onError callback threw"
// carries topic and error.
func TestEngineLogErrorRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelInfo)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger, OnError: func(*statesync.Error) { panic("cb") }})
		e.start(t)
		const payload = `{"topic":"test","revision":"007","sourceId":"w1"}`
		e.sub.sendRaw(payload)
		recs := logs.records()
		if len(recs) != 2 {
			t.Fatalf("records = %v; want 2", recs)
		}
		r := recs[0]
		for key, want := range map[string]string{
			"phase": "protocol", "topic": engTopic, "component": "statesync", "localRevision": "1",
			"eventTopic": engTopic, "sourceEvent": payload,
		} {
			if got := r.str(key); got != want {
				t.Errorf("%q %s = %q; want %q", r.Msg, key, got, want)
			}
		}
		if r.Msg != "protocol error" || r.Level != slog.LevelError || !strings.Contains(r.str("error"), "007") {
			t.Errorf("record = %+v; want protocol error at ERROR with the cause", r)
		}
		if _, ok := r.Attrs["eventRevision"]; ok {
			t.Errorf("protocol record has eventRevision; want none (B-PROTO-08)")
		}
		cb := recs[1]
		if cb.Msg != "onError callback threw" || cb.Level != slog.LevelError || cb.str("topic") != engTopic || !strings.Contains(cb.str("error"), "cb") {
			t.Errorf("record = %+v; want onError callback threw at ERROR with topic and error", cb)
		}
	})
}

// B-LOG-04: without retry, no failure produces a warn record (the Go
// exception is B-REV-13's regression, see TestEngineRegressionReportedOnce).
func TestEngineLogNoWarnWithoutRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger,
			ShouldRefresh: func(engInv statesync.Invalidation) bool {
				if engInv.Revision == 7 {
					panic("filter")
				}
				return true
			}})
		e.start(t)
		e.prov.setErr(errors.New("down"))
		e.sub.send(engInv(2))
		synctest.Wait()
		e.prov.setErr(nil)
		e.app.setErr(errors.New("apply"))
		e.publish(3, `"v3"`)
		e.sub.sendRaw(`{"topic":"test","revision":1}`)
		e.sub.sendRaw(`nope`)
		e.sub.send(engInv(7))
		if n := e.errs.count(); n != 5 {
			t.Errorf("errors reported = %d; want 5", n)
		}
		for _, r := range logs.records() {
			if r.Level == slog.LevelWarn {
				t.Errorf("warn record %q; want none", r.Msg)
			}
		}
	})
}

// B-LOG-01: with or without a logger, the behaviour is the same.
func TestEngineLogOptional(t *testing.T) {
	run := func(logger *slog.Logger) ([]statesync.Revision, []statesync.Phase) {
		var revs []statesync.Revision
		var phases []statesync.Phase
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
			e.start(t)
			e.publish(3, `"v3"`)
			e.sub.sendRaw(`bad`)
			e.prov.setErr(errors.New("down"))
			_ = e.c.Refresh(context.Background())
			revs, phases = e.app.revs(), e.errs.phases()
		})
		return revs, phases
	}
	logger, _ := newEngLogs(slog.LevelDebug)
	r1, p1 := run(logger)
	r2, p2 := run(nil)
	if !slices.Equal(r1, r2) || !slices.Equal(p1, p2) {
		t.Errorf("with logger: %v %v; without: %v %v; want the same", r1, p1, r2, p2)
	}
	if len(r1) != 2 || len(p1) != 2 {
		t.Errorf("applied %v, reported %v; want 2 applies and 2 errors", r1, p1)
	}
}

// B-LOG-09: no engine lock is held while a record is logged: a handler that
// calls back into the consumer (Start, which takes the engine's lock) never
// blocks. Real goroutines: a mutex wait is not durable in a synctest bubble.
func TestEngineLogWithoutLocks(t *testing.T) {
	logger, logs := newEngLogs(slog.LevelDebug)
	var c *statesync.Consumer
	var armed atomic.Bool
	var stuck atomic.Int32
	logs.hook = func(r engRecord) {
		if !armed.Load() {
			return
		}
		done := make(chan struct{})
		go func() {
			_ = c.Start(context.Background()) // started: nil; stopped: ErrStartAfterStop
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			stuck.Add(1)
			t.Errorf("record %q logged with an engine lock held", r.Msg)
		}
	}
	sub, prov, app := &engSub{}, &engProvider{}, &engApplier{}
	prov.set(5, `"v5"`)
	c = newEngConsumer(t, engTopic, sub, prov, app, &statesync.ConsumerOptions{Logger: logger,
		Retry:         &statesync.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond},
		ShouldRefresh: func(engInv statesync.Invalidation) bool { return engInv.SourceID == "" },
		OnError:       func(*statesync.Error) { panic("cb") }})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	ctx := context.Background()
	sub.send(engInv(1))                                                           // not newer
	sub.send(statesync.Invalidation{Topic: engTopic, Revision: 9, SourceID: "x"}) // filtered
	sub.sendRaw(`bad`)                                                            // error + onError threw
	_ = c.Refresh(ctx)                                                            // started, skipped (not newer)
	_ = c.Offer(ctx, engSnap(4, `"old"`))                                         // regression: warn + error
	prov.set(6, `"v6"`)
	sub.send(engInv(6)) // triggered, started, applied
	prov.setErr(errors.New("down"))
	_ = c.Refresh(ctx) // coalesced or started; retry warn; final error
	c.Stop()           // stopped
	msgs := logs.messages()
	for _, want := range []string{"invalidation skipped (not newer)", "invalidation skipped (shouldRefresh)",
		"invalidation error", "onError callback threw", "snapshot skipped (not newer)", "snapshot revision went backwards",
		"invalidation triggered refresh", "applied snapshot", "getSnapshot retry scheduled", "getSnapshot error", "stopped"} {
		if !slices.Contains(msgs, want) {
			t.Errorf("scenario logged no %q; records = %q", want, msgs)
		}
	}
	if n := stuck.Load(); n != 0 {
		t.Errorf("%d records logged under an engine lock", n)
	}
}
