package statesync

import (
	"sync"
	"time"
)

// The refreshes that invalidations request of the consumers of one share
// group (see SharedProvider) run on a few goroutines of the group, one
// refresh after another, instead of on a goroutine each: an invalidation
// delivered to ten thousand consumers of a topic costs one fetch (the
// others take its snapshot) and ten thousand applies, and starting a
// goroutine for each apply cost more than the apply.
//
// A refresh that blocks (a slow applier, a fetch under way, an applier
// waiting for another consumer of the group) must not hold up the others
// for long, nor wait for one queued behind it. So a watchdog looks at the
// queue every stuckAfter while refreshes wait in it: if fewer than
// fastRefreshes began since its last look (or its arming), it starts as
// many more goroutines as run already (at most one per waiting refresh). A
// stuck refresh is thus passed within 2×stuckAfter, and slow appliers soon
// run in parallel as before.

// stuckAfter is the period of a run queue's watchdog.
const stuckAfter = time.Millisecond

// fastRefreshes is how many refreshes must begin in a watchdog period for
// the queue's goroutines to count as keeping up.
const fastRefreshes = 32

// A runQueue is the queue of a share group's refreshes and the goroutines
// that run them.
type runQueue struct {
	mu      sync.Mutex
	items   []runItem // items[head:] wait
	head    int
	runners int         // goroutines running the queue
	begun   uint64      // refreshes taken off the queue
	watch   *time.Timer // the watchdog, armed while refreshes wait
	gen     uint64      // counts the arming of the watchdog
	seen    uint64      // begun when the watchdog was armed or last looked
}

// A runItem is refresh seq of consumer c, which holds its refresh slot and
// is counted in c.wg.
type runItem struct {
	c   *Consumer
	seq uint64
}

// add queues refresh seq of c, starting a goroutine for the queue if none
// runs.
func (q *runQueue) add(c *Consumer, seq uint64) {
	q.mu.Lock()
	q.items = append(q.items, runItem{c, seq})
	if q.watch == nil {
		q.arm()
	}
	start := q.runners == 0
	if start {
		q.runners = 1
	}
	q.mu.Unlock()
	if start {
		go q.run()
	}
}

// arm starts the watchdog. The caller holds mu. (A timer of its own each
// time: one made in a testing/synctest bubble must not be reset from
// another.)
func (q *runQueue) arm() {
	q.gen++
	gen := q.gen
	q.seen = q.begun
	q.watch = time.AfterFunc(stuckAfter, func() { q.check(gen) })
}

// disarm stops the watchdog. The caller holds mu. (A look already under
// way finds the queue empty, or, after the next arm, another gen.)
func (q *runQueue) disarm() {
	q.watch.Stop()
	q.watch = nil
}

// run runs queued refreshes until none is left. (An applier must return:
// one that ends its goroutine, with runtime.Goexit as t.FailNow does, left
// its consumer unable to stop before there were run queues.)
func (q *runQueue) run() {
	for {
		it, ok := q.next()
		if !ok {
			return
		}
		it.c.refreshLoop(it.seq, false)
	}
}

// next takes the first waiting refresh off the queue; if there is none, the
// calling goroutine stops running the queue (ok is false).
func (q *runQueue) next() (it runItem, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
		q.runners--
		if q.watch != nil {
			q.disarm()
		}
		return runItem{}, false
	}
	it = q.items[q.head]
	q.items[q.head] = runItem{} // the queue does not keep the consumer
	q.head++
	q.begun++
	return it, true
}

// check is the watchdog's look number gen: see the comment at the top of
// the file. It is armed again while refreshes wait.
func (q *runQueue) check(gen uint64) {
	q.mu.Lock()
	if gen != q.gen {
		q.mu.Unlock()
		return
	}
	waiting := len(q.items) - q.head
	if waiting == 0 {
		q.watch = nil // the next add arms it again
		q.mu.Unlock()
		return
	}
	more := 0
	if q.begun-q.seen < fastRefreshes {
		more = min(q.runners, waiting)
	}
	q.seen = q.begun
	q.runners += more
	q.watch.Reset(stuckAfter)
	q.mu.Unlock()
	for range more {
		go q.run()
	}
}
