package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/statesync-go/statesync"
)

// state is one published value. It is never modified after publication.
type state[T any] struct {
	v       T
	rev     statesync.Revision
	applied bool          // a snapshot has been applied (false for the initial value)
	next    chan struct{} // closed when a newer state replaces this one
}

// A listener is a change callback or a Changes channel.
type listener[T any] struct {
	fn     func(old, new T) // nil for a channel
	ch     chan T           // nil for a callback
	active atomic.Bool
}

// core is the container shared by [Value], [Map] and [Struct]: the current
// state behind an atomic pointer (lock-free reads), a mutex serialising
// publications, and the listeners notified after each one.
type core[T any] struct {
	cur atomic.Pointer[state[T]]

	// mu serialises publications: derive, store, channel sends. No user
	// code runs while it is held: ToState and decoding happen before,
	// callbacks after.
	mu sync.Mutex

	subMu sync.Mutex                     // serialises changes to subs
	subs  atomic.Pointer[[]*listener[T]] // replaced on change, never modified
}

func (c *core[T]) init(initial T) {
	c.cur.Store(&state[T]{v: initial, next: make(chan struct{})})
}

func (c *core[T]) load() *state[T] { return c.cur.Load() }

// commit publishes derive(current) at rev, feeds the Changes channels, then
// runs the callbacks outside every lock. It returns derive's
// error (nothing published) or the callbacks' panics.
func (c *core[T]) commit(rev statesync.Revision, derive func(old T) (T, error)) error {
	c.mu.Lock()
	old := c.cur.Load()
	nv, err := derive(old.v)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.cur.Store(&state[T]{v: nv, rev: rev, applied: true, next: make(chan struct{})})
	close(old.next)
	subs := c.subs.Load()
	if subs != nil {
		for _, l := range *subs {
			if l.ch != nil && l.active.Load() {
				offer(l.ch, nv)
			}
		}
	}
	c.mu.Unlock()
	if subs == nil {
		return nil
	}
	var errs []error
	for _, l := range *subs {
		if l.fn != nil && l.active.Load() {
			if err := call(l.fn, old.v, nv); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// offer puts v in ch (capacity 1), replacing a value nobody has received
// yet. It never blocks: publications are serialised by core.mu, so nothing
// else sends to ch meanwhile, and a receiver only empties it.
func offer[T any](ch chan T, v T) {
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}

func call[T any](fn func(old, new T), old, nv T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %w", ErrCallbackPanicked, &statesync.PanicError{Value: r})
		}
	}()
	fn(old, nv)
	return nil
}

func (c *core[T]) add(l *listener[T]) {
	l.active.Store(true)
	c.subMu.Lock()
	defer c.subMu.Unlock()
	var subs []*listener[T]
	if p := c.subs.Load(); p != nil {
		subs = append(subs, *p...)
	}
	subs = append(subs, l)
	c.subs.Store(&subs)
}

func (c *core[T]) remove(l *listener[T]) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if !l.active.Swap(false) {
		return
	}
	p := c.subs.Load()
	subs := make([]*listener[T], 0, len(*p)-1)
	for _, x := range *p {
		if x != l {
			subs = append(subs, x)
		}
	}
	c.subs.Store(&subs)
}

func (c *core[T]) onChange(fn func(old, new T)) (remove func()) {
	if fn == nil {
		panic("apply: OnChange with a nil function")
	}
	l := &listener[T]{fn: fn}
	c.add(l)
	return func() { c.remove(l) }
}

func (c *core[T]) changes(ctx context.Context) <-chan T {
	l := &listener[T]{ch: make(chan T, 1)}
	c.mu.Lock() // no publication between priming and registering
	if s := c.cur.Load(); s.applied {
		l.ch <- s.v
	}
	c.add(l)
	c.mu.Unlock()
	context.AfterFunc(ctx, func() {
		c.remove(l)
		c.mu.Lock() // a publication that saw l active has finished sending
		close(l.ch)
		c.mu.Unlock()
	})
	return l.ch
}

func (c *core[T]) wait(ctx context.Context, pred func(T, statesync.Revision) bool) (T, error) {
	for {
		s := c.cur.Load()
		if s.applied && (pred == nil || pred(s.v, s.rev)) {
			return s.v, nil
		}
		select {
		case <-s.next:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}
