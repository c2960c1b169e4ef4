package statesync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// engFailCalls makes e's provider fail its calls number from..to (1-based,
// counting the Start call) with "fail <n>".
func engFailCalls(e *engEnv, from, to int) {
	e.prov.setHook(func(ctx context.Context, call int) error {
		if call >= from && call <= to {
			return fmt.Errorf("fail %d", call)
		}
		return nil
	})
}

// B-RETRY-12, B-RETRY-13, B-LOG-04: each scheduled retry is logged at warn
// level ("getSnapshot retry scheduled" with topic, phase, attempt,
// willRetry, nextDelay, error) and reported to OnError with WillRetry; a
// success after 2 failures gives exactly 2 reports and no final one.
func TestEngineRetryReportsScheduledRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger,
			Retry: &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 100 * time.Millisecond, Multiplier: 2}})
		e.start(t)
		engFailCalls(e, 2, 3)
		e.prov.set(2, `"v2"`)
		t0 := time.Now()
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil (third attempt succeeds)", err)
		}
		if d := time.Since(t0); d != 300*time.Millisecond {
			t.Errorf("Refresh() took %v; want 300ms (100ms + 200ms of backoff)", d)
		}
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() = %v; want 2", got)
		}
		errs := e.errs.all()
		if len(errs) != 2 {
			t.Fatalf("reports = %v; want 2", errs)
		}
		for i, se := range errs {
			want := fmt.Sprintf("fail %d", i+2)
			delay := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}[i]
			if se.Phase != statesync.PhaseGetSnapshot || se.Attempt != i+1 || !se.WillRetry || se.NextDelay != delay ||
				se.Err == nil || se.Err.Error() != want || se.Topic != engTopic {
				t.Errorf("report %d = %+v; want getSnapshot, attempt %d, WillRetry, NextDelay %v, error %q", i, se, i+1, delay, want)
			}
		}
		warns := logs.find("getSnapshot retry scheduled")
		if len(warns) != 2 {
			t.Fatalf("%q records = %d; want 2", "getSnapshot retry scheduled", len(warns))
		}
		for i, r := range warns {
			for key, want := range map[string]string{
				"topic": engTopic, "component": "statesync", "phase": "getSnapshot",
				"attempt": fmt.Sprint(i + 1), "willRetry": "true",
				"nextDelay": []string{"100ms", "200ms"}[i], "error": fmt.Sprintf("fail %d", i+2),
			} {
				if got := r.str(key); got != want {
					t.Errorf("record %d: %s = %q; want %q", i, key, got, want)
				}
			}
			if r.Level != slog.LevelWarn {
				t.Errorf("record %d level = %v; want WARN", i, r.Level)
			}
		}
		// B-LOG-04: the retry reporter is the only source of warn records here.
		for _, r := range logs.records() {
			if r.Level == slog.LevelWarn && r.Msg != "getSnapshot retry scheduled" {
				t.Errorf("unexpected warn record %q", r.Msg)
			}
		}
	})
}

// B-RETRY-14, B-RETRY-16, B-ONERR-06, B-ERR-09: when every attempt fails,
// the engine reports the final failure once as a getSnapshot error with
// Attempt=N and WillRetry=false, in addition to the N-1 retry reports.
func TestEngineRetryFinalFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger,
			Retry: &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 10 * time.Millisecond}})
		e.start(t)
		engFailCalls(e, 2, 100)
		err := e.c.Refresh(context.Background())
		se := asEngError(t, err)
		var re *statesync.RetryError
		if !errors.As(err, &re) || re.Attempts != 3 || re.Err.Error() != "fail 4" {
			t.Errorf("Refresh() = %v; want a RetryError after 3 attempts wrapping %q", err, "fail 4")
		}
		if se.Phase != statesync.PhaseGetSnapshot || se.Attempt != 3 || se.WillRetry || se.NextDelay != 0 {
			t.Errorf("final error = %+v; want getSnapshot, Attempt 3, WillRetry false", se)
		}
		if !strings.Contains(se.Error(), "attempt 3") {
			t.Errorf("Error() = %q; want it to mention attempt 3", se.Error())
		}
		errs := e.errs.all()
		var willRetry []bool
		var attempts []int
		for _, r := range errs {
			willRetry = append(willRetry, r.WillRetry)
			attempts = append(attempts, r.Attempt)
		}
		if !slices.Equal(willRetry, []bool{true, true, false}) || !slices.Equal(attempts, []int{1, 2, 3}) {
			t.Errorf("reports WillRetry = %v, Attempt = %v; want [true true false], [1 2 3]", willRetry, attempts)
		}
		if errs[2] != se {
			t.Errorf("final report %v is not the returned error %v", errs[2], se)
		}
		recs := logs.find("getSnapshot error")
		if len(recs) != 1 || recs[0].str("attempt") != "3" || recs[0].str("willRetry") != "false" {
			t.Errorf("%q records = %v; want 1 with attempt 3, willRetry false", "getSnapshot error", recs)
		}
	})
}

// B-RETRY-15: a panic in OnError during a retry report is logged as
// "onError callback threw" and the retries go on.
func TestEngineRetryOnErrorPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		var calls atomic.Int32
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger,
			Retry:   &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 10 * time.Millisecond},
			OnError: func(*statesync.Error) { calls.Add(1); panic("reporter bug") }})
		e.start(t)
		engFailCalls(e, 2, 2)
		e.prov.set(2, `"v2"`)
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("OnError calls = %d; want 1", n)
		}
		if n := len(logs.find("onError callback threw")); n != 1 {
			t.Errorf("%q records = %d; want 1", "onError callback threw", n)
		}
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() = %v; want 2", got)
		}
	})
}

// B-RETRY-17: retries happen inside one refresh; events arriving during
// the backoff collapse into at most one queued refresh.
func TestEngineRetryEventsDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{
			Retry: &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 100 * time.Millisecond, Multiplier: 1}})
		e.start(t)
		engFailCalls(e, 2, 3)
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		for i := range 10 {
			time.Sleep(15 * time.Millisecond)
			e.sub.send(engInv(statesync.Revision(3 + i)))
		}
		time.Sleep(time.Second)
		if got := e.prov.count(); got != 5 {
			t.Errorf("provider calls = %d; want 5 (start, 3 attempts, 1 queued)", got)
		}
		if got := e.errs.count(); got != 2 {
			t.Errorf("reports = %d; want 2 (the scheduled retries)", got)
		}
	})
}

// B-RETRY-11, B-LIFE-25: Stop ends a backoff at once; nothing is reported
// after Stop.
func TestEngineRetryStopDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{
			Retry: &statesync.RetryPolicy{MaxAttempts: 5, InitialDelay: 10 * time.Second}})
		e.start(t)
		engFailCalls(e, 2, 100)
		e.sub.send(engInv(2))
		time.Sleep(time.Second) // in the first 10 s backoff
		t0 := time.Now()
		e.c.Stop()
		if err := e.c.Wait(context.Background()); err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("Wait() after Stop took %v; want 0", d)
		}
		if got := e.prov.count(); got != 2 {
			t.Errorf("provider calls = %d; want 2", got)
		}
		if got := e.errs.count(); got != 1 {
			t.Errorf("reports = %v; want only the first scheduled retry", e.errs.all())
		}
	})
}

// B-LIFE-26 with retry: FetchTimeout bounds each attempt, and a timed-out
// attempt is retried.
func TestEngineRetryFetchTimeoutPerAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{FetchTimeout: 50 * time.Millisecond,
			Retry: &statesync.RetryPolicy{MaxAttempts: 2, InitialDelay: 10 * time.Millisecond}})
		e.start(t)
		e.prov.setHook(func(ctx context.Context, call int) error {
			if call == 2 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		e.prov.set(2, `"v2"`)
		t0 := time.Now()
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		if d := time.Since(t0); d != 60*time.Millisecond {
			t.Errorf("Refresh() took %v; want 60ms (50ms timeout + 10ms backoff)", d)
		}
		errs := e.errs.all()
		if len(errs) != 1 || !errs[0].WillRetry || !errors.Is(errs[0], context.DeadlineExceeded) {
			t.Errorf("reports = %v; want one scheduled retry after DeadlineExceeded", errs)
		}
	})
}

// B-ONERR-05 with retry: OnError called for a scheduled retry may call
// Stop, Revision and Refresh without deadlock.
func TestEngineRetryOnErrorMayCallConsumer(t *testing.T) {
	t.Run("stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, &statesync.ConsumerOptions{Retry: &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Second}})
			e.errs.hook = func(se *statesync.Error) {
				_ = e.c.Revision()
				e.c.Stop()
			}
			e.start(t)
			engFailCalls(e, 2, 100)
			e.sub.send(engInv(2))
			synctest.Wait()
			if got := e.prov.count(); got != 2 {
				t.Errorf("provider calls = %d; want 2 (no retry after Stop)", got)
			}
		})
	})
	t.Run("refresh", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, &statesync.ConsumerOptions{Retry: &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Second}})
			results := make(chan error, 1)
			e.errs.hook = func(se *statesync.Error) {
				if se.WillRetry {
					results <- e.c.Refresh(context.Background())
				}
			}
			e.start(t)
			engFailCalls(e, 2, 2)
			e.prov.set(2, `"v2"`)
			e.sub.send(engInv(2))
			if err := <-results; err != nil {
				t.Errorf("Refresh() from a retry report = %v; want nil", err)
			}
			if got := e.c.Revision(); got != 2 {
				t.Errorf("Revision() = %v; want 2", got)
			}
		})
	})
	t.Run("refresh whose run fails too", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, &statesync.ConsumerOptions{Retry: &statesync.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Second}})
			results := make(chan error, 1)
			var once sync.Once
			e.errs.hook = func(se *statesync.Error) {
				if se.WillRetry {
					once.Do(func() { results <- e.c.Refresh(context.Background()) })
				}
			}
			e.start(t)
			engFailCalls(e, 2, 100)
			e.sub.send(engInv(2))
			err := <-results
			if se := asEngError(t, err); se.Phase != statesync.PhaseGetSnapshot || se.Attempt != 2 {
				t.Errorf("Refresh() from a retry report = %v; want the queued run's final getSnapshot error", err)
			}
			synctest.Wait()
			var attempts []int
			for _, r := range e.errs.all() {
				attempts = append(attempts, r.Attempt)
			}
			// Run 1: retry report 1, final 2; run 2 (queued by OnError): the
			// same. Run 2's retry report is delivered after run 1's, whose
			// OnError waits for run 2, so it may come after run 2's final one.
			slices.Sort(attempts)
			if !slices.Equal(attempts, []int{1, 1, 2, 2}) {
				t.Errorf("reported attempts (sorted) = %v; want [1 1 2 2]", attempts)
			}
		})
	})
}
