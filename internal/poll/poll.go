// Package poll is the module's tests' way to wait for a condition that
// nothing signals: it calls the condition until it holds, sleeping a little
// longer after each call (from 1 ms up to 20 ms), and fails the test if the
// condition has not held within [Timeout].
//
// Wait on a channel or a callback when there is one; poll only what can
// just be looked at (a counter, an HTTP endpoint, a browser's DOM, a
// terminal screen).
package poll

import (
	"testing"
	"time"
)

// Timeout is how long [Until] and [UntilState] wait. It is generous: it
// bounds only a failing test, on a busy machine under the race detector.
const Timeout = 20 * time.Second

// The sleeps between two calls of the condition.
const (
	minInterval = time.Millisecond
	maxInterval = 20 * time.Millisecond
)

// Until calls cond until it returns true. If that has not happened within
// Timeout it fails t with what, the condition waited for. It must be called
// from the goroutine running the test, like t.Fatal.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	UntilState(t, what, func() (bool, string) { return cond(), "" })
}

// UntilState is [Until] for a condition that also describes what it saw,
// for the failure message.
func UntilState(t testing.TB, what string, cond func() (ok bool, state string)) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within is [UntilState] with its own timeout, for conditions whose delay
// is what the test checks (a convergence bound).
func Within(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := minInterval
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if state != "" {
				t.Fatalf("%s: not within %v; last saw %s", what, timeout, state)
			}
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(interval)
		interval = min(2*interval, maxInterval)
	}
}
