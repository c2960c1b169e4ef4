package statesync

import (
	"sync"
	"sync/atomic"
)

// group counts running goroutines, like a sync.WaitGroup whose wait is a
// channel: waiting can be abandoned (when a context ends) without leaving
// a goroutine behind blocked in Wait. The zero value is ready to use.
type group struct {
	n    atomic.Int64
	mu   sync.Mutex    // protects idle
	idle chan struct{} // closed when n drops to 0; nil if nobody waits
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// add counts one more goroutine.
func (g *group) add() { g.n.Add(1) }

// done counts one goroutine less.
func (g *group) done() {
	if g.n.Add(-1) != 0 {
		return
	}
	g.mu.Lock()
	if g.n.Load() == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
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
	defer g.mu.Unlock()
	if g.n.Load() == 0 {
		return closedChan
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	return g.idle
}
