package statesync

import (
	"fmt"
	"sync"
	"time"
)

// Throttle limits how often invalidations turn into refreshes. The zero
// value is passthrough: every invalidation that passes the gate requests a
// refresh at once (coalescing still applies).
//
// With Debounce alone, a refresh is requested once Debounce has passed
// without invalidations. With Interval, at most one refresh is requested per
// Interval: the first at once (unless NoLeading), and one more at the end of
// the window if invalidations arrived during it (unless NoTrailing). With
// both, the debounce acts first and the throttle acts on the debounced
// signal.
//
// A trailing refresh always fires at most Interval after the first suppressed invalidation, however steadily they
// keep arriving, and windows are measured on the monotonic clock.
type Throttle struct {
	// Debounce is the quiet time required before a refresh.
	Debounce time.Duration
	// Interval is the minimum time between two refreshes.
	Interval time.Duration
	// NoLeading suppresses the refresh at the start of a window.
	NoLeading bool
	// NoTrailing drops invalidations suppressed during a window instead of
	// refreshing at its end.
	NoTrailing bool
}

func (t Throttle) validate() error {
	switch {
	case t.Debounce < 0:
		return fmt.Errorf("%w: negative debounce %v", ErrInvalidThrottle, t.Debounce)
	case t.Interval < 0:
		return fmt.Errorf("%w: negative interval %v", ErrInvalidThrottle, t.Interval)
	case t.Interval > 0 && t.NoLeading && t.NoTrailing:
		return fmt.Errorf("%w: NoLeading and NoTrailing together would never refresh", ErrInvalidThrottle)
	}
	return nil
}

func (t Throttle) passthrough() bool { return t.Debounce == 0 && t.Interval == 0 }

// scheduler turns triggers into calls of fire according to a Throttle. Its
// timers run fire on their own goroutines; fire must not block. The zero
// Throttle is handled by the caller (no scheduler at all).
type scheduler struct {
	t    Throttle
	fire func()

	mu          sync.Mutex // protects the fields below
	disposed    bool
	debounce    *time.Timer // armed while a debounce is waiting
	debounceGen uint64      // generation of debounce; an older timer's callback does nothing
	window      *time.Timer // armed while a trailing call is pending
	lastExec    time.Time   // monotonic; zero before the first execution
	trailing    bool        // a suppressed trigger waits for the window's end
}

func newScheduler(t Throttle, fire func()) *scheduler {
	return &scheduler{t: t, fire: fire}
}

// trigger requests a call of fire, subject to the throttle.
func (s *scheduler) trigger() {
	if s.t.Debounce > 0 {
		s.mu.Lock()
		if s.disposed {
			s.mu.Unlock()
			return
		}
		// Each trigger arms a timer of its own generation. Resetting the
		// old timer instead would run its callback twice if it had just
		// expired, and that stale run would clear s.debounce while the
		// reset timer is still armed.
		if s.debounce != nil {
			s.debounce.Stop()
		}
		s.debounceGen++
		gen := s.debounceGen
		s.debounce = time.AfterFunc(s.t.Debounce, func() { s.debounced(gen) })
		s.mu.Unlock()
		return
	}
	s.throttled()
}

// debounced ends the debounce armed as generation gen, unless a later
// trigger re-armed it.
func (s *scheduler) debounced(gen uint64) {
	s.mu.Lock()
	if s.disposed || gen != s.debounceGen {
		s.mu.Unlock()
		return
	}
	s.debounce = nil
	s.mu.Unlock()
	s.throttled()
}

// throttled applies the throttle window to a (debounced) trigger.
func (s *scheduler) throttled() {
	s.mu.Lock()
	if s.disposed {
		s.mu.Unlock()
		return
	}
	if s.t.Interval == 0 {
		s.mu.Unlock()
		s.fire()
		return
	}
	if s.window != nil { // a trailing call is already scheduled
		s.trailing = true
		s.mu.Unlock()
		return
	}
	now := time.Now()
	inWindow := !s.lastExec.IsZero() && now.Sub(s.lastExec) < s.t.Interval
	switch {
	case !inWindow && !s.t.NoLeading:
		s.lastExec = now
		s.mu.Unlock()
		s.fire()
		return
	case !inWindow: // NoLeading: the trailing edge comes Interval after this first trigger
		s.trailing = true
		s.window = time.AfterFunc(s.t.Interval, s.windowEnd)
	case !s.t.NoTrailing:
		s.trailing = true
		s.window = time.AfterFunc(s.t.Interval-now.Sub(s.lastExec), s.windowEnd)
	}
	s.mu.Unlock()
}

func (s *scheduler) windowEnd() {
	s.mu.Lock()
	if s.disposed || !s.trailing {
		s.window = nil
		s.mu.Unlock()
		return
	}
	s.trailing = false
	s.window = nil
	s.lastExec = time.Now()
	s.mu.Unlock()
	s.fire()
}

// hasPending reports whether a debounced or trailing call is waiting.
func (s *scheduler) hasPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.debounce != nil || s.window != nil || s.trailing
}

// dispose cancels every timer; the scheduler never fires again. It is
// idempotent.
func (s *scheduler) dispose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disposed = true
	s.trailing = false
	if s.debounce != nil {
		s.debounce.Stop()
		s.debounce = nil
	}
	if s.window != nil {
		s.window.Stop()
		s.window = nil
	}
}
