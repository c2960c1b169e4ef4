package httpsync

import (
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
