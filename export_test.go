package statesync

// RetryInfo is the engine's report of a scheduled retry, for the tests.
type RetryInfo = retryInfo

// NewRetryProvider gives the external tests the provider wrapper that
// ConsumerOptions.Retry installs, so that retry schedules are tested on
// their own; onRetry, if not nil, stands for the engine's retry report.
func NewRetryProvider(p Provider, policy *RetryPolicy, onRetry func(RetryInfo)) (Provider, error) {
	rp, err := newRetryProvider(p, policy)
	if err != nil {
		return nil, err
	}
	rp.onRetry = onRetry
	return rp, nil
}

// SourceStates returns the number of topics src keeps state for.
func SourceStates(src *Source) int {
	n := 0
	src.cache.Range(func(_, _ any) bool { n++; return true })
	return n
}

// SetGateHook makes c call hook after an applier call has passed the
// revision gate and before it begins, with no lock held. Call it before
// the consumer starts.
func SetGateHook(c *Consumer, hook func()) { c.gateHook = hook }

// ShareGroups returns the number of share groups (see SharedProvider) the
// process's started consumers are in.
func ShareGroups() int {
	shares.mu.Lock()
	defer shares.mu.Unlock()
	return len(shares.m)
}

// SetHandleHook makes c call hook after an invalidation passed the
// revision gate and before it requests a refresh, with no lock held, on
// the delivering goroutine. Set it before the consumer starts, or from the
// goroutine that delivers.
func SetHandleHook(c *Consumer, hook func()) { c.handleHook = hook }

// StuckAfter is the period of a share group's run queue watchdog: a
// refresh queued behind one that blocks starts within twice that.
const StuckAfter = stuckAfter

// RunQueueKept returns how many consumers the run queue of c's share group
// still refers to, waiting or not (see runqueue.go); 0 if c is in none.
func RunQueueKept(c *Consumer) int {
	g := c.share.Load()
	if g == nil {
		return 0
	}
	q := &g.runs
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, it := range q.items[:cap(q.items)] {
		if it.c != nil {
			n++
		}
	}
	return n
}
