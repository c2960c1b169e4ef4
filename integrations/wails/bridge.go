package wailssync

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// DefaultEvent is the event name on which a [Bridge] emits invalidations.
const DefaultEvent = "statesync:invalidation"

// An EmitFunc emits an event to the frontend. Wails' runtime.EventsEmit has
// this shape and can be passed as is.
type EmitFunc func(ctx context.Context, event string, data ...any)

// Options configures a [Bridge]. The zero value (or nil) gives the defaults.
type Options struct {
	// Event is the event name invalidations are emitted on. Empty means
	// [DefaultEvent].
	Event string

	// Context is passed to the EmitFunc. With Wails it must be the context
	// given to OnStartup; since that is known only later, it may be left
	// nil and set with [Bridge.Startup]. Until a context is known,
	// invalidations are kept (only the latest per topic) and emitted once
	// it is.
	Context context.Context
}

// InvalidationDTO is the JSON-ready form of an invalidation emitted to the
// frontend: {topic, revision, epoch?, sourceId?, timestampMs?}, the
// revision a canonical decimal string.
type InvalidationDTO struct {
	Topic       string `json:"topic"`
	Revision    string `json:"revision"`
	Epoch       string `json:"epoch,omitempty"`
	SourceID    string `json:"sourceId,omitempty"`
	TimestampMs int64  `json:"timestampMs,omitempty"`
}

// SnapshotDTO is the JSON-ready form of a snapshot returned to the
// frontend: {revision, epoch?, data}, the revision a canonical decimal
// string and data the raw JSON state ("null" for none).
type SnapshotDTO struct {
	Revision string          `json:"revision"`
	Epoch    string          `json:"epoch,omitempty"`
	Data     json.RawMessage `json:"data"`
}

func invalidationDTO(inv statesync.Invalidation) InvalidationDTO {
	return InvalidationDTO{
		Topic:       inv.Topic,
		Revision:    inv.Revision.String(),
		Epoch:       inv.Epoch,
		SourceID:    inv.SourceID,
		TimestampMs: inv.TimestampMs,
	}
}

func snapshotDTO(s statesync.Snapshot) SnapshotDTO {
	data := s.Data
	if data == nil {
		data = json.RawMessage("null")
	}
	return SnapshotDTO{Revision: s.Revision.String(), Epoch: s.Epoch, Data: data}
}

// A Bridge follows a [statesync.Source] for a Wails frontend: it emits each
// invalidation the Source commits, and its GetSnapshot, Put and Patch
// methods let the frontend read and write topics. Bind [Bridge.API], not
// the Bridge itself, so the frontend cannot call Close.
//
// Emission runs on a goroutine owned by the Bridge, never on the writer's
// goroutine, so a slow EmitFunc does not hold up writes. Invalidations are
// coalesced per topic while the EmitFunc is busy: the frontend sees the
// latest revision of each topic, perhaps not every intermediate one, which
// the protocol allows. Invalidations of different topics are
// emitted in the order their topics first became pending.
//
// A Bridge is safe for concurrent use. Close stops it.
type Bridge struct {
	src   *statesync.Source
	emit  EmitFunc
	event string

	base   context.Context // lifecycle context for bound methods; Close cancels it
	cancel context.CancelFunc
	stop   func() // stops watching src
	wake   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex // protects the fields below
	ctx     context.Context
	pending map[string]statesync.Invalidation
	order   []string
}

// NewBridge returns a Bridge that emits the invalidations of src through
// emit. It panics if src or emit is nil.
func NewBridge(src *statesync.Source, emit EmitFunc, opts *Options) *Bridge {
	if src == nil || emit == nil {
		panic("wailssync: NewBridge needs a source and an emit function")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Event == "" {
		o.Event = DefaultEvent
	}
	base, cancel := context.WithCancel(context.Background())
	b := &Bridge{
		src:     src,
		emit:    emit,
		event:   o.Event,
		base:    base,
		cancel:  cancel,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		ctx:     o.Context,
		pending: make(map[string]statesync.Invalidation),
	}
	b.wg.Go(b.run)
	stop, err := src.Watch(context.Background(), b.enqueue)
	if err != nil {
		// src is closed: it emits nothing more.
		stop = func() {}
	}
	b.stop = stop
	return b
}

// Event returns the event name the Bridge emits on.
func (b *Bridge) Event() string { return b.event }

// Startup sets the context passed to the EmitFunc and emits what is
// pending. Call it from Wails' OnStartup with the context given there.
func (b *Bridge) Startup(ctx context.Context) {
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	b.signal()
}

// enqueue runs on the Source's goroutine, after the write committed.
// It only records the invalidation and wakes run.
func (b *Bridge) enqueue(inv statesync.Invalidation) {
	b.mu.Lock()
	if _, ok := b.pending[inv.Topic]; !ok {
		b.order = append(b.order, inv.Topic)
	}
	b.pending[inv.Topic] = inv
	b.mu.Unlock()
	b.signal()
}

func (b *Bridge) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Bridge) run() {
	for {
		select {
		case <-b.done:
			return
		case <-b.wake:
		}
		for {
			b.mu.Lock()
			ctx := b.ctx
			if ctx == nil || len(b.order) == 0 {
				b.mu.Unlock()
				break
			}
			topic := b.order[0]
			b.order = b.order[1:]
			inv := b.pending[topic]
			delete(b.pending, topic)
			b.mu.Unlock()
			select {
			case <-b.done:
				return
			default:
			}
			b.emitOne(ctx, inv)
		}
	}
}

// emitOne calls the EmitFunc, recovering a panic so that one bad emit does
// not stop later ones.
func (b *Bridge) emitOne(ctx context.Context, inv statesync.Invalidation) {
	defer func() { _ = recover() }()
	b.emit(ctx, b.event, invalidationDTO(inv))
}

// Close stops following the Source, drops what is pending and waits for
// an emit under way to return. Bound methods fail with the context's error
// afterwards where the Source honours it. Close is idempotent.
func (b *Bridge) Close() error {
	b.once.Do(func() {
		b.stop()
		close(b.done)
		b.cancel()
		b.wg.Wait()
	})
	return nil
}

// GetSnapshot returns the snapshot of topic, its revision and data read
// together. Bind it for the frontend provider.
func (b *Bridge) GetSnapshot(topic string) (SnapshotDTO, error) {
	if err := b.base.Err(); err != nil {
		return SnapshotDTO{}, err
	}
	s, err := b.src.Snapshot(b.base, topic)
	if err != nil {
		return SnapshotDTO{}, err
	}
	return snapshotDTO(s), nil
}

// Put replaces the state of topic with data (any JSON value) and returns
// the new snapshot. The invalidation is emitted after the write commits.
func (b *Bridge) Put(topic string, data json.RawMessage) (SnapshotDTO, error) {
	if err := b.base.Err(); err != nil {
		return SnapshotDTO{}, err
	}
	s, err := b.src.Put(b.base, topic, data)
	if err != nil {
		return SnapshotDTO{}, err
	}
	return snapshotDTO(s), nil
}

// Patch applies the JSON merge patch (RFC 7396) patch to the state of topic
// and returns the new snapshot.
func (b *Bridge) Patch(topic string, patch json.RawMessage) (SnapshotDTO, error) {
	if err := b.base.Err(); err != nil {
		return SnapshotDTO{}, err
	}
	s, err := b.src.Update(b.base, topic, func(cur statesync.Snapshot) (json.RawMessage, error) {
		return httpsync.MergePatch(cur.Data, patch)
	})
	if err != nil {
		return SnapshotDTO{}, err
	}
	return snapshotDTO(s), nil
}

// API is the part of a [Bridge] to bind to the frontend: only the methods
// the frontend should call, without Startup, Close or Event (Wails binds
// every exported method of a bound struct). Make one with [Bridge.API].
type API struct{ b *Bridge }

// API returns the bindable methods of b: options.App.Bind: []any{b.API()}.
func (b *Bridge) API() *API { return &API{b: b} }

// GetSnapshot calls [Bridge.GetSnapshot].
func (a *API) GetSnapshot(topic string) (SnapshotDTO, error) { return a.b.GetSnapshot(topic) }

// Put calls [Bridge.Put].
func (a *API) Put(topic string, data json.RawMessage) (SnapshotDTO, error) {
	return a.b.Put(topic, data)
}

// Patch calls [Bridge.Patch].
func (a *API) Patch(topic string, patch json.RawMessage) (SnapshotDTO, error) {
	return a.b.Patch(topic, patch)
}
