package feedstatus_test

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/feedstatus"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		delay, next time.Duration
	}{
		{1, 2},
		{2, 4},
		{3, 6},
		{feedstatus.MinBackoff, 2 * feedstatus.MinBackoff},
		{feedstatus.MaxBackoff/2 - 1, feedstatus.MaxBackoff - 2},
		{feedstatus.MaxBackoff / 2, feedstatus.MaxBackoff},
		{feedstatus.MaxBackoff/2 + 1, feedstatus.MaxBackoff},
		{feedstatus.MaxBackoff, feedstatus.MaxBackoff},
		{3 * time.Second, feedstatus.MaxBackoff},
	} {
		lo, hi := tc.delay/2, tc.delay/2*2 // an odd delay loses its last nanosecond
		seen := map[time.Duration]bool{}
		for range 1000 {
			wait, next := feedstatus.Backoff(tc.delay)
			if wait < lo || wait > hi {
				t.Fatalf("Backoff(%v) wait = %v; want within [%v, %v]", tc.delay, wait, lo, hi)
			}
			if next != tc.next {
				t.Fatalf("Backoff(%v) next = %v; want %v", tc.delay, next, tc.next)
			}
			seen[wait] = true
		}
		// The draws reach both ends where there are few values to draw.
		if hi-lo < 4 && (!seen[lo] || !seen[hi]) {
			t.Errorf("Backoff(%v): waits %v in 1000 draws; want both %v and %v", tc.delay, seen, lo, hi)
		}
	}
}

// The wait is drawn at random: over many draws both halves of the range
// come up.
func TestBackoffSpread(t *testing.T) {
	var low, high bool
	for range 1000 {
		w, _ := feedstatus.Backoff(time.Second)
		low = low || w < 750*time.Millisecond
		high = high || w > 750*time.Millisecond
	}
	if !low || !high {
		t.Errorf("Backoff(1s) waits only in one half of 0.5-1 s (low %v, high %v)", low, high)
	}
}

// The backoff from MinBackoff reaches MaxBackoff and stays there.
func TestBackoffSequence(t *testing.T) {
	var got []time.Duration
	d := feedstatus.MinBackoff
	for range 8 {
		got = append(got, d)
		_, d = feedstatus.Backoff(d)
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
		400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v; want %v", got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s feedstatus.Status
		if got := s.Status(); got != (statesync.FeedStatus{}) {
			t.Fatalf("zero Status() = %+v; want the zero FeedStatus", got)
		}
		start := time.Now()
		s.Up()
		if got, want := s.Status(), (statesync.FeedStatus{Connected: true, Since: start}); got != want {
			t.Fatalf("after Up: %+v; want %+v", got, want)
		}

		time.Sleep(time.Second)
		lost := errors.New("lost")
		down := time.Now()
		s.Down(lost)
		if got, want := s.Status(), (statesync.FeedStatus{Since: down, Err: lost}); got != want {
			t.Fatalf("after Down: %+v; want %+v", got, want)
		}

		// A further failure replaces Err but not Since: the feed was down already.
		time.Sleep(time.Second)
		again := errors.New("again")
		s.Down(again)
		if got, want := s.Status(), (statesync.FeedStatus{Since: down, Err: again}); got != want {
			t.Fatalf("after a second Down: %+v; want %+v", got, want)
		}

		time.Sleep(time.Second)
		up := time.Now()
		s.Reconnected()
		if got, want := s.Status(), (statesync.FeedStatus{Connected: true, Since: up, Reconnects: 1}); got != want {
			t.Fatalf("after Reconnected: %+v; want %+v", got, want)
		}
		time.Sleep(time.Second)
		s.Down(lost)
		s.Reconnected()
		if got := s.Status(); got.Reconnects != 2 || !got.Connected || got.Err != nil || !got.Since.Equal(time.Now()) {
			t.Fatalf("after a second Reconnected: %+v; want connected now, 2 reconnects, no error", got)
		}

		// Up does not count a reconnection.
		s.Up()
		if got := s.Status().Reconnects; got != 2 {
			t.Fatalf("Reconnects = %d after Up; want 2 still", got)
		}
	})
}

func TestResync(t *testing.T) {
	var (
		s    feedstatus.Status
		f    statesync.Feed
		mu   sync.Mutex
		recs []statesync.Record
	)
	stop := f.Watch(func(r statesync.Record) {
		mu.Lock()
		recs = append(recs, r)
		mu.Unlock()
	})
	defer stop()
	s.Up()
	for i := range 3 {
		s.Resync(&f)
		if got := s.Status(); got.Resyncs != uint64(i+1) || !got.Connected || got.Reconnects != 0 {
			t.Fatalf("after %d Resyncs: %+v; want %d resyncs, connected, no reconnect", i+1, got, i+1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recs) != 3 {
		t.Fatalf("watcher got %d records; want 3", len(recs))
	}
	for _, r := range recs {
		if !r.Resync || r.Topic != "" || r.Revision != 0 || r.Data != nil || r.Epoch != "" {
			t.Errorf("watcher got %+v; want a bare Resync record", r)
		}
	}
}

// Status is safe for concurrent use.
func TestStatusConcurrent(t *testing.T) {
	var (
		s  feedstatus.Status
		f  statesync.Feed
		wg sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for range 100 {
				s.Down(errors.New("x"))
				s.Reconnected()
				s.Resync(&f)
				_ = s.Status()
			}
		})
	}
	wg.Wait()
	if got := s.Status(); got.Reconnects != 400 || got.Resyncs != 400 {
		t.Errorf("Status() = %+v; want 400 reconnects and 400 resyncs", got)
	}
}
