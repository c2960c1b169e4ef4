package wailssync

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/statesync-go/statesync"
)

// A Listener subscribes to the events of an IPC. Listen
// registers fn for event and returns a function that removes it.
type Listener interface {
	Listen(ctx context.Context, event string, fn func(json.RawMessage)) (unlisten func(), err error)
}

// An Invoker calls a command of an IPC and returns its raw JSON result.
type Invoker interface {
	Invoke(ctx context.Context, command string, args map[string]any) (json.RawMessage, error)
}

// ListenerFunc adapts a function to the [Listener] interface.
type ListenerFunc func(ctx context.Context, event string, fn func(json.RawMessage)) (func(), error)

// Listen calls f.
func (f ListenerFunc) Listen(ctx context.Context, event string, fn func(json.RawMessage)) (func(), error) {
	return f(ctx, event, fn)
}

// InvokerFunc adapts a function to the [Invoker] interface.
type InvokerFunc func(ctx context.Context, command string, args map[string]any) (json.RawMessage, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, command string, args map[string]any) (json.RawMessage, error) {
	return f(ctx, command, args)
}

// Subscriber is a [statesync.Subscriber] over a [Listener]: every payload
// of its event is passed to the handler unchanged, garbage included, for
// the engine to validate.
type Subscriber struct {
	l     Listener
	event string
}

var _ statesync.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber listening to event on l.
func NewSubscriber(l Listener, event string) *Subscriber {
	return &Subscriber{l: l, event: event}
}

// Subscribe calls Listen once and forwards each payload to h.InvalidateRaw.
// The topic is not used to filter: the engine drops other topics. An error
// from Listen is returned unchanged. The returned function
// calls the Listener's unlisten once; no new delivery to h begins after it
// returns, even if the Listener delivers late.
func (s *Subscriber) Subscribe(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
	var closed atomic.Bool
	unlisten, err := s.l.Listen(ctx, s.event, func(payload json.RawMessage) {
		if closed.Load() {
			return
		}
		h.InvalidateRaw(payload)
	})
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			closed.Store(true)
			if unlisten != nil {
				unlisten()
			}
		})
	}, nil
}

// Provider is a [statesync.Provider] over an [Invoker]: it invokes its
// command with its args exactly as configured and decodes the result with
// [statesync.DecodeSnapshot], so a malformed snapshot is a protocol error.
type Provider struct {
	inv     Invoker
	command string
	args    map[string]any
}

var _ statesync.Provider = (*Provider)(nil)

// NewProvider returns a Provider invoking command with args (nil for none).
// args is used as given, not copied: do not change it afterwards.
func NewProvider(inv Invoker, command string, args map[string]any) *Provider {
	return &Provider{inv: inv, command: command, args: args}
}

// Snapshot invokes the command and decodes its result. An error from
// Invoke is returned unchanged.
func (p *Provider) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	raw, err := p.inv.Invoke(ctx, p.command, p.args)
	if err != nil {
		return statesync.Snapshot{}, err
	}
	return statesync.DecodeSnapshot(raw)
}
