package statesync

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// White-box tests of the throttle scheduler (B-THR, spec section 10). They
// port the examples of the TypeScript throttle tests, whose fake timers
// become testing/synctest bubbles (B-THR-21: no wall clock, deterministic).
// thrAdvance(d) is vi.advanceTimersByTime(d): it moves the bubble's clock by
// d and returns once every timer due by then has run.

const thr = time.Millisecond

// thrRecorder counts the calls of a scheduler's fire function and when they
// happened, relative to the recorder's creation.
type thrRecorder struct {
	start time.Time
	mu    sync.Mutex
	at    []time.Duration
}

func newThrRecorder() *thrRecorder { return &thrRecorder{start: time.Now()} }

func (r *thrRecorder) fire() {
	r.mu.Lock()
	r.at = append(r.at, time.Since(r.start))
	r.mu.Unlock()
}

func (r *thrRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

func (r *thrRecorder) times() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.at)
}

// now returns the bubble's time since the recorder was made.
func (r *thrRecorder) now() time.Duration { return time.Since(r.start) }

func thrAdvance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// thrNew returns a scheduler for th recording into a new recorder, disposed
// when the test ends. Call it inside the bubble.
func thrNew(t *testing.T, th Throttle) (*scheduler, *thrRecorder) {
	t.Helper()
	if err := th.validate(); err != nil {
		t.Fatalf("Throttle(%+v).validate() = %v", th, err)
	}
	r := newThrRecorder()
	s := newScheduler(th, r.fire)
	t.Cleanup(s.dispose)
	return s, r
}

func thrWantCount(t *testing.T, r *thrRecorder, want int) {
	t.Helper()
	if got := r.count(); got != want {
		t.Errorf("at %v: calls = %d (at %v); want %d", r.now(), got, r.times(), want)
	}
}

func thrWantPending(t *testing.T, s *scheduler, r *thrRecorder, want bool) {
	t.Helper()
	if got := s.hasPending(); got != want {
		t.Errorf("at %v: hasPending() = %v; want %v", r.now(), got, want)
	}
}

// B-THR-01, B-THR-02: without durations the throttle is passthrough whatever
// the flags, and a passthrough scheduler calls fire synchronously on every
// trigger, never has anything pending, and Dispose is harmless.
func TestThrottlePassthrough(t *testing.T) {
	for _, th := range []Throttle{{}, {NoLeading: true}, {NoTrailing: true}, {Debounce: 0, Interval: 0}} {
		if !th.passthrough() {
			t.Errorf("Throttle(%+v).passthrough() = false; want true", th)
		}
		if err := th.validate(); err != nil {
			t.Errorf("Throttle(%+v).validate() = %v; want nil (flags only matter with an interval)", th, err)
		}
	}
	for _, th := range []Throttle{{Debounce: thr}, {Interval: thr}} {
		if th.passthrough() {
			t.Errorf("Throttle(%+v).passthrough() = true; want false", th)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{})
		s.trigger()
		s.trigger()
		thrWantCount(t, r, 2) // synchronously, no time passed
		thrWantPending(t, s, r, false)
		s.dispose()
		thrWantPending(t, s, r, false)
	})
}

// B-THR-03, B-THR-04: debounce 100 ms, each trigger restarts the timer.
func TestThrottleDebounce(t *testing.T) {
	t.Run("restart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, r := thrNew(t, Throttle{Debounce: 100 * thr})
			s.trigger()
			thrWantPending(t, s, r, true)
			thrAdvance(50 * thr)
			s.trigger()
			thrAdvance(50 * thr)
			thrWantCount(t, r, 0)
			thrWantPending(t, s, r, true)
			thrAdvance(49 * thr)
			thrWantCount(t, r, 0)
			thrAdvance(1 * thr)
			thrWantCount(t, r, 1)
			thrWantPending(t, s, r, false)
			if got, want := r.times(), []time.Duration{150 * thr}; !slices.Equal(got, want) {
				t.Errorf("calls at %v; want %v", got, want)
			}
		})
	})
	t.Run("ten triggers 10ms apart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, r := thrNew(t, Throttle{Debounce: 100 * thr})
			for i := range 10 {
				if i > 0 {
					thrAdvance(10 * thr)
				}
				s.trigger()
			}
			thrWantCount(t, r, 0)
			thrAdvance(100 * thr)
			thrWantCount(t, r, 1)
			thrAdvance(time.Second)
			thrWantCount(t, r, 1)
			if got, want := r.times(), []time.Duration{190 * thr}; !slices.Equal(got, want) {
				t.Errorf("calls at %v; want %v", got, want)
			}
		})
	})
}

// B-THR-03: a trigger arriving at the very instant the debounce timer fires
// must not leave a second, untracked timer behind. Before the fix, the timer
// was Reset from inside its own expiry, its callback ran twice, and the
// stale run cleared the scheduler's timer while the reset one stayed armed:
// hasPending turned false and the next trigger armed a duplicate, so three
// triggers gave three calls. The race is decided by the scheduler, so the
// scenario is repeated.
func TestThrottleDebounceTriggerAtExpiry(t *testing.T) {
	for range 30 {
		synctest.Test(t, func(t *testing.T) {
			s, r := thrNew(t, Throttle{Debounce: 100 * thr})
			s.trigger()
			time.Sleep(100 * thr) // no synctest.Wait: race the timer's expiry
			s.trigger()
			thrAdvance(50 * thr)
			thrWantPending(t, s, r, true) // the trigger at 100 is still debounced
			s.trigger()
			thrAdvance(time.Second)
			// The trigger at 100 either restarted the first debounce (one call,
			// at 250) or came just after it fired (calls at 100 and 250).
			got := r.times()
			if !slices.Equal(got, []time.Duration{250 * thr}) && !slices.Equal(got, []time.Duration{100 * thr, 250 * thr}) {
				t.Fatalf("calls at %v; want [250ms] or [100ms 250ms]", got)
			}
			thrWantPending(t, s, r, false)
		})
	}
}

// B-THR-05, B-THR-06: throttle 100 ms with the default leading and trailing
// edges: the first trigger fires at once, the others in the window are
// suppressed, and one trailing call fires when the window ends.
func TestThrottleLeadingTrailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{Interval: 100 * thr})
		s.trigger()
		thrWantCount(t, r, 1) // B-THR-05: immediately
		thrWantPending(t, s, r, false)
		s.trigger()
		s.trigger()
		thrWantCount(t, r, 1) // suppressed
		thrWantPending(t, s, r, true)
		thrAdvance(99 * thr)
		thrWantCount(t, r, 1)
		thrAdvance(1 * thr)
		thrWantCount(t, r, 2) // B-THR-06: exactly one trailing call
		thrWantPending(t, s, r, false)
		thrAdvance(time.Second)
		thrWantCount(t, r, 2)
	})
	t.Run("single trigger has no trailing call", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, r := thrNew(t, Throttle{Interval: 100 * thr})
			s.trigger()
			thrAdvance(time.Second)
			thrWantCount(t, r, 1)
		})
	})
}

// B-THR-07: NoTrailing drops suppressed triggers; the first trigger after
// the window fires at once.
func TestThrottleNoTrailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{Interval: 100 * thr, NoTrailing: true})
		s.trigger()
		s.trigger()
		thrWantCount(t, r, 1)
		thrWantPending(t, s, r, false)
		thrAdvance(200 * thr)
		thrWantCount(t, r, 1)
	})
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{Interval: 100 * thr, NoTrailing: true})
		s.trigger()
		s.trigger()
		thrAdvance(150 * thr)
		s.trigger()
		thrWantCount(t, r, 2)
		if got, want := r.times(), []time.Duration{0, 150 * thr}; !slices.Equal(got, want) {
			t.Errorf("calls at %v; want %v", got, want)
		}
	})
}

// B-THR-08: NoLeading: a single trigger waits for the end of the window.
func TestThrottleNoLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{Interval: 100 * thr, NoLeading: true})
		s.trigger()
		thrWantCount(t, r, 0)
		thrWantPending(t, s, r, true)
		thrAdvance(99 * thr)
		thrWantCount(t, r, 0)
		thrAdvance(1 * thr)
		thrWantCount(t, r, 1)
		thrWantPending(t, s, r, false)
		thrAdvance(time.Second)
		thrWantCount(t, r, 1)
	})
}

// B-THR-09, B-THR-10: under continuous triggers (every 10 ms for one
// second) the trailing edge is never starved, and there is at most one call
// per interval, with or without the leading edge.
func TestThrottleContinuousTriggers(t *testing.T) {
	for _, tc := range []struct {
		name string
		th   Throttle
		want int
	}{
		// Calls at 100, 200, ..., 1000.
		{"NoLeading", Throttle{Interval: 100 * thr, NoLeading: true}, 10},
		// Calls at 0, 100, ..., 1000.
		{"leading", Throttle{Interval: 100 * thr}, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, r := thrNew(t, tc.th)
				for i := range 100 {
					if i > 0 {
						thrAdvance(10 * thr)
					}
					s.trigger()
				}
				thrAdvance(time.Second)
				at := r.times()
				if len(at) != tc.want {
					t.Errorf("%d calls at %v; want %d", len(at), at, tc.want)
				}
				if len(at) == 0 {
					return
				}
				if at[0] > tc.th.Interval { // B-THR-09
					t.Errorf("first call at %v; want no later than %v after the first trigger", at[0], tc.th.Interval)
				}
				for i := 1; i < len(at); i++ {
					gap := at[i] - at[i-1]
					if gap < tc.th.Interval { // B-THR-10
						t.Errorf("calls at %v and %v, %v apart; want at least %v", at[i-1], at[i], gap, tc.th.Interval)
					}
					if gap > tc.th.Interval+10*thr { // B-THR-09: not starved
						t.Errorf("calls at %v and %v, %v apart under continuous triggers; want at most %v", at[i-1], at[i], gap, tc.th.Interval+10*thr)
					}
				}
			})
		})
	}
}

// B-THR-10: a trailing call starts a new window, so a trigger right after it
// is suppressed and served by the next trailing call, one interval later.
func TestThrottleTrailingStartsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{Interval: 100 * thr})
		s.trigger() // leading @0
		s.trigger()
		thrAdvance(100 * thr) // trailing @100
		thrAdvance(10 * thr)
		s.trigger() // @110, inside the window opened @100
		thrWantCount(t, r, 2)
		thrWantPending(t, s, r, true)
		thrAdvance(time.Second)
		if got, want := r.times(), []time.Duration{0, 100 * thr, 200 * thr}; !slices.Equal(got, want) {
			t.Errorf("calls at %v; want %v", got, want)
		}
	})
}

// B-THR-11, B-THR-12: debounce 50 and throttle 200 (leading and trailing):
// the debounce acts first; there is no call at 0.
func TestThrottleDebounceAndInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{Debounce: 50 * thr, Interval: 200 * thr})
		s.trigger()           // @0
		thrWantCount(t, r, 0) // B-THR-12: not at 0 ms
		thrAdvance(49 * thr)
		thrWantCount(t, r, 0)
		thrAdvance(1 * thr)
		thrWantCount(t, r, 1) // @50: debounced, leading edge of the throttle
		s.trigger()           // @50
		thrAdvance(30 * thr)
		s.trigger() // @80
		thrAdvance(30 * thr)
		s.trigger() // @110 → debounced @160, inside the window → trailing @250
		thrWantPending(t, s, r, true)
		thrAdvance(50 * thr) // @160
		thrWantCount(t, r, 1)
		thrWantPending(t, s, r, true) // B-THR-13: the trailing timer is armed
		thrAdvance(89 * thr)          // @249
		thrWantCount(t, r, 1)
		thrAdvance(1 * thr) // @250
		thrWantCount(t, r, 2)
		thrAdvance(110 * thr) // @360
		thrWantCount(t, r, 2)
		thrWantPending(t, s, r, false)
		if got, want := r.times(), []time.Duration{50 * thr, 250 * thr}; !slices.Equal(got, want) {
			t.Errorf("calls at %v; want %v", got, want)
		}
	})
}

// B-THR-13: hasPending is true while a debounce timer, a trailing timer or a
// trailing call is pending, and false otherwise.
func TestThrottleHasPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, r := thrNew(t, Throttle{Debounce: 10 * thr, Interval: 100 * thr})
		thrWantPending(t, s, r, false)
		s.trigger()
		thrWantPending(t, s, r, true) // debounce armed
		thrAdvance(10 * thr)
		thrWantCount(t, r, 1)
		thrWantPending(t, s, r, false) // fired as the leading edge
		s.trigger()
		thrAdvance(10 * thr)
		thrWantPending(t, s, r, true) // trailing call waiting for the window
		thrAdvance(100 * thr)
		thrWantCount(t, r, 2)
		thrWantPending(t, s, r, false)
	})
}

// B-THR-14: Dispose cancels every timer and pending call, is idempotent,
// and makes later triggers no-ops.
func TestThrottleDispose(t *testing.T) {
	t.Run("debounce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, r := thrNew(t, Throttle{Debounce: 100 * thr})
			s.trigger()
			s.dispose()
			thrWantPending(t, s, r, false)
			thrAdvance(200 * thr)
			thrWantCount(t, r, 0)
		})
	})
	t.Run("trailing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, r := thrNew(t, Throttle{Interval: 100 * thr})
			s.trigger()
			s.trigger()
			s.dispose()
			thrWantPending(t, s, r, false)
			thrAdvance(200 * thr)
			thrWantCount(t, r, 1)
		})
	})
	t.Run("idempotent and final", func(t *testing.T) {
		for _, th := range []Throttle{
			{},
			{Debounce: 100 * thr},
			{Interval: 100 * thr},
			{Interval: 100 * thr, NoLeading: true},
			{Debounce: 50 * thr, Interval: 200 * thr},
		} {
			synctest.Test(t, func(t *testing.T) {
				s, r := thrNew(t, th)
				s.trigger()
				thrAdvance(10 * thr)
				before := r.count()
				for range 3 {
					s.dispose()
				}
				s.trigger()
				s.trigger()
				thrWantPending(t, s, r, false)
				thrAdvance(time.Second)
				if got := r.count(); got != before {
					t.Errorf("Throttle %+v: %d calls after dispose (at %v); want none", th, got-before, r.times())
				}
			})
		}
	})
}

// B-THR-15: both edges off, or a negative duration, is rejected by
// validation and by NewConsumer with ErrInvalidThrottle.
func TestThrottleValidate(t *testing.T) {
	bad := []Throttle{
		{Interval: 100 * thr, NoLeading: true, NoTrailing: true},
		{Debounce: 50 * thr, Interval: 100 * thr, NoLeading: true, NoTrailing: true},
		{Debounce: -1},
		{Interval: -1},
		{Debounce: -time.Second, Interval: time.Second},
		{Debounce: time.Second, Interval: -time.Second},
	}
	sub := SubscriberFunc(func(context.Context, string, InvalidationHandler) (func(), error) { return func() {}, nil })
	prov := ProviderFunc(func(context.Context, string) (Snapshot, error) { return Snapshot{}, nil })
	app := ApplierFunc(func(context.Context, Snapshot) error { return nil })
	for _, th := range bad {
		if err := th.validate(); !errors.Is(err, ErrInvalidThrottle) {
			t.Errorf("Throttle(%+v).validate() = %v; want ErrInvalidThrottle", th, err)
		}
		c, err := NewConsumer("t", sub, prov, app, &ConsumerOptions{Throttle: th})
		if !errors.Is(err, ErrInvalidThrottle) || c != nil {
			t.Errorf("NewConsumer(Throttle %+v) = %v, %v; want nil, ErrInvalidThrottle", th, c, err)
		}
	}
	good := []Throttle{
		{},
		{Debounce: 100 * thr},
		{Interval: 100 * thr},
		{Interval: 100 * thr, NoLeading: true},
		{Interval: 100 * thr, NoTrailing: true},
		{Debounce: 100 * thr, NoLeading: true, NoTrailing: true}, // flags unused without an interval
	}
	for _, th := range good {
		if err := th.validate(); err != nil {
			t.Errorf("Throttle(%+v).validate() = %v; want nil", th, err)
		}
		c, err := NewConsumer("t", sub, prov, app, &ConsumerOptions{Throttle: th})
		if err != nil {
			t.Errorf("NewConsumer(Throttle %+v) = %v; want nil error", th, err)
			continue
		}
		c.Stop()
	}
}

// B-THR-22: fire runs without the scheduler lock, on the triggering
// goroutine for a leading call and on a timer goroutine for debounced and
// trailing calls; so it may re-enter the scheduler.
func TestThrottleFireWithoutLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			s      *scheduler
			mu     sync.Mutex
			calls  int
			locked int
		)
		fire := func() {
			if !s.mu.TryLock() {
				mu.Lock()
				locked++
				mu.Unlock()
				return
			}
			s.mu.Unlock()
			_ = s.hasPending() // re-entry
			mu.Lock()
			calls++
			mu.Unlock()
		}
		s = newScheduler(Throttle{Debounce: 10 * thr, Interval: 100 * thr}, fire)
		defer s.dispose()
		s.trigger()
		thrAdvance(10 * thr) // debounced → leading call on the timer goroutine
		s.trigger()
		thrAdvance(200 * thr) // debounced @20, trailing call @110
		s2 := newScheduler(Throttle{Interval: 100 * thr}, nil)
		defer s2.dispose()
		s2.fire = func() { // leading call on this goroutine
			if !s2.mu.TryLock() {
				mu.Lock()
				locked++
				mu.Unlock()
				return
			}
			s2.mu.Unlock()
			s2.trigger() // re-entrant trigger inside the window: trailing
			mu.Lock()
			calls++
			mu.Unlock()
		}
		s2.trigger()
		mu.Lock()
		defer mu.Unlock()
		if locked != 0 || calls != 3 {
			t.Errorf("fire ran %d times with the scheduler lock held and %d times without; want 0 and 3", locked, calls)
		}
	})
}

// B-THR-21: throttle windows are measured on the monotonic clock, so wall
// clock jumps cannot stretch or shrink them. (Outside a synctest bubble,
// where time.Now carries a monotonic reading.)
func TestThrottleMonotonicClock(t *testing.T) {
	s := newScheduler(Throttle{Interval: time.Hour, NoTrailing: true}, func() {})
	defer s.dispose()
	s.trigger() // leading call: records the window start
	s.mu.Lock()
	last := s.lastExec
	s.mu.Unlock()
	if last.IsZero() || !strings.Contains(last.String(), " m=") {
		t.Errorf("window start = %v; want a time with a monotonic clock reading", last)
	}
}
