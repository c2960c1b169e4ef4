package statesync

import (
	"sync"
	"sync/atomic"
)

// group counts running goroutines, like a sync.WaitGroup whose wait is a
// channel: waiting can be abandoned (when a context ends) without leaving
// a goroutine behind blocked in Wait. The zero value is ready to use.
type group struct {
	n       atomic.Int64
	waiting atomic.Bool   // idle is set: done must look at it
	mu      sync.Mutex    // protects idle
	idle    chan struct{} // closed when n drops to 0; nil if nobody waits
}

// add counts one more goroutine.
func (g *group) add() { g.n.Add(1) }

// done counts one goroutine less. It takes the lock only if someone waits:
// done decrements n then reads waiting, wait sets waiting then reads n, so
// (the atomics being sequentially consistent) one of them sees the other.
func (g *group) done() {
	if g.n.Add(-1) == 0 && g.waiting.Load() {
		g.release()
	}
}

// release closes idle if the count is 0.
func (g *group) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n.Load() == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
		g.waiting.Store(false)
	}
}

// goRun runs f on a new goroutine counted by g.
func (g *group) goRun(f func()) {
	g.add()
	go func() {
		defer g.done()
		f()
	}()
}

// wait returns a channel that is closed once no counted goroutine runs.
func (g *group) wait() <-chan struct{} {
	g.mu.Lock()
	if g.idle == nil {
		g.idle = make(chan struct{})
		g.waiting.Store(true)
	}
	idle := g.idle
	g.mu.Unlock()
	if g.n.Load() == 0 {
		g.release() // a done may have missed waiting
	}
	return idle
}
