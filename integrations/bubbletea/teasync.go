package teasync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/statesync-go/statesync"
)

// A Sender receives the applier's messages. Send may block; the applier
// calls it from a goroutine of its own, one message at a time.
//
// A *tea.Program (charm.land/bubbletea/v2) is not a Sender as such: its
// Send takes a tea.Msg, a defined empty-interface type (uv.Event) rather
// than any, and Go matches method signatures exactly. Wrap it with
// [SenderFunc]:
//
//	teasync.SenderFunc(func(m any) { p.Send(m) })
type Sender interface {
	Send(msg any)
}

// SenderFunc adapts a function to the [Sender] interface.
type SenderFunc func(msg any)

// Send calls f(msg).
func (f SenderFunc) Send(msg any) { f(msg) }

// SnapshotMsg is sent for each snapshot applied: the topic, the
// snapshot's revision and epoch, and its data decoded into a T.
type SnapshotMsg[T any] struct {
	Topic    string
	Revision statesync.Revision
	Epoch    string
	Value    T
}

// ErrorMsg is sent when a snapshot cannot be decoded into T. Err is also
// returned by Apply.
type ErrorMsg struct {
	Topic    string
	Revision statesync.Revision
	Err      error
}

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("teasync: applier closed")

// Options configures an [Applier]. Nil or zero fields mean the defaults.
type Options[T any] struct {
	// Decode turns a snapshot's data into a T. Nil means json.Unmarshal
	// into a new T (data null gives the zero T).
	Decode func(data json.RawMessage) (T, error)
}

// An Applier is a [statesync.Applier] that sends each applied snapshot to
// a [Sender] as a [SnapshotMsg] without ever blocking the consumer (see the
// package documentation). It is safe for concurrent use.
type Applier[T any] struct {
	topic  string
	send   Sender
	decode func(json.RawMessage) (T, error)

	mu      sync.Mutex
	pending any // the mailbox: the latest message not yet taken, or nil
	closed  bool
	wake    chan struct{} // capacity 1: the mailbox has a message, or closed
	done    chan struct{} // closed when the goroutine has returned
}

var _ statesync.Applier = (*Applier[int])(nil)

// NewApplier returns an Applier of topic sending to s and starts its
// sending goroutine; call Close to stop it. opts may be nil.
func NewApplier[T any](s Sender, topic string, opts *Options[T]) *Applier[T] {
	a := &Applier[T]{
		topic: topic,
		send:  s,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	if opts != nil && opts.Decode != nil {
		a.decode = opts.Decode
	} else {
		a.decode = func(data json.RawMessage) (T, error) {
			var v T
			if len(data) == 0 {
				return v, nil
			}
			err := json.Unmarshal(data, &v)
			return v, err
		}
	}
	go a.loop()
	return a
}

// Apply decodes s into a T and posts a [SnapshotMsg] (or, if decoding
// fails, an [ErrorMsg], and returns the error). It never waits for the
// Sender.
func (a *Applier[T]) Apply(_ context.Context, s statesync.Snapshot) error {
	v, err := a.decode(s.Data)
	var msg any
	if err != nil {
		err = fmt.Errorf("teasync: decode %s revision %v: %w", a.topic, s.Revision, err)
		msg = ErrorMsg{Topic: a.topic, Revision: s.Revision, Err: err}
	} else {
		msg = SnapshotMsg[T]{Topic: a.topic, Revision: s.Revision, Epoch: s.Epoch, Value: v}
	}
	if !a.post(msg) {
		return ErrClosed
	}
	return err
}

// post puts msg in the mailbox, replacing a message not yet taken.
func (a *Applier[T]) post(msg any) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	a.pending = msg
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default: // already signalled
	}
	return true
}

func (a *Applier[T]) loop() {
	defer close(a.done)
	for range a.wake {
		a.mu.Lock()
		msg, closed := a.pending, a.closed
		a.pending = nil
		a.mu.Unlock()
		if closed {
			return
		}
		if msg != nil {
			a.send.Send(msg)
		}
	}
}

// Close stops the sending goroutine and drops a message not yet sent. It
// waits for a Send in progress to return. Apply after Close returns
// [ErrClosed]. Close is idempotent.
func (a *Applier[T]) Close() error {
	a.mu.Lock()
	first := !a.closed
	a.closed = true
	a.pending = nil
	a.mu.Unlock()
	if first {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	<-a.done
	return nil
}
