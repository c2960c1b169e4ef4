package statesync_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// B-THR-16: with debounce 50 ms, 4 events 10 ms apart cause no fetch during
// the burst and exactly one 50 ms after the last.
func TestEngineThrottleDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{Throttle: statesync.Throttle{Debounce: 50 * time.Millisecond}})
		e.start(t)
		t0 := time.Now()
		for i := range 4 {
			rev := statesync.Revision(2 + i)
			e.prov.set(rev, `"v"`)
			e.sub.send(engInv(rev))
			time.Sleep(10 * time.Millisecond)
		}
		// t = 40 ms; the last event was at 30 ms.
		if got := e.prov.count() - 1; got != 0 {
			t.Errorf("fetches during the burst = %d; want 0", got)
		}
		time.Sleep(39 * time.Millisecond) // t = 79 ms
		if got := e.prov.count() - 1; got != 0 {
			t.Errorf("fetches at %v = %d; want 0", time.Since(t0), got)
		}
		time.Sleep(time.Millisecond) // t = 80 ms: 50 ms after the last event
		synctest.Wait()
		if got := e.prov.count() - 1; got != 1 {
			t.Errorf("fetches at %v = %d; want 1", time.Since(t0), got)
		}
		time.Sleep(200 * time.Millisecond)
		if got := e.prov.count() - 1; got != 1 {
			t.Errorf("fetches at %v = %d; want 1", time.Since(t0), got)
		}
		if got := e.c.Revision(); got != 5 {
			t.Errorf("Revision() = %v; want 5", got)
		}
	})
}

// B-THR-17, B-DEF-01: throttle 100 ms with a 20 ms fetch (leading and
// trailing by default): events 2, 3, 4 cause at most 3 fetches; Go needs 2
// (leading, trailing).
func TestEngineThrottleInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{Throttle: statesync.Throttle{Interval: 100 * time.Millisecond}})
		e.start(t)
		e.prov.setDelay(20 * time.Millisecond)
		t0 := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		e.prov.setHook(func(context.Context, int) error {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Since(t0))
			return nil
		})
		for _, r := range []statesync.Revision{2, 3, 4} {
			e.prov.set(r, `"v"`)
			e.sub.send(engInv(r))
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Second)
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(at, []time.Duration{0, 100 * time.Millisecond}) {
			t.Errorf("fetch times = %v; want [0s 100ms] (leading, trailing)", at)
		}
		if got := e.c.Revision(); got != 4 {
			t.Errorf("Revision() = %v; want 4", got)
		}
	})
}

// B-THR-18, B-LIFE-13: Stop disposes the scheduler: debounce 100 ms, an
// event, Stop after 20 ms, then 150 ms: no fetch.
func TestEngineThrottleStopDisposes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{Throttle: statesync.Throttle{Debounce: 100 * time.Millisecond}})
		e.start(t)
		e.sub.send(engInv(2))
		time.Sleep(20 * time.Millisecond)
		e.c.Stop()
		time.Sleep(150 * time.Millisecond)
		if got := e.prov.count() - 1; got != 0 {
			t.Errorf("fetches after Stop = %d; want 0", got)
		}
	})
}

// B-THR-19, B-LIFE-10, B-LIFE-11: a Start that fails disposes the
// scheduler it made: an event debounced during the failed Start never
// fires.
func TestEngineThrottleDisposedOnStartFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{Throttle: statesync.Throttle{Debounce: 100 * time.Millisecond}})
		boom := errors.New("boom")
		e.prov.setHook(func(ctx context.Context, call int) error {
			e.sub.send(engInv(2)) // debounced until 100 ms
			time.Sleep(10 * time.Millisecond)
			return boom
		})
		if err := e.c.Start(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("Start() = %v; want %v", err, boom)
		}
		time.Sleep(time.Second)
		if got := e.prov.count(); got != 1 {
			t.Errorf("provider calls = %d; want 1 (the debounced event died with the failed Start)", got)
		}
	})
}

// B-THR-20: throttling does not change gating: a trailing refresh that
// finds the revision already applied skips the apply.
func TestEngineThrottleTrailingGated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger, Throttle: statesync.Throttle{Interval: 100 * time.Millisecond}})
		e.start(t)
		e.prov.setDelay(20 * time.Millisecond)
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2)) // leading: fetches 2
		time.Sleep(5 * time.Millisecond)
		e.sub.send(engInv(2)) // local is still 1: passes the gate, waits for the trailing edge
		time.Sleep(time.Second)
		if got := e.prov.count(); got != 3 {
			t.Errorf("provider calls = %d; want 3 (start, leading, trailing)", got)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2}) {
			t.Errorf("applied revisions = %v; want [1 2]", got)
		}
		if n := len(logs.find("snapshot skipped (not newer)")); n != 1 {
			t.Errorf("%q records = %d; want 1", "snapshot skipped (not newer)", n)
		}
	})
}
