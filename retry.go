package statesync

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// A RetryPolicy says how often and how patiently a [Consumer] retries a
// failed provider call within one refresh ([ConsumerOptions.Retry]). Zero
// fields take the defaults: 3 attempts, 500 ms initial delay, multiplier 2,
// 10 s maximum delay, no jitter. The delay after failed attempt k (1-based) is
// min(InitialDelay × Multiplier^(k−1), MaxDelay), then jittered.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included. 0 means 3;
	// negative is an error.
	MaxAttempts int
	// InitialDelay is the delay after the first failure. 0 means 500 ms.
	InitialDelay time.Duration
	// Multiplier grows the delay after each failure. 0 means 2; it must
	// otherwise be at least 1.
	Multiplier float64
	// MaxDelay caps the delay. 0 means 10 s.
	MaxDelay time.Duration
	// Jitter is the fraction of each delay that is randomised, from 0 (none,
	// the default) to 1 ("full jitter": a uniform delay between 0 and the
	// computed one, which spreads out clients that failed together).
	Jitter float64
	// Retryable decides whether an error is worth another attempt. Nil
	// means [IsRetryable], except that a per-attempt timeout is retried.
	// Once the caller's context has ended nothing is retried.
	Retryable func(error) bool
}

// retryInfo describes a failed attempt that will be retried.
type retryInfo struct {
	// Attempt is the 1-based number of the failed attempt.
	Attempt int
	// Err is the attempt's error.
	Err error
	// NextDelay is the delay before the next attempt.
	NextDelay time.Duration
}

// A RetryError is the provider error of a refresh retried under
// [ConsumerOptions.Retry] when every attempt failed or a failure was not
// retryable; the consumer's *[Error] wraps it. It wraps the last attempt's
// error.
type RetryError struct {
	// Attempts is the number of attempts made.
	Attempts int
	// Err is the last attempt's error.
	Err error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("statesync: gave up after %d attempt(s): %v", e.Attempts, e.Err)
}

// Unwrap returns e.Err.
func (e *RetryError) Unwrap() error { return e.Err }

// withDefaults returns p with zero fields set to their defaults, or an
// error wrapping ErrInvalidRetry.
func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	switch {
	case p.MaxAttempts < 0:
		return p, fmt.Errorf("%w: MaxAttempts %d < 0", ErrInvalidRetry, p.MaxAttempts)
	case p.InitialDelay < 0 || p.MaxDelay < 0:
		return p, fmt.Errorf("%w: negative delay", ErrInvalidRetry)
	case p.Multiplier != 0 && !(p.Multiplier >= 1):
		return p, fmt.Errorf("%w: Multiplier %v < 1", ErrInvalidRetry, p.Multiplier)
	case !(p.Jitter >= 0 && p.Jitter <= 1):
		return p, fmt.Errorf("%w: Jitter %v outside [0, 1]", ErrInvalidRetry, p.Jitter)
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 3
	}
	if p.InitialDelay == 0 {
		p.InitialDelay = 500 * time.Millisecond
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = 10 * time.Second
	}
	return p, nil
}

// Delay returns the delay after failed attempt k (1-based) before jitter:
// min(InitialDelay × Multiplier^(k−1), MaxDelay), with zero fields taking
// their defaults.
func (p RetryPolicy) Delay(k int) time.Duration {
	p, _ = p.withDefaults()
	if k < 1 {
		k = 1
	}
	d := float64(p.InitialDelay) * math.Pow(p.Multiplier, float64(k-1))
	if d >= float64(p.MaxDelay) || math.IsInf(d, 0) || math.IsNaN(d) {
		return p.MaxDelay
	}
	return time.Duration(d)
}

func (p RetryPolicy) jittered(d time.Duration) time.Duration {
	if p.Jitter == 0 || d <= 0 {
		return d
	}
	fixed := time.Duration(float64(d) * (1 - p.Jitter))
	span := d - fixed // ≥ 0
	if span < math.MaxInt64 {
		span++ // draw from [fixed, d], d included
	}
	return fixed + rand.N(span)
}

// A retryProvider retries the calls of another Provider according to a
// RetryPolicy: the engine wraps the provider in one when
// ConsumerOptions.Retry is set. Its delays end as soon as the caller's
// context does.
type retryProvider struct {
	p              Provider
	policy         RetryPolicy
	onRetry        func(retryInfo) // set by the engine: reports the retry
	attemptTimeout time.Duration   // set by the engine from FetchTimeout
}

// newRetryProvider returns a Provider that retries p according to policy
// (nil means the defaults). It returns an error wrapping ErrInvalidRetry
// for a policy with negative or out-of-range values.
func newRetryProvider(p Provider, policy *RetryPolicy) (*retryProvider, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil Provider", ErrMissingDependency)
	}
	var pol RetryPolicy
	if policy != nil {
		pol = *policy
	}
	pol, err := pol.withDefaults()
	if err != nil {
		return nil, err
	}
	return &retryProvider{p: p, policy: pol}, nil
}

var _ Provider = (*retryProvider)(nil)

// Snapshot calls the wrapped provider until it succeeds, an error is not
// retryable, the attempts are used up or ctx ends. On failure it returns a
// *RetryError wrapping the last error; if ctx ended during a delay, it
// wraps that error joined with ctx.Err(), so that errors.Is(err,
// context.Canceled) (or DeadlineExceeded) holds.
func (r *retryProvider) Snapshot(ctx context.Context, topic string) (Snapshot, error) {
	for attempt := 1; ; attempt++ {
		snap, err := r.attempt(ctx, topic)
		if err == nil {
			return snap, nil
		}
		if attempt >= r.policy.MaxAttempts || ctx.Err() != nil || !r.retryable(err) {
			return Snapshot{}, &RetryError{Attempts: attempt, Err: err}
		}
		delay := r.policy.jittered(r.policy.Delay(attempt))
		callRetryHook(r.onRetry, retryInfo{Attempt: attempt, Err: err, NextDelay: delay})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Snapshot{}, &RetryError{Attempts: attempt, Err: errors.Join(err, ctx.Err())}
		}
	}
}

func (r *retryProvider) attempt(ctx context.Context, topic string) (snap Snapshot, err error) {
	if r.attemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.attemptTimeout)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v}
		}
	}()
	return r.p.Snapshot(ctx, topic)
}

func (r *retryProvider) retryable(err error) bool {
	if r.policy.Retryable != nil {
		return r.policy.Retryable(err)
	}
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return true // a per-attempt timeout; the caller's own end was checked before
	}
	return IsRetryable(err)
}

func callRetryHook(f func(retryInfo), info retryInfo) {
	if f == nil {
		return
	}
	defer func() { _ = recover() }()
	f(info)
}
