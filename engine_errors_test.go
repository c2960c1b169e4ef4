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

// ---- B-ERR ----

// B-ERR-01: the phase strings are those of the TypeScript original.
// B-ERR-13: the Go choice: start and invalidation are emitted (see
// TestEngineStartHonoursContext, TestEngineErrInvalidationPhase,
// TestEngineFilterPanic); there is deliberately no throttle phase: bad throttle
// options fail NewConsumer, so the scheduler has nothing to report later.
func TestEngineErrPhases(t *testing.T) {
	for got, want := range map[statesync.Phase]string{
		statesync.PhaseStart:        "start",
		statesync.PhaseSubscribe:    "subscribe",
		statesync.PhaseInvalidation: "invalidation",
		statesync.PhaseGetSnapshot:  "getSnapshot",
		statesync.PhaseApply:        "apply",
		statesync.PhaseProtocol:     "protocol",
	} {
		if string(got) != want {
			t.Errorf("Phase = %q; want %q", got, want)
		}
	}
	for _, th := range []statesync.Throttle{
		{Debounce: -1},
		{Interval: -time.Millisecond},
		{Interval: time.Second, NoLeading: true, NoTrailing: true},
	} {
		_, err := statesync.NewConsumer(engTopic, &engSub{}, &engProvider{}, &engApplier{}, &statesync.ConsumerOptions{Throttle: th})
		if !errors.Is(err, statesync.ErrInvalidThrottle) {
			t.Errorf("NewConsumer(Throttle %+v) = %v; want %v", th, err, statesync.ErrInvalidThrottle)
		}
	}
}

// B-ERR-03, B-ERR-08, B-ERR-10: a provider failure is reported with phase
// getSnapshot, the provider's error itself, the topic and the local
// revision; the returned error satisfies errors.Is and errors.As.
func TestEngineErrProviderContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		boom := errors.New("boom")
		e.prov.setErr(boom)
		err := e.c.Refresh(context.Background())
		if !errors.Is(err, boom) {
			t.Fatalf("Refresh() = %v; want %v", err, boom)
		}
		se := asEngError(t, err)
		errs := e.errs.all()
		if len(errs) != 1 || errs[0] != se {
			t.Fatalf("reported %v; want exactly the returned error", errs)
		}
		if se.Phase != statesync.PhaseGetSnapshot || se.Err != boom || se.Topic != engTopic || se.LocalRevision != 1 {
			t.Errorf("error = %+v; want phase getSnapshot, Err %v, topic %q, LocalRevision 1", se, boom, engTopic)
		}
		if se.Attempt != 0 || se.WillRetry || se.SnapshotRevision != "" || se.EventRevision != "" {
			t.Errorf("error = %+v; want no retry, snapshot or event fields", se)
		}
	})
}

// B-ERR-04: an applier failure is reported with phase apply, the applier's
// error itself, the local and the snapshot revisions.
func TestEngineErrApplierContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		appErr := errors.New("apply failed")
		e.app.setErr(appErr)
		e.publish(2, `"v2"`)
		errs := e.errs.all()
		if len(errs) != 1 {
			t.Fatalf("errors reported = %v; want 1", errs)
		}
		se := errs[0]
		if se.Phase != statesync.PhaseApply || se.Err != appErr || se.LocalRevision != 1 || se.SnapshotRevision != "2" || se.Topic != engTopic {
			t.Errorf("error = %+v; want phase apply, Err %v, LocalRevision 1, SnapshotRevision 2", se, appErr)
		}
	})
}

// B-ERR-05, B-PROTO-12: a non-canonical snapshot revision is a protocol
// error (SnapshotRevision only when it was a string), never applied, and
// returned to the caller of Refresh.
func TestEngineErrProtocolSnapshot(t *testing.T) {
	for _, tc := range []struct {
		payload, snapRev string
	}{
		{`{"revision":"01","data":1}`, "01"},
		{`{"revision":5,"data":1}`, ""},
	} {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			_, bad := statesync.DecodeSnapshot([]byte(tc.payload))
			e.prov.setErr(bad)
			err := e.c.Refresh(context.Background())
			if !errors.Is(err, statesync.ErrNonCanonicalRevision) {
				t.Fatalf("Refresh() with %s = %v; want %v", tc.payload, err, statesync.ErrNonCanonicalRevision)
			}
			se := asEngError(t, err)
			if se.Phase != statesync.PhaseProtocol || se.SnapshotRevision != tc.snapRev || se.LocalRevision != 1 {
				t.Errorf("error for %s = %+v; want phase protocol, SnapshotRevision %q, LocalRevision 1", tc.payload, se, tc.snapRev)
			}
			if got := e.app.count(); got != 1 {
				t.Errorf("applier calls = %d; want 1", got)
			}
			if got := e.errs.count(); got != 1 {
				t.Errorf("errors reported = %d; want 1", got)
			}
		})
	}
}

// B-ERR-05, B-PROTO-08: an invalid event is a protocol error carrying the
// raw payload, the local revision and the handle's topic, without
// EventRevision; nothing is fetched.
func TestEngineErrProtocolEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		const payload = `{"topic":"","revision":"2"}`
		e.sub.sendRaw(payload)
		e.sub.sendRaw(`{"topic":"test","revision":"01"}`)
		e.sub.sendRaw(`{"garbage":true}`)
		e.c.Invalidate(statesync.Invalidation{Topic: "  ", Revision: 3})
		synctest.Wait()
		errs := e.errs.all()
		if len(errs) != 4 {
			t.Fatalf("errors reported = %v; want 4", errs)
		}
		for _, se := range errs {
			if se.Phase != statesync.PhaseProtocol || se.Topic != engTopic || se.LocalRevision != 1 || se.EventRevision != "" || se.SourceEvent == nil {
				t.Errorf("error = %+v; want phase protocol, topic %q, LocalRevision 1, no EventRevision, a SourceEvent", se, engTopic)
			}
		}
		if got := string(errs[0].SourceEvent); got != payload {
			t.Errorf("SourceEvent = %s; want %s", got, payload)
		}
		if !errors.Is(errs[1], statesync.ErrNonCanonicalRevision) {
			t.Errorf("error for revision 01 = %v; want %v", errs[1], statesync.ErrNonCanonicalRevision)
		}
		if got := e.prov.count(); got != 1 {
			t.Errorf("provider calls = %d; want 1", got)
		}
	})
}

// B-ERR-13: a raw payload that is not JSON at all is reported with phase
// invalidation and the raw payload.
func TestEngineErrInvalidationPhase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.sub.sendRaw(`not json{`)
		errs := e.errs.all()
		if len(errs) != 1 {
			t.Fatalf("errors reported = %v; want 1", errs)
		}
		if se := errs[0]; se.Phase != statesync.PhaseInvalidation || string(se.SourceEvent) != `not json{` || !errors.Is(se, statesync.ErrInvalidPayload) {
			t.Errorf("error = %+v; want phase invalidation, SourceEvent %q, ErrInvalidPayload", se, `not json{`)
		}
	})
}

// B-ERR-07: each failure is reported exactly once, including a failure of
// an invalidation-triggered refresh.
func TestEngineErrReportedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		boom := errors.New("boom")
		e.prov.setErr(boom)
		e.sub.send(engInv(2))
		synctest.Wait()
		if got := e.errs.phases(); !slices.Equal(got, []statesync.Phase{statesync.PhaseGetSnapshot}) {
			t.Errorf("reported phases = %v; want [getSnapshot]", got)
		}
	})
}

// B-ERR-12: after a protocol error from a bad snapshot during an
// invalidation refresh (exactly 1 error), a later valid event is applied.
func TestEngineErrEngineSurvivesProtocolError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		_, bad := statesync.DecodeSnapshot([]byte(`{"revision":"abc","data":1}`))
		e.prov.setErr(bad)
		e.sub.send(engInv(2))
		synctest.Wait()
		if got := e.errs.phases(); !slices.Equal(got, []statesync.Phase{statesync.PhaseProtocol}) {
			t.Fatalf("reported phases = %v; want [protocol]", got)
		}
		e.prov.setErr(nil)
		e.publish(10, `"v10"`)
		if got := e.c.Revision(); got != 10 {
			t.Errorf("Revision() = %v; want 10", got)
		}
	})
}

// B-ERR-14: every report is logged at error level ("<phase> error") before
// OnError is called.
func TestEngineErrLoggedBeforeOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		var bad atomic.Int32
		errs := &engErrs{}
		errs.hook = func(se *statesync.Error) {
			recs := logs.find(string(se.Phase) + " error")
			if len(recs) == 0 || recs[len(recs)-1].Level != slog.LevelError {
				bad.Add(1)
			}
		}
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger, OnError: errs.onError})
		e.start(t)
		e.prov.setErr(errors.New("boom"))
		e.sub.send(engInv(2))
		synctest.Wait()
		e.sub.sendRaw(`{"topic":"test","revision":"x"}`)
		if n := errs.count(); n != 2 {
			t.Fatalf("errors reported = %d; want 2", n)
		}
		if n := bad.Load(); n != 0 {
			t.Errorf("%d reports reached OnError before their error-level log record", n)
		}
	})
}

// B-ERR-15: panics in subscriber, provider and applier are recovered and
// reported like returned errors of the corresponding phase.
func TestEngineErrPanicsRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.sub.setHook(func(context.Context) { panic("sub bug") })
		err := e.c.Start(context.Background())
		var pe *statesync.PanicError
		if !errors.As(err, &pe) || pe.Value != "sub bug" || asEngError(t, err).Phase != statesync.PhaseSubscribe {
			t.Errorf("Start() with panicking subscriber = %v; want a subscribe PanicError", err)
		}
		e.sub.setHook(nil)
		e.start(t)

		e.prov.setHook(func(context.Context, int) error { panic("provider bug") })
		err = e.c.Refresh(context.Background())
		if !errors.As(err, &pe) || pe.Value != "provider bug" || asEngError(t, err).Phase != statesync.PhaseGetSnapshot {
			t.Errorf("Refresh() with panicking provider = %v; want a getSnapshot PanicError", err)
		}
		e.prov.setHook(nil)

		e.app.setHook(func(context.Context, statesync.Snapshot) error { panic("applier bug") })
		e.publish(2, `"v2"`)
		errs := e.errs.all()
		last := errs[len(errs)-1]
		if !errors.As(last, &pe) || pe.Value != "applier bug" || last.Phase != statesync.PhaseApply {
			t.Errorf("reported %v; want an apply PanicError", last)
		}
		if got := e.errs.phases(); !slices.Equal(got, []statesync.Phase{statesync.PhaseSubscribe, statesync.PhaseGetSnapshot, statesync.PhaseApply}) {
			t.Errorf("reported phases = %v; want [subscribe getSnapshot apply]", got)
		}
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1", got)
		}
	})
}

// ---- B-ONERR ----

// B-ONERR-01: without OnError, errors are still logged at error level.
func TestEngineOnErrorOptional(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		sub, prov, app := &engSub{}, &engProvider{}, &engApplier{}
		prov.set(1, `1`)
		c := newEngConsumer(t, engTopic, sub, prov, app, &statesync.ConsumerOptions{Logger: logger})
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		prov.setErr(errors.New("boom"))
		sub.send(engInv(2))
		synctest.Wait()
		recs := logs.find("getSnapshot error")
		if len(recs) != 1 || recs[0].Level != slog.LevelError {
			t.Errorf("%q records = %v; want 1 at error level", "getSnapshot error", recs)
		}
	})
}

// B-ONERR-02, B-ONERR-03: a panicking OnError is recovered and logged as
// "onError callback threw" with topic and error; the engine keeps running
// and applies the next valid event.
func TestEngineOnErrorPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		var calls atomic.Int32
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger, OnError: func(*statesync.Error) {
			calls.Add(1)
			panic("handler bug")
		}})
		e.start(t)
		e.sub.sendRaw(`{"topic":"test","revision":"01"}`)
		if n := calls.Load(); n != 1 {
			t.Errorf("OnError calls = %d; want 1", n)
		}
		recs := logs.find("onError callback threw")
		if len(recs) != 1 {
			t.Fatalf("%q records = %d; want 1", "onError callback threw", len(recs))
		}
		if r := recs[0]; r.Level != slog.LevelError || r.str("topic") != engTopic || !strings.Contains(r.str("error"), "handler bug") {
			t.Errorf("record = %+v; want error level, topic %q, the panic in error", r, engTopic)
		}
		e.publish(5, `"v5"`)
		if got := e.app.count(); got != 2 {
			t.Errorf("applier calls = %d; want 2", got)
		}
		if got := string(e.app.last().Data); got != `"v5"` {
			t.Errorf("last applied data = %s; want \"v5\"", got)
		}
	})
}

// B-ONERR-04: OnError receives the context that is logged.
func TestEngineOnErrorSameContextAsLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
		e.start(t)
		appErr := errors.New("apply failed")
		e.app.setErr(appErr)
		e.prov.set(2, `"v2"`)
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 2})
		synctest.Wait()
		errs := e.errs.all()
		recs := logs.find("apply error")
		if len(errs) != 1 || len(recs) != 1 {
			t.Fatalf("reports = %d, %q records = %d; want 1 and 1", len(errs), "apply error", len(recs))
		}
		se, r := errs[0], recs[0]
		for key, want := range map[string]string{
			"phase":            string(se.Phase),
			"topic":            se.Topic,
			"error":            se.Err.Error(),
			"localRevision":    se.LocalRevision.String(),
			"snapshotRevision": se.SnapshotRevision,
			"component":        "statesync",
		} {
			if got := r.str(key); got != want {
				t.Errorf("logged %s = %q; want %q", key, got, want)
			}
		}
	})
}

// B-ONERR-05, B-GO-03: OnError runs with no engine lock held, on the
// goroutine that detected the error: it may call Revision, Refresh and Stop.
func TestEngineOnErrorMayCallConsumer(t *testing.T) {
	t.Run("refresh", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			boom := errors.New("boom")
			results := make(chan error, 1)
			e.errs.hook = func(se *statesync.Error) {
				if se.Phase == statesync.PhaseGetSnapshot {
					e.prov.setErr(nil)
					_ = e.c.Revision()
					results <- e.c.Refresh(context.Background())
				}
			}
			e.start(t)
			e.prov.setErr(boom)
			e.prov.set(2, `"v2"`)
			e.sub.send(engInv(2))
			if err := <-results; err != nil {
				t.Errorf("Refresh() from OnError = %v; want nil", err)
			}
			if got := e.c.Revision(); got != 2 {
				t.Errorf("Revision() = %v; want 2", got)
			}
		})
	})
	t.Run("stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.errs.hook = func(*statesync.Error) { e.c.Stop() }
			e.start(t)
			e.prov.setErr(errors.New("boom"))
			e.sub.send(engInv(2))
			synctest.Wait()
			if got := e.sub.active(); got != 0 {
				t.Errorf("active subscriptions after Stop from OnError = %d; want 0", got)
			}
			if err := e.c.Start(context.Background()); !errors.Is(err, statesync.ErrStartAfterStop) {
				t.Errorf("Start() = %v; want %v", err, statesync.ErrStartAfterStop)
			}
		})
	})
	t.Run("synchronous for events", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.errs.hook = func(*statesync.Error) { e.c.Stop() }
			e.start(t)
			e.sub.sendRaw(`{"topic":"test","revision":"x"}`)
			// No synctest.Wait: the report ran on this goroutine.
			if n := e.errs.count(); n != 1 {
				t.Errorf("OnError calls when InvalidateRaw returned = %d; want 1", n)
			}
			if got := e.sub.active(); got != 0 {
				t.Errorf("active subscriptions = %d; want 0", got)
			}
		})
	})
}
