package statesync

import "testing"

// A look of the watchdog that was armed before the last arm does nothing:
// it neither counts the refreshes begun nor arms the timer again.
func TestRunQueueStaleLook(t *testing.T) {
	q := &runQueue{}
	q.mu.Lock()
	q.items = make([]runItem, 2) // waiting; no goroutine runs them
	q.arm()
	stale := q.gen
	q.disarm()
	q.arm()
	w := q.watch
	q.begun.Store(100)
	q.mu.Unlock()

	q.check(stale)

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen != 0 || q.watch != w || q.runners != 0 {
		t.Errorf("after a stale look: seen %d, runners %d, timer replaced %v; want 0, 0, false", q.seen, q.runners, q.watch != w)
	}
	q.disarm()
}
