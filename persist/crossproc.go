package persist

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
)

// A Bus carries small messages between the [Persister]s (and
// [CrossTab]s) of a channel: the Go counterpart of the browser's
// BroadcastChannel (B-XTAB-16). Publish delivers msg to every subscriber
// of channel, the publisher's own included (a CrossTab drops its own
// messages by tab id). Delivery may be asynchronous, may lose messages
// and has no order across publishers: receivers treat messages as hints
// and read the shared storage. Subscriber functions must not block.
//
// Implementations: [MemoryBus] (one process) and [SocketBus] (processes
// on one host).
type Bus interface {
	Publish(ctx context.Context, channel string, msg []byte) error
	Subscribe(channel string, fn func(msg []byte)) (unsubscribe func(), err error)
}

// fanout is the subscriber registry of a Bus.
type fanout struct {
	mu   sync.Mutex // protects subs
	subs map[string][]*busSub
}

type busSub struct{ fn func([]byte) }

func (f *fanout) subscribe(channel string, fn func([]byte)) func() {
	s := &busSub{fn: fn}
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[string][]*busSub{}
	}
	f.subs[channel] = append(f.subs[channel], s)
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			l := f.subs[channel]
			for i, x := range l {
				if x == s {
					f.subs[channel] = append(l[:i:i], l[i+1:]...)
					break
				}
			}
			if len(f.subs[channel]) == 0 {
				delete(f.subs, channel)
			}
		})
	}
}

func (f *fanout) deliver(channel string, msg []byte) {
	f.mu.Lock()
	subs := f.subs[channel]
	f.mu.Unlock()
	for _, s := range subs {
		func() {
			defer func() { _ = recover() }()
			s.fn(bytes.Clone(msg))
		}()
	}
}

// A MemoryBus is a [Bus] within one process: Publish calls every
// subscriber of the channel synchronously, each with its own copy of the
// message. The zero value is ready to use; it is safe for concurrent use.
type MemoryBus struct {
	f fanout
}

var _ Bus = (*MemoryBus)(nil)

// Publish delivers msg to the subscribers of channel.
func (b *MemoryBus) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.f.deliver(channel, msg)
	return nil
}

// Subscribe registers fn for channel.
func (b *MemoryBus) Subscribe(channel string, fn func(msg []byte)) (func(), error) {
	return b.f.subscribe(channel, fn), nil
}

// MessageType is the type of a cross-process [Message] (B-XTAB-01).
type MessageType string

// The message types.
const (
	// MessageSnapshot announces a newly saved snapshot.
	MessageSnapshot MessageType = "snapshot"
	// MessageRequestSync asks the others to announce their last save.
	MessageRequestSync MessageType = "request-sync"
	// MessageClear announces that the storage was cleared.
	MessageClear MessageType = "clear"
)

// A Message is what a [CrossTab] sends, as JSON:
//
//	{"type":"snapshot","tabId":"…","payload":{"revision":"42","epoch":"k7Qx"}}
//
// A snapshot message is a doorbell: it carries the revision and epoch of
// the saved snapshot, not its data, which travels through the shared
// storage (where it is integrity-checked, migrated and validated).
type Message struct {
	Type    MessageType `json:"type"`
	TabID   string      `json:"tabId"`
	Payload *Notice     `json:"payload,omitempty"`
}

// A Notice names a saved snapshot.
type Notice struct {
	Revision statesync.Revision `json:"revision"`
	Epoch    string             `json:"epoch,omitempty"`
}

// DecodeMessage decodes and validates a Message: a known type, a
// non-empty tab id, and for a snapshot a payload with a canonical
// revision. Anything else is an error wrapping [ErrInvalidMessage]
// (B-XTAB-14).
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	switch {
	case m.TabID == "":
		return Message{}, fmt.Errorf("%w: no tabId", ErrInvalidMessage)
	case m.Type == MessageSnapshot && m.Payload == nil:
		return Message{}, fmt.Errorf("%w: snapshot message without payload", ErrInvalidMessage)
	case m.Type != MessageSnapshot && m.Type != MessageRequestSync && m.Type != MessageClear:
		return Message{}, fmt.Errorf("%w: unknown type %q", ErrInvalidMessage, m.Type)
	}
	return m, nil
}

// newTabID returns a random UUIDv4 (B-XTAB-02).
func newTabID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// CrossTabOptions configures a [CrossTab]. The zero value (or nil)
// receives and broadcasts (B-DEF-06) and ignores what it receives.
type CrossTabOptions struct {
	// NoReceive processes no incoming message at all (B-XTAB-07).
	NoReceive bool
	// NoBroadcast makes Broadcast do nothing; RequestSync and NotifyClear
	// still send (B-XTAB-08).
	NoBroadcast bool
	// OnSnapshot, OnSyncRequest and OnClear receive the messages of the
	// others, with the sender's tab id, on the Bus's delivery goroutine.
	OnSnapshot    func(n Notice, from string)
	OnSyncRequest func(from string)
	OnClear       func(from string)
	// OnError receives malformed messages (ErrInvalidMessage) and send
	// errors, which are otherwise swallowed (B-XTAB-11).
	OnError func(error)
}

// A CrossTab is one participant of a channel of a [Bus] (B-XTAB). It has
// a random tab id, never receives its own messages, and, made with a nil
// Bus or one whose Subscribe fails, is a no-op whose IsSupported is
// false (B-XTAB-10). It is safe for concurrent use.
type CrossTab struct {
	bus     Bus
	channel string
	opts    CrossTabOptions
	tabID   string

	mu       sync.Mutex // protects unsub and disposed
	unsub    func()
	disposed bool
}

// NewCrossTab joins channel on bus.
func NewCrossTab(bus Bus, channel string, opts *CrossTabOptions) *CrossTab {
	c := &CrossTab{bus: bus, channel: channel, tabID: newTabID()}
	if opts != nil {
		c.opts = *opts
	}
	if bus == nil {
		return c
	}
	unsub, err := bus.Subscribe(channel, c.receive)
	if err != nil {
		c.bus = nil
		c.reportErr(fmt.Errorf("persist: cross-process channel %q unavailable: %w", channel, err))
		return c
	}
	c.unsub = unsub
	return c
}

// TabID returns the participant's id, a random UUIDv4.
func (c *CrossTab) TabID() string { return c.tabID }

// IsSupported reports whether messages can be sent and received.
func (c *CrossTab) IsSupported() bool { return c.bus != nil }

func (c *CrossTab) receive(b []byte) {
	c.mu.Lock()
	off := c.disposed
	c.mu.Unlock()
	if off || c.opts.NoReceive {
		return
	}
	m, err := DecodeMessage(b)
	if err != nil {
		c.reportErr(err)
		return
	}
	if m.TabID == c.tabID {
		return // our own (B-XTAB-04)
	}
	switch m.Type {
	case MessageSnapshot:
		if c.opts.OnSnapshot != nil {
			c.opts.OnSnapshot(*m.Payload, m.TabID)
		}
	case MessageRequestSync:
		if c.opts.OnSyncRequest != nil {
			c.opts.OnSyncRequest(m.TabID)
		}
	case MessageClear:
		if c.opts.OnClear != nil {
			c.opts.OnClear(m.TabID)
		}
	}
}

func (c *CrossTab) reportErr(err error) {
	if c.opts.OnError == nil {
		return
	}
	defer func() { _ = recover() }()
	c.opts.OnError(err)
}

func (c *CrossTab) send(ctx context.Context, m Message) {
	c.mu.Lock()
	off := c.disposed
	c.mu.Unlock()
	if off || c.bus == nil {
		return
	}
	m.TabID = c.tabID
	b, _ := json.Marshal(m)
	if err := c.bus.Publish(ctx, c.channel, b); err != nil {
		c.reportErr(fmt.Errorf("persist: cross-process send on %q: %w", c.channel, err))
	}
}

// Broadcast announces a saved snapshot to the others (B-XTAB-03).
func (c *CrossTab) Broadcast(ctx context.Context, n Notice) {
	if c.opts.NoBroadcast {
		return
	}
	c.send(ctx, Message{Type: MessageSnapshot, Payload: &n})
}

// RequestSync asks the others to announce their last save (B-XTAB-05).
func (c *CrossTab) RequestSync(ctx context.Context) {
	c.send(ctx, Message{Type: MessageRequestSync})
}

// NotifyClear tells the others that the storage was cleared (B-XTAB-06).
func (c *CrossTab) NotifyClear(ctx context.Context) {
	c.send(ctx, Message{Type: MessageClear})
}

// Dispose leaves the channel: nothing more is received or sent
// (B-XTAB-09). It is idempotent.
func (c *CrossTab) Dispose() {
	c.mu.Lock()
	unsub := c.unsub
	c.unsub, c.disposed = nil, true
	c.mu.Unlock()
	if unsub != nil {
		unsub()
	}
}

// ClearPersisted clears storage if it is a [Clearer] (otherwise it does
// nothing) and, if bus is not nil, tells the participants of channel
// (B-BOOT-06). It returns the clear error; it emits no event.
func ClearPersisted(ctx context.Context, storage Storage, bus Bus, channel string) error {
	if c, ok := storage.(Clearer); ok {
		if err := c.Clear(ctx); err != nil {
			return err
		}
	}
	if bus != nil {
		ct := NewCrossTab(bus, channel, &CrossTabOptions{NoReceive: true})
		ct.NotifyClear(ctx)
		ct.Dispose()
	}
	return nil
}

// receiver coalesces the snapshot notices of other processes: it keeps
// the latest one and one goroutine that loads and applies.
type receiver struct {
	mu      sync.Mutex // protects the fields below
	want    *Notice
	running bool
	stopped bool
}

func (r *receiver) stop() {
	r.mu.Lock()
	r.stopped, r.want = true, nil
	r.mu.Unlock()
}

// subscribe joins the Persister's channel.
func (p *Persister) subscribe() {
	xt := NewCrossTab(p.opts.Bus, p.opts.Channel, &CrossTabOptions{
		NoReceive:     p.opts.NoReceive,
		NoBroadcast:   p.opts.NoBroadcast,
		OnSnapshot:    p.onNotice,
		OnSyncRequest: p.onSyncRequest,
		OnClear:       p.onRemoteClear,
		OnError:       func(err error) { p.report(&Error{Op: OpCrossTab, Err: err}) },
	})
	p.xt = xt
	p.unsubscribe = xt.Dispose
}

// Attach routes the snapshots that other processes announce through c's
// [statesync.Consumer.Offer], so that c's revision gate applies to them
// and c's revision advances (B-XTAB-14). Without it, they are gated
// against the last snapshot applied through the Persister and applied to
// the inner applier. [StartWithCache] attaches its consumer.
func (p *Persister) Attach(c *statesync.Consumer) { p.attach(c) }

func (p *Persister) attach(c *statesync.Consumer) {
	p.mu.Lock()
	p.consumer = c
	p.mu.Unlock()
}

// TabID returns the Persister's cross-process id.
func (p *Persister) TabID() string {
	if p.xt != nil {
		return p.xt.TabID()
	}
	return p.tabID
}

// RequestSync asks the other processes of the channel to announce their
// last saved snapshot.
func (p *Persister) RequestSync(ctx context.Context) {
	if p.xt != nil {
		p.xt.RequestSync(ctx)
	}
}

func (p *Persister) broadcastSaved(s statesync.Snapshot) {
	if p.xt != nil {
		p.xt.Broadcast(p.ctx, Notice{Revision: s.Revision, Epoch: s.Epoch})
	}
}

func (p *Persister) notifyClear(ctx context.Context) {
	if p.xt != nil {
		p.xt.NotifyClear(ctx)
	}
}

func (p *Persister) onSyncRequest(string) {
	if !p.opts.AnswerSyncRequests {
		return
	}
	p.mu.Lock()
	m := p.persisted
	p.mu.Unlock()
	if m.any {
		p.broadcastSaved(statesync.Snapshot{Revision: m.rev, Epoch: m.epoch})
	}
}

// onRemoteClear drops the pending save and emits EventCleared
// (B-XTAB-15).
func (p *Persister) onRemoteClear(string) {
	p.mu.Lock()
	if p.disposed {
		p.mu.Unlock()
		return
	}
	p.pending = nil
	p.stopTimersLocked()
	p.persisted = marker{}
	p.mu.Unlock()
	p.emit(Event{Kind: EventCleared})
	if p.opts.OnClear != nil {
		func() {
			defer func() { _ = recover() }()
			p.opts.OnClear()
		}()
	}
}

// onNotice records a notice of another process and wakes the receiver if
// the notice may be newer than what is applied.
func (p *Persister) onNotice(n Notice, _ string) {
	s := statesync.Snapshot{Revision: n.Revision, Epoch: n.Epoch}
	p.mu.Lock()
	if p.disposed {
		p.mu.Unlock()
		return
	}
	cur := p.applied
	if c := p.consumer; c != nil {
		cur = marker{rev: c.Revision(), epoch: c.Epoch(), any: true}
	}
	p.mu.Unlock()
	if !cur.newer(s) {
		return // stale notice: no read at all
	}
	r := &p.recv
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.want = &n
	if !r.running {
		r.running = true
		p.wg.Add(1)
		go p.receiveLoop()
	}
}

func (p *Persister) receiveLoop() {
	defer p.wg.Done()
	r := &p.recv
	for {
		r.mu.Lock()
		if r.want == nil || r.stopped {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.want = nil
		r.mu.Unlock()
		p.receive()
	}
}

// receive loads the record another process saved and applies it if it
// passes every load check and the revision gate (B-XTAB-13, B-XTAB-14).
// It is not saved again and not announced again.
func (p *Persister) receive() {
	p.mu.Lock()
	c := p.consumer
	p.mu.Unlock()
	var app statesync.Applier
	if c != nil {
		app = statesync.ApplierFunc(c.Offer)
	} else {
		app = statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
			p.applyMu.Lock()
			defer p.applyMu.Unlock()
			p.mu.Lock()
			fresh := p.applied.newer(s) && !p.disposed
			p.mu.Unlock()
			if !fresh {
				return nil
			}
			if err := callApply(ctx, p.inner, s); err != nil {
				return err
			}
			p.mu.Lock()
			p.applied = markerOf(s)
			p.mu.Unlock()
			return nil
		})
	}
	o := p.load
	o.NoWriteBack = true // never rewrite another process's record
	o.OnError = func(e *Error) {
		e.Err = fmt.Errorf("%s: %w", e.Op, e.Err)
		e.Op = OpCrossTab
		p.report(e)
	}
	h := &loadHooks{
		expired: func(s statesync.Snapshot, age time.Duration) {
			p.emit(Event{Kind: EventExpired, Snapshot: s, Age: age})
		},
		migrated: func(r MigrationResult) { p.emit(Event{Kind: EventMigrated, Migration: r}) },
		beforeApply: func(s statesync.Snapshot, m Metadata) {
			p.mu.Lock()
			if p.persisted.newer(s) {
				p.persisted = markerOf(s)
			}
			p.mu.Unlock()
		},
	}
	_, _, _ = load(p.ctx, p.storage, app, &o, h)
}
