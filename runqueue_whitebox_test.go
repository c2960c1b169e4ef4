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
	q.begun = 100
	q.mu.Unlock()

	q.check(stale)

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen != 0 || q.watch != w || q.runners != 0 {
		t.Errorf("after a stale look: seen %d, runners %d, timer replaced %v; want 0, 0, false", q.seen, q.runners, q.watch != w)
	}
	q.disarm()
}

// The watchdog finds nothing waiting while the last refresh taken off the
// queue still runs: it starts no goroutine and is not armed again (the
// next add arms it).
func TestRunQueueLookWhileLastRuns(t *testing.T) {
	q := &runQueue{}
	q.mu.Lock()
	q.items = make([]runItem, 1)
	q.head = 1    // taken, and still running
	q.runners = 2 // its goroutine and another, stuck as well
	q.begun = 1
	q.arm()
	gen := q.gen
	q.mu.Unlock()

	q.check(gen)

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.watch != nil || q.runners != 2 {
		t.Errorf("after a look with nothing waiting: armed %v, runners %d; want false, 2", q.watch != nil, q.runners)
	}
	if q.watch != nil {
		q.disarm()
	}
}

// A queue whose goroutines began fastRefreshes refreshes since the
// watchdog's last look keeps up: the look starts no goroutine, though
// refreshes wait.
func TestRunQueueLookKeepingUp(t *testing.T) {
	q := &runQueue{}
	q.mu.Lock()
	q.items = make([]runItem, fastRefreshes+8)
	q.head = fastRefreshes // 8 wait (none is run here)
	q.runners = 1
	q.arm()
	q.begun = fastRefreshes
	gen := q.gen
	q.mu.Unlock()

	q.check(gen)

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.runners != 1 || q.seen != fastRefreshes || q.watch == nil {
		t.Errorf("after a look at a queue keeping up: runners %d, seen %d, armed %v; want 1, %d, true", q.runners, q.seen, q.watch != nil, fastRefreshes)
	}
	q.disarm()
}
