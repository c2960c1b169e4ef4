// Package feedstatus keeps the bookkeeping the stores with a change feed
// share (pgstore, natsstore, redisstore): the [statesync.FeedStatus] their
// FeedStatus method reports, the Resync records they send their watchers,
// and the backoff between two attempts to make the feed again.
package feedstatus

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
)

// The feed's reconnection backoff: from MinBackoff, doubling up to
// MaxBackoff, each wait drawn at random between half and all of it.
const (
	MinBackoff = 50 * time.Millisecond
	MaxBackoff = 2 * time.Second
)

// Backoff returns the wait before a reconnection attempt, drawn at random
// between half of delay and all of it, and the delay of the next attempt:
// twice delay, at most [MaxBackoff].
func Backoff(delay time.Duration) (wait, next time.Duration) {
	return delay/2 + rand.N(delay/2+1), min(2*delay, MaxBackoff)
}

// Status is a change feed's status. Its zero value is a feed that has
// never been up; a Status is safe for concurrent use and must not be
// copied after first use.
type Status struct {
	mu sync.Mutex // protects st
	st statesync.FeedStatus
}

// Up records that the feed is up for the first time, now.
func (s *Status) Up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Connected, s.st.Since, s.st.Err = true, time.Now(), nil
}

// Reconnected records that the feed is up again, now, after it was lost,
// and counts a reconnection.
func (s *Status) Reconnected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Connected, s.st.Since, s.st.Err = true, time.Now(), nil
	s.st.Reconnects++
}

// Down records that the feed is down because of err. Since changes only
// if the feed was up: a failed reconnection attempt only replaces Err.
func (s *Status) Down(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Connected {
		s.st.Connected, s.st.Since = false, time.Now()
	}
	s.st.Err = err
}

// Resync counts a Resync record and publishes it on f, telling its
// watchers they may have missed changes.
func (s *Status) Resync(f *statesync.Feed) {
	s.mu.Lock()
	s.st.Resyncs++
	s.mu.Unlock()
	f.Publish(statesync.Record{Resync: true})
}

// Status returns the feed's status now.
func (s *Status) Status() statesync.FeedStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}
