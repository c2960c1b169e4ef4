package statesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// Tests of the provider wrapper of ConsumerOptions.Retry (B-RETRY, spec
// section 11), made by NewRetryProvider (export_test.go). Delays run on the fake
// clock of a synctest bubble, so they are measured exactly.

// retryScript is a provider that fails with "fail N" on its first failures
// calls (N counting from 1) and then returns a snapshot. It records when
// each call happened, relative to its creation.
type retryScript struct {
	failures int
	start    time.Time

	mu sync.Mutex
	at []time.Duration
}

func newRetryScript(failures int) *retryScript {
	return &retryScript{failures: failures, start: time.Now()}
}

func (p *retryScript) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at = append(p.at, time.Since(p.start))
	if n := len(p.at); n <= p.failures {
		return statesync.Snapshot{}, fmt.Errorf("fail %d", n)
	}
	return statesync.Snapshot{Revision: 7, Data: json.RawMessage(`"ok"`)}, nil
}

func (p *retryScript) calls() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.at)
}

// delays returns the time between consecutive calls.
func (p *retryScript) delays() []time.Duration {
	at := p.calls()
	var d []time.Duration
	for i := 1; i < len(at); i++ {
		d = append(d, at[i]-at[i-1])
	}
	return d
}

// retryHook records the RetryInfo values passed to the retry hook.
type retryHook struct {
	mu    sync.Mutex
	infos []statesync.RetryInfo
}

func (h *retryHook) onRetry(info statesync.RetryInfo) {
	h.mu.Lock()
	h.infos = append(h.infos, info)
	h.mu.Unlock()
}

func (h *retryHook) got() []statesync.RetryInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.infos)
}

// newRetry returns p wrapped as ConsumerOptions.Retry wraps it; onRetry
// (at most one) stands for the engine's report of each scheduled retry.
func newRetry(t *testing.T, p statesync.Provider, pol *statesync.RetryPolicy, onRetry ...func(statesync.RetryInfo)) statesync.Provider {
	t.Helper()
	var hook func(statesync.RetryInfo)
	if len(onRetry) > 0 {
		hook = onRetry[0]
	}
	rp, err := statesync.NewRetryProvider(p, pol, hook)
	if err != nil {
		t.Fatalf("NewRetryProvider(%+v) = %v", pol, err)
	}
	return rp
}

// B-RETRY-01: a first success is returned after one call, with no delay.
func TestRetryFirstAttemptSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newRetryScript(0)
		var h retryHook
		rp := newRetry(t, p, nil, h.onRetry)
		snap, err := rp.Snapshot(context.Background(), "t")
		if err != nil || snap.Revision != 7 || string(snap.Data) != `"ok"` {
			t.Errorf("Snapshot() = %+v, %v; want revision 7 \"ok\"", snap, err)
		}
		if got := p.calls(); !slices.Equal(got, []time.Duration{0}) {
			t.Errorf("provider called at %v; want once at 0", got)
		}
		if got := h.got(); len(got) != 0 {
			t.Errorf("onRetry called with %v; want no call", got)
		}
	})
}

// B-RETRY-02, B-RETRY-03, B-DEF-02: the default policy makes 3 attempts,
// 500 ms then 1000 ms apart, without jitter, and returns the last error.
func TestRetryDefaultPolicy(t *testing.T) {
	var zero statesync.RetryPolicy
	for k, want := range map[int]time.Duration{
		1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second,
		5: 8 * time.Second, 6: 10 * time.Second, 60: 10 * time.Second, 5000: 10 * time.Second,
	} {
		if got := zero.Delay(k); got != want {
			t.Errorf("RetryPolicy{}.Delay(%d) = %v; want %v", k, got, want)
		}
	}
	for _, pol := range []*statesync.RetryPolicy{nil, {}} {
		synctest.Test(t, func(t *testing.T) {
			p := newRetryScript(10)
			rp := newRetry(t, p, pol)
			_, err := rp.Snapshot(context.Background(), "t")
			if err == nil || err.Error() == "" {
				t.Fatalf("Snapshot() = %v; want an error", err)
			}
			if got, want := p.calls(), []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond}; !slices.Equal(got, want) {
				t.Errorf("policy %v: provider called at %v; want %v", pol, got, want)
			}
		})
	}
}

// B-RETRY-08: with the default policy, one failure gives one onRetry call
// with a 500 ms delay.
func TestRetryDefaultOnRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newRetryScript(1)
		var h retryHook
		rp := newRetry(t, p, nil, h.onRetry)
		if _, err := rp.Snapshot(context.Background(), "t"); err != nil {
			t.Fatalf("Snapshot() = %v; want success on the second attempt", err)
		}
		got := h.got()
		if len(got) != 1 || got[0].Attempt != 1 || got[0].NextDelay != 500*time.Millisecond || got[0].Err == nil || got[0].Err.Error() != "fail 1" {
			t.Errorf("onRetry calls = %+v; want one {Attempt 1, Err fail 1, NextDelay 500ms}", got)
		}
	})
}

// B-RETRY-04: the delay is capped by MaxDelay.
func TestRetryMaxDelayCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newRetryScript(3)
		var h retryHook
		pol := &statesync.RetryPolicy{MaxAttempts: 4, InitialDelay: 100 * time.Millisecond, Multiplier: 10,
			MaxDelay: 500 * time.Millisecond}
		snap, err := newRetry(t, p, pol, h.onRetry).Snapshot(context.Background(), "t")
		if err != nil || snap.Revision != 7 {
			t.Fatalf("Snapshot() = %+v, %v; want the fourth attempt's snapshot", snap, err)
		}
		want := []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}
		if got := p.delays(); !slices.Equal(got, want) {
			t.Errorf("delays = %v; want %v", got, want)
		}
		var next []time.Duration
		for _, info := range h.got() {
			next = append(next, info.NextDelay)
		}
		if !slices.Equal(next, want) {
			t.Errorf("onRetry NextDelay = %v; want %v", next, want)
		}
		for k, w := range want {
			if got := pol.Delay(k + 1); got != w {
				t.Errorf("Delay(%d) = %v; want %v", k+1, got, w)
			}
		}
	})
}

// B-RETRY-05: two failures then success → the success after exactly 3 calls.
func TestRetrySucceedsOnLastAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newRetryScript(2)
		pol := &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 10 * time.Millisecond, Multiplier: 1}
		snap, err := newRetry(t, p, pol).Snapshot(context.Background(), "t")
		if err != nil || string(snap.Data) != `"ok"` {
			t.Errorf("Snapshot() = %+v, %v; want \"ok\"", snap, err)
		}
		if got, want := p.calls(), []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(got, want) {
			t.Errorf("provider called at %v; want %v", got, want)
		}
	})
}

// B-RETRY-06, B-RETRY-07, B-RETRY-16: when every attempt fails, the last
// error is returned inside a *RetryError carrying the number of attempts,
// after exactly MaxAttempts calls; onRetry is called once per scheduled
// retry, before the delay, and not after the final failure.
func TestRetryAllAttemptsFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newRetryScript(100)
		start := time.Now()
		var (
			h       retryHook
			hookAt  []time.Duration
			callsAt []int
		)
		pol := &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 100 * time.Millisecond, Multiplier: 2}
		hook := func(info statesync.RetryInfo) {
			hookAt = append(hookAt, time.Since(start))
			callsAt = append(callsAt, len(p.calls()))
			h.onRetry(info)
		}
		_, err := newRetry(t, p, pol, hook).Snapshot(context.Background(), "t")
		var re *statesync.RetryError
		if !errors.As(err, &re) {
			t.Fatalf("Snapshot() = %v; want a *RetryError", err)
		}
		if re.Attempts != 3 || re.Err == nil || re.Err.Error() != "fail 3" {
			t.Errorf("RetryError = {Attempts: %d, Err: %v}; want {3, fail 3}", re.Attempts, re.Err)
		}
		if errors.Unwrap(err) != re.Err {
			t.Errorf("errors.Unwrap(%v) = %v; want the last attempt's error", err, errors.Unwrap(err))
		}
		if got := len(p.calls()); got != 3 {
			t.Errorf("provider called %d times; want 3", got)
		}
		infos := h.got()
		if len(infos) != 2 {
			t.Fatalf("onRetry called %d times (%+v); want 2", len(infos), infos)
		}
		for i, info := range infos {
			want := statesync.RetryInfo{Attempt: i + 1, NextDelay: pol.Delay(i + 1)}
			if info.Attempt != want.Attempt || info.NextDelay != want.NextDelay || info.Err.Error() != fmt.Sprintf("fail %d", i+1) {
				t.Errorf("onRetry #%d = %+v; want {Attempt %d, Err fail %d, NextDelay %v}", i+1, info, want.Attempt, i+1, want.NextDelay)
			}
		}
		// Before the delay: right after the failed attempt, before the next.
		if want := []time.Duration{0, 100 * time.Millisecond}; !slices.Equal(hookAt, want) {
			t.Errorf("onRetry called at %v; want %v (before each delay)", hookAt, want)
		}
		if want := []int{1, 2}; !slices.Equal(callsAt, want) {
			t.Errorf("onRetry saw %v provider calls; want %v", callsAt, want)
		}
	})
}

// B-RETRY-11: a panic in onRetry is recovered and the retries go on; a panic
// in the provider is an error like any other.
func TestRetryPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newRetryScript(2)
		n := 0
		pol := &statesync.RetryPolicy{InitialDelay: time.Millisecond}
		hook := func(statesync.RetryInfo) {
			n++
			panic("hook")
		}
		snap, err := newRetry(t, p, pol, hook).Snapshot(context.Background(), "t")
		if err != nil || snap.Revision != 7 || n != 2 {
			t.Errorf("Snapshot() = %+v, %v with %d onRetry calls; want the third attempt's snapshot after 2 calls", snap, err, n)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		prov := statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) {
			calls++
			if calls == 1 {
				panic("provider")
			}
			return statesync.Snapshot{Revision: 1}, nil
		})
		var h retryHook
		snap, err := newRetry(t, prov, nil, h.onRetry).Snapshot(context.Background(), "t")
		if err != nil || snap.Revision != 1 || calls != 2 {
			t.Errorf("Snapshot() = %+v, %v after %d calls; want revision 1 after 2", snap, err, calls)
		}
		var pe *statesync.PanicError
		if infos := h.got(); len(infos) != 1 || !errors.As(infos[0].Err, &pe) || pe.Value != "provider" {
			t.Errorf("onRetry calls = %+v; want one with a *PanicError{provider}", infos)
		}
	})
}

// B-RETRY-11: the delay ends as soon as the caller's context does; the
// error says so and still carries the attempt's error.
func TestRetryContextEndsDuringDelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := tc.ctx()
				defer cancel()
				p := newRetryScript(100)
				start := time.Now()
				_, err := newRetry(t, p, &statesync.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Hour}).Snapshot(ctx, "t")
				if elapsed := time.Since(start); elapsed != 300*time.Millisecond {
					t.Errorf("Snapshot returned after %v; want 300ms (when ctx ended)", elapsed)
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("Snapshot() = %v; want error wrapping %v", err, tc.want)
				}
				var re *statesync.RetryError
				if !errors.As(err, &re) || re.Attempts != 1 {
					t.Errorf("Snapshot() = %v; want *RetryError{Attempts: 1}", err)
				} else if re.Err == nil || !strings.Contains(re.Err.Error(), "fail 1") || !errors.Is(re.Err, tc.want) {
					t.Errorf("RetryError.Err = %v; want the attempt's error (fail 1) and the context's", re.Err)
				}
				if got := len(p.calls()); got != 1 {
					t.Errorf("provider called %d times; want 1", got)
				}
				// Nothing is left running: the bubble would not end otherwise.
			})
		})
	}
	// A context that ended before the first failure: no retry at all.
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p := newRetryScript(100)
		_, err := newRetry(t, p, nil).Snapshot(ctx, "t")
		var re *statesync.RetryError
		if got := len(p.calls()); got != 1 || !errors.As(err, &re) || re.Attempts != 1 {
			t.Errorf("Snapshot(cancelled ctx) = %v after %d calls; want *RetryError{Attempts: 1} after 1", err, got)
		}
	})
}

// retryErr is an error that decides its own retryability.
type retryErr struct{ retry bool }

func (e retryErr) Error() string   { return fmt.Sprintf("retryable=%v", e.retry) }
func (e retryErr) Retryable() bool { return e.retry }

// B-RETRY-11: by default, cancellations, deadlines and protocol errors are
// not retried; other errors are; errors may decide for themselves; a
// Retryable classifier replaces the default.
func TestRetryClassifier(t *testing.T) {
	errBoom := errors.New("boom")
	badSnap := func() error { _, err := statesync.DecodeSnapshot([]byte(`{"revision":"01","data":1}`)); return err }()
	for _, tc := range []struct {
		name      string
		err       error
		retryable func(error) bool
		calls     int
	}{
		{"plain error", errBoom, nil, 3},
		{"provider's own cancellation", fmt.Errorf("fetch: %w", context.Canceled), nil, 1},
		{"provider's own deadline", fmt.Errorf("fetch: %w", context.DeadlineExceeded), nil, 3}, // a per-attempt timeout is retried
		{"snapshot error", badSnap, nil, 1},
		{"invalid payload", statesync.ErrInvalidPayload, nil, 1},
		{"conflict", &statesync.ConflictError{Topic: "t"}, nil, 1},
		{"closed", statesync.ErrClosed, nil, 1},
		{"self-declared permanent", fmt.Errorf("x: %w", retryErr{false}), nil, 1},
		{"self-declared transient", fmt.Errorf("x: %w", retryErr{true}), nil, 3},
		{"classifier says no", errBoom, func(err error) bool { return !errors.Is(err, errBoom) }, 1},
		{"classifier says yes to a protocol error", badSnap, func(error) bool { return true }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				var seen []error
				prov := statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) {
					calls++
					return statesync.Snapshot{}, tc.err
				})
				pol := &statesync.RetryPolicy{InitialDelay: time.Millisecond}
				if tc.retryable != nil {
					pol.Retryable = func(err error) bool { seen = append(seen, err); return tc.retryable(err) }
				}
				_, err := newRetry(t, prov, pol).Snapshot(context.Background(), "t")
				var re *statesync.RetryError
				if !errors.As(err, &re) || re.Attempts != tc.calls || !errors.Is(err, tc.err) {
					t.Errorf("Snapshot() = %v; want *RetryError{Attempts: %d} wrapping %v", err, tc.calls, tc.err)
				}
				if calls != tc.calls {
					t.Errorf("provider called %d times; want %d", calls, tc.calls)
				}
				if tc.retryable != nil && (len(seen) == 0 || !errors.Is(seen[0], tc.err)) {
					t.Errorf("classifier saw %v; want the provider's error", seen)
				}
			})
		})
	}
}

// B-RETRY-10: zero fields take the defaults (MaxAttempts 0 means 3);
// negative or out-of-range values are rejected with ErrInvalidRetry; a nil
// provider with ErrMissingDependency.
func TestRetryPolicyValidation(t *testing.T) {
	p := statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) { return statesync.Snapshot{}, nil })
	for _, pol := range []statesync.RetryPolicy{
		{MaxAttempts: -1},
		{InitialDelay: -time.Millisecond},
		{MaxDelay: -time.Millisecond},
		{Multiplier: 0.5},
		{Multiplier: -2},
		{Multiplier: math.NaN()},
		{Jitter: -0.1},
		{Jitter: 1.1},
		{Jitter: math.NaN()},
		{Jitter: math.Inf(1)},
	} {
		if rp, err := statesync.NewRetryProvider(p, &pol, nil); !errors.Is(err, statesync.ErrInvalidRetry) || rp != nil {
			t.Errorf("NewRetryProvider(%+v) = %v, %v; want nil, ErrInvalidRetry", pol, rp, err)
		}
	}
	for _, pol := range []statesync.RetryPolicy{
		{}, {MaxAttempts: 1}, {Multiplier: 1}, {Jitter: 0}, {Jitter: 0.5}, {Jitter: 1},
		{InitialDelay: time.Nanosecond, MaxDelay: time.Nanosecond},
	} {
		if _, err := statesync.NewRetryProvider(p, &pol, nil); err != nil {
			t.Errorf("NewRetryProvider(%+v) = %v; want nil error", pol, err)
		}
	}
	if _, err := statesync.NewRetryProvider(nil, nil, nil); !errors.Is(err, statesync.ErrMissingDependency) {
		t.Errorf("NewRetryProvider(nil, nil) = %v; want ErrMissingDependency", err)
	}
	// NewConsumer validates its Retry option the same way.
	sub := statesync.SubscriberFunc(func(context.Context, string, statesync.InvalidationHandler) (func(), error) { return func() {}, nil })
	app := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil })
	if _, err := statesync.NewConsumer("t", sub, p, app, &statesync.ConsumerOptions{Retry: &statesync.RetryPolicy{MaxAttempts: -1}}); !errors.Is(err, statesync.ErrInvalidRetry) {
		t.Errorf("NewConsumer(Retry MaxAttempts -1) = %v; want ErrInvalidRetry", err)
	}

	// MaxAttempts 1: a single attempt, no retry.
	synctest.Test(t, func(t *testing.T) {
		rs := newRetryScript(5)
		_, err := newRetry(t, rs, &statesync.RetryPolicy{MaxAttempts: 1}).Snapshot(context.Background(), "t")
		var re *statesync.RetryError
		if !errors.As(err, &re) || re.Attempts != 1 || len(rs.calls()) != 1 {
			t.Errorf("MaxAttempts 1: Snapshot() = %v after %d calls; want *RetryError{Attempts: 1} after 1", err, len(rs.calls()))
		}
	})
	// A partial policy is merged with the defaults field by field (B-RETRY-09).
	synctest.Test(t, func(t *testing.T) {
		rs := newRetryScript(5)
		_, _ = newRetry(t, rs, &statesync.RetryPolicy{InitialDelay: 10 * time.Millisecond}).Snapshot(context.Background(), "t")
		if got, want := rs.delays(), []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(got, want) {
			t.Errorf("InitialDelay 10ms, rest default: delays %v; want %v", got, want)
		}
	})
}

// B-RETRY-11: Jitter randomises the given fraction of each delay: with
// Jitter 1 each delay lies in [0, d], with Jitter 0.5 in [d/2, d]; the delay
// reported to onRetry is the one waited.
func TestRetryJitter(t *testing.T) {
	const d = 100 * time.Millisecond
	for _, tc := range []struct {
		jitter float64
		min    time.Duration
	}{
		{1, 0},
		{0.5, d / 2},
		{0.25, d * 3 / 4},
	} {
		synctest.Test(t, func(t *testing.T) {
			const attempts = 40
			p := newRetryScript(attempts)
			var h retryHook
			pol := &statesync.RetryPolicy{MaxAttempts: attempts, InitialDelay: d, Multiplier: 1, Jitter: tc.jitter}
			_, _ = newRetry(t, p, pol, h.onRetry).Snapshot(context.Background(), "t")
			delays := p.delays()
			if len(delays) != attempts-1 {
				t.Fatalf("Jitter %v: %d delays; want %d", tc.jitter, len(delays), attempts-1)
			}
			infos := h.got()
			for i, got := range delays {
				if got < tc.min || got > d {
					t.Errorf("Jitter %v: delay %d = %v; want within [%v, %v]", tc.jitter, i+1, got, tc.min, d)
				}
				if infos[i].NextDelay != got {
					t.Errorf("Jitter %v: onRetry NextDelay %v, waited %v", tc.jitter, infos[i].NextDelay, got)
				}
			}
			// 39 uniform draws among at least 25,000,001 nanosecond values
			// are all equal with negligible probability.
			if slices.Min(delays) == slices.Max(delays) {
				t.Errorf("Jitter %v: every delay is %v; want them spread", tc.jitter, delays[0])
			}
		})
	}
}

// B-RETRY-11: full jitter over the largest delay a policy allows (MaxDelay
// as "no cap") must not overflow; the delay still ends with the context.
func TestRetryJitterMaxDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p := newRetryScript(5)
		pol := &statesync.RetryPolicy{InitialDelay: math.MaxInt64, MaxDelay: math.MaxInt64, Jitter: 1}
		if got := pol.Delay(1); got != math.MaxInt64 {
			t.Errorf("Delay(1) = %v; want %v", got, time.Duration(math.MaxInt64))
		}
		var h retryHook
		_, err := newRetry(t, p, pol, h.onRetry).Snapshot(ctx, "t")
		infos := h.got()
		if len(infos) == 0 {
			t.Fatalf("Snapshot() = %v with no retry scheduled; want one", err)
		}
		d := infos[0].NextDelay
		if d < 0 {
			t.Errorf("NextDelay = %v; want within [0, %v]", d, time.Duration(math.MaxInt64))
		}
		if d >= time.Second && (len(p.calls()) != 1 || !errors.Is(err, context.DeadlineExceeded)) {
			t.Errorf("Snapshot() = %v after %d calls with a %v delay; want the deadline after 1 call", err, len(p.calls()), d)
		}
	})
}
