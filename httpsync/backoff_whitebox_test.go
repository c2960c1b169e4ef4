package httpsync

import (
	"errors"
	"testing"
	"time"
)

// The reconnection delays: full jitter under an exponential ceiling capped
// at Max; slow (Max/2 to Max) for statuses that retrying soon would not
// cure; the server's retry hint as the base when Initial is not set.
func TestBackoffBounds(t *testing.T) {
	c, err := NewClient("http://x", &ClientOptions{Backoff: Backoff{Initial: 100 * time.Millisecond, Max: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for attempt := range 70 {
		ceiling := 100 * time.Millisecond
		for range attempt {
			ceiling = min(2*ceiling, 3*time.Second)
		}
		var most time.Duration
		for range 200 {
			d := c.backoff(attempt, 503, 0)
			if d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v; want within [0, %v]", attempt, d, ceiling)
			}
			most = max(most, d)
		}
		if most < ceiling/4 {
			t.Errorf("backoff(%d): largest of 200 draws %v; want spread up to %v", attempt, most, ceiling)
		}
	}
	for _, status := range []int{400, 401, 403, 404} {
		for range 200 {
			if d := c.backoff(0, status, 0); d < 1500*time.Millisecond || d > 3*time.Second {
				t.Fatalf("backoff after %d = %v; want within [1.5s, 3s]", status, d)
			}
		}
	}
	h, err := NewClient("http://x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for range 200 {
		if d := h.backoff(0, 0, 40*time.Millisecond); d > 40*time.Millisecond {
			t.Fatalf("first backoff with a 40 ms retry hint = %v; want at most 40ms", d)
		}
		if d := h.backoff(0, 0, 0); d > 500*time.Millisecond {
			t.Fatalf("first backoff without hint = %v; want at most the 500 ms default", d)
		}
	}
}

// After a farewell (the server shut down and said when to come back) the
// client waits exactly that, capped at Max, whatever its backoff was; the
// failures of the next 5 s are retried every 250 to 500 ms (or half to all
// of a smaller hint), later ones back off with a ceiling already grown by
// those attempts; a stream that opens ends the quick retries; a second
// farewell within ResetAfter is an ordinary failure, so that a server
// cannot make its clients reconnect in a loop. Without a farewell nothing
// changes: full jitter under the hint.
func TestReconnectorFarewell(t *testing.T) {
	c, err := NewClient("http://x", &ClientOptions{Backoff: Backoff{Max: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Unix(1_000_000, 0)
	for range 100 {
		rc := &reconnector{c: c, attempt: 7}
		opened := streamResult{opened: true, retry: 2 * time.Second, connected: time.Second}
		if d, fw := rc.next(streamResult{opened: true, retry: 2 * time.Second, farewell: 300 * time.Millisecond, hasFarewell: true}, t0); !fw || d != 300*time.Millisecond {
			t.Fatalf("after a farewell of 300ms: %v (farewell %v); want exactly 300ms", d, fw)
		}
		if rc.hint != 2*time.Second || rc.attempt != 0 {
			t.Fatalf("after a farewell: hint %v, attempt %d; want the stream's 2s hint and attempt 0", rc.hint, rc.attempt)
		}
		now := t0.Add(300 * time.Millisecond)
		for now.Before(t0.Add(5300 * time.Millisecond)) {
			d, fw := rc.next(streamResult{err: errSome}, now)
			if fw || d < 250*time.Millisecond || d > 500*time.Millisecond {
				t.Fatalf("a refusal %v after the farewell: retry in %v; want 250-500ms", now.Sub(t0), d)
			}
			now = now.Add(d)
		}
		if rc.attempt < 10 {
			t.Fatalf("%d quick retries in 5 s; want at least 10", rc.attempt)
		}
		// The backoff takes over, its ceiling min(Max, 2s·2^attempt).
		big := time.Duration(0)
		for range 20 {
			d, _ := rc.next(streamResult{err: errSome}, now.Add(time.Minute))
			big = max(big, d)
			if d > 10*time.Second {
				t.Fatalf("backoff after the quick retries: %v; want at most Max (10s)", d)
			}
		}
		if big < 2500*time.Millisecond {
			t.Fatalf("20 backoffs after the quick retries, the longest %v; want them spread up to 10s", big)
		}
		// A second farewell soon after: an ordinary failure.
		rc.next(opened, now)
		if d, fw := rc.next(streamResult{opened: true, farewell: 0, hasFarewell: true, connected: time.Second}, t0.Add(20*time.Second)); fw || d > 10*time.Second {
			t.Fatalf("a second farewell 20 s after the first: %v (farewell %v); want the backoff", d, fw)
		}
		// After ResetAfter (30 s) a farewell is honoured again, capped at Max.
		if d, fw := rc.next(streamResult{opened: true, farewell: time.Hour, hasFarewell: true}, t0.Add(31*time.Second)); !fw || d != 10*time.Second {
			t.Fatalf("a farewell of 1h 31 s after the first: %v (farewell %v); want Max, 10s", d, fw)
		}
		// A stream that opens ends the quick retries.
		rc.next(opened, t0.Add(32*time.Second))
		rc.attempt = 0
		if d, _ := rc.next(streamResult{err: errSome}, t0.Add(33*time.Second)); d > 2*time.Second {
			t.Fatalf("a failure after a stream opened: %v; want the backoff under the 2s hint", d)
		}
	}
	// A smaller hint makes the quick retries quicker.
	rc := &reconnector{c: c}
	rc.next(streamResult{opened: true, retry: 100 * time.Millisecond, hasFarewell: true}, t0)
	if rc.hint != 100*time.Millisecond {
		t.Fatalf("hint after a farewell stream = %v; want the stream's 100ms", rc.hint)
	}
	for range 100 {
		if d, _ := rc.next(streamResult{err: errSome}, t0.Add(time.Second)); d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("quick retry with a 100ms hint: %v; want 50-100ms", d)
		}
	}
	// 401 after a farewell is still retried slowly.
	if d, _ := rc.next(streamResult{status: 401}, t0.Add(time.Second)); d < 5*time.Second {
		t.Fatalf("a 401 during quick retries: %v; want Max/2 to Max", d)
	}
}

var errSome = errors.New("connection refused")
