package procsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
)

// ErrInvalidMessage is reported for a message on the channel that is not
// a valid notice.
var ErrInvalidMessage = errors.New("procsync: invalid message")

// A Bus carries small messages between the processes of a channel.
// Publish delivers msg to every subscriber of channel, the publisher's own
// included (a [Peer] drops its own messages by id). Delivery may be
// asynchronous, may lose messages and has no order across publishers:
// receivers treat messages as hints and read the shared storage.
// Subscriber functions must not block.
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

// The message types.
const (
	msgSnapshot    = "snapshot"     // a newly saved snapshot
	msgRequestSync = "request-sync" // asks the others to announce their last save
	msgClear       = "clear"        // the storage was cleared
)

// message is what a Peer sends, as JSON:
//
//	{"type":"snapshot","tabId":"…","payload":{"revision":"42","epoch":"k7Qx"}}
//
// "tabId" is the sender's id (the name is kept for wire compatibility).
type message struct {
	Type    string  `json:"type"`
	From    string  `json:"tabId"`
	Payload *notice `json:"payload,omitempty"`
}

// notice names a saved snapshot.
type notice struct {
	Revision statesync.Revision `json:"revision"`
	Epoch    string             `json:"epoch,omitempty"`
}

// decodeMessage decodes and validates a message: a known type, a
// non-empty sender id, and for a snapshot a payload with a canonical
// revision. Anything else is an error wrapping [ErrInvalidMessage].
func decodeMessage(b []byte) (message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return message{}, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	switch {
	case m.From == "":
		return message{}, fmt.Errorf("%w: no tabId", ErrInvalidMessage)
	case m.Type == msgSnapshot && m.Payload == nil:
		return message{}, fmt.Errorf("%w: snapshot message without payload", ErrInvalidMessage)
	case m.Type != msgSnapshot && m.Type != msgRequestSync && m.Type != msgClear:
		return message{}, fmt.Errorf("%w: unknown type %q", ErrInvalidMessage, m.Type)
	}
	return m, nil
}

// newID returns a random UUIDv4.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ChannelName returns the conventional channel of a topic,
// "state-sync:<topic>".
func ChannelName(topic string) string { return "state-sync:" + topic }

// Options configures a [Peer]. The zero value (or nil) receives and
// announces.
type Options struct {
	// NoReceive ignores every incoming message.
	NoReceive bool
	// NoBroadcast announces no save; RequestSync and Clear still send.
	NoBroadcast bool
	// AnswerSyncRequests answers another process's RequestSync by
	// announcing the last snapshot saved through this Peer's Persister.
	AnswerSyncRequests bool
	// OnClear, if set, is called when another process announces a clear,
	// after the Persister reloaded (which drops its pending save if the
	// storage is empty).
	OnClear func()
	// OnError receives malformed messages ([ErrInvalidMessage]) and send
	// errors, which are otherwise dropped. Load errors of the records that
	// others announce go to the Persister's OnError (Op [persist.OpReload]).
	OnError func(error)
}

// A Peer connects a [persist.Persister] to the other processes that share
// its storage, over a channel of a [Bus]: after each save it announces
// the saved revision and epoch (never the data); when another process
// announces a save or a clear, it calls [persist.Persister.Reload], which
// reads the shared storage, checks the record as a load does, and applies
// it only if it is newer. Announcements are coalesced: one reload runs at
// a time, and notices that come meanwhile cause one more.
//
// A Peer has a random id (a UUIDv4) and never receives its own messages.
// It is safe for concurrent use.
type Peer struct {
	p       *persist.Persister
	bus     Bus
	channel string
	opts    Options
	id      string
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the reloading goroutine

	mu        sync.Mutex // protects the fields below
	closed    bool
	unsub     func()
	stopSave  func()
	last      *notice // the last save announced
	want      bool    // a reload is wanted
	clear     bool    // ... after a clear
	reloading bool
}

var _ io.Closer = (*Peer)(nil)

// Join connects p to the other processes of channel on bus (see
// [ChannelName]). It returns an error if bus or p is nil or the
// subscription fails; then p works alone.
func Join(p *persist.Persister, bus Bus, channel string, opts *Options) (*Peer, error) {
	if p == nil || bus == nil {
		return nil, errors.New("procsync: Join needs a Persister and a Bus")
	}
	x := &Peer{p: p, bus: bus, channel: channel, id: newID()}
	if opts != nil {
		x.opts = *opts
	}
	x.ctx, x.cancel = context.WithCancel(context.Background())
	unsub, err := bus.Subscribe(channel, x.receive)
	if err != nil {
		x.cancel()
		return nil, fmt.Errorf("procsync: channel %q unavailable: %w", channel, err)
	}
	x.mu.Lock()
	x.unsub = unsub
	x.mu.Unlock()
	stop := p.AfterSave(func(m persist.Metadata) {
		n := notice{Revision: m.Revision, Epoch: m.Epoch}
		x.mu.Lock()
		x.last = &n
		x.mu.Unlock()
		if !x.opts.NoBroadcast {
			x.send(x.ctx, message{Type: msgSnapshot, Payload: &n})
		}
	})
	x.mu.Lock()
	x.stopSave = stop
	x.mu.Unlock()
	return x, nil
}

// ID returns the Peer's id, a random UUIDv4, sent with its messages.
func (x *Peer) ID() string { return x.id }

func (x *Peer) receive(b []byte) {
	x.mu.Lock()
	off := x.closed
	x.mu.Unlock()
	if off || x.opts.NoReceive {
		return
	}
	m, err := decodeMessage(b)
	if err != nil {
		x.reportErr(err)
		return
	}
	if m.From == x.id {
		return // our own
	}
	switch m.Type {
	case msgSnapshot:
		x.wake(false)
	case msgClear:
		x.wake(true)
	case msgRequestSync:
		if !x.opts.AnswerSyncRequests {
			return
		}
		x.mu.Lock()
		last := x.last
		x.mu.Unlock()
		if last != nil {
			n := *last
			x.send(x.ctx, message{Type: msgSnapshot, Payload: &n})
		}
	}
}

// wake asks for a reload, starting the reloading goroutine if none runs.
func (x *Peer) wake(clear bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	x.want = true
	x.clear = x.clear || clear
	if !x.reloading {
		x.reloading = true
		x.wg.Add(1)
		go x.reloadLoop()
	}
}

func (x *Peer) reloadLoop() {
	defer x.wg.Done()
	for {
		x.mu.Lock()
		if !x.want || x.closed {
			x.reloading = false
			x.mu.Unlock()
			return
		}
		clear := x.clear
		x.want, x.clear = false, false
		x.mu.Unlock()
		_ = x.p.Reload(x.ctx) // errors went to the Persister's OnError
		if clear && x.opts.OnClear != nil {
			func() {
				defer func() { _ = recover() }()
				x.opts.OnClear()
			}()
		}
	}
}

func (x *Peer) reportErr(err error) {
	if x.opts.OnError == nil {
		return
	}
	defer func() { _ = recover() }()
	x.opts.OnError(err)
}

func (x *Peer) send(ctx context.Context, m message) {
	x.mu.Lock()
	off := x.closed
	x.mu.Unlock()
	if off {
		return
	}
	m.From = x.id
	b, _ := json.Marshal(m)
	if err := x.bus.Publish(ctx, x.channel, b); err != nil {
		x.reportErr(fmt.Errorf("procsync: send on %q: %w", x.channel, err))
	}
}

// RequestSync asks the other processes of the channel to announce their
// last saved snapshot (those with AnswerSyncRequests do).
func (x *Peer) RequestSync(ctx context.Context) {
	x.send(ctx, message{Type: msgRequestSync})
}

// Clear clears the Persister's storage ([persist.Persister.Clear]) and
// tells the other processes, which drop their pending saves. It returns
// the clear error.
func (x *Peer) Clear(ctx context.Context) error {
	if err := x.p.Clear(ctx); err != nil {
		return err
	}
	x.send(ctx, message{Type: msgClear})
	return nil
}

// Clear clears storage if it is a [persist.Clearer] (otherwise it does
// nothing) and tells the processes of channel on bus, without a
// Persister. It returns the clear error.
func Clear(ctx context.Context, storage persist.Storage, bus Bus, channel string) error {
	if c, ok := storage.(persist.Clearer); ok {
		if err := c.Clear(ctx); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(message{Type: msgClear, From: newID()})
	return bus.Publish(ctx, channel, b)
}

// Close leaves the channel: nothing more is received or announced, and
// the reload in progress is cancelled and waited for. It does not close
// the Persister or the Bus. Close is idempotent and returns nil.
func (x *Peer) Close() error {
	x.mu.Lock()
	unsub, stop := x.unsub, x.stopSave
	x.unsub, x.stopSave, x.closed = nil, nil, true
	x.mu.Unlock()
	if unsub != nil {
		unsub()
	}
	if stop != nil {
		stop()
	}
	x.cancel()
	x.wg.Wait()
	return nil
}
