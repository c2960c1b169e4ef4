// Package e2e is the multi-window end-to-end harness of statesync. A [Bus]
// plays a backend that holds one topic (a revision and its data) and talks to
// several "windows" over a simulated IPC channel; each window is a
// [statesync.Consumer] wired to the Bus the way a user wires a transport:
// through a [statesync.Subscriber], a [statesync.Provider] and a
// [statesync.Applier].
//
// # Model
//
// The store revision starts at 0 and grows by one per [Bus.Mutate] or
// [Bus.MutateFrom], which broadcast {topic, revision, epoch, sourceId} to
// every subscribed handler. Faults are not the Bus's own: every delivery and
// every call to a window's default provider goes through one
// [statesynctest.Chaos] per Bus, configured by [BusConfig.Faults] (drops,
// duplicates, reordering, random delays, garbage, failing and stalling
// calls). Without faults delivery is synchronous; [BusConfig.Async] or a
// positive Faults.MaxDelay delivers on goroutines of the Chaos. A window's
// provider fails while its failCount is positive, then, serialised by a
// mutex when [BusConfig.MutexContention] is set, waits its IPC delay, reads
// the revision and data together and returns a fresh JSON encoding of the
// data (or the store's shared one with [BusConfig.ShareSnapshots]), passed
// through the window's optional interceptor.
//
// # Randomness and time
//
// The Chaos's seed ([BusConfig.Faults].Seed, or the environment variable
// STATESYNC_CHAOS_SEED, which overrides it) is logged, and also seeds the
// generator behind [Bus.Float64] and [Bus.Between]. Fault decisions depend
// on the seed and the event, not on goroutine scheduling (see
// [statesynctest.Chaos]). All delays use the time package, so under
// testing/synctest they run on the bubble's fake clock: a Bus and its
// windows must be created inside the bubble that uses them.
//
// # Goroutines and invariants
//
// Delayed deliveries run on goroutines of the Chaos. [Bus.Close], which
// [NewBus] registers with the test's Cleanup, closes the Chaos (dropping
// what it holds back and waiting for its goroutines), stops every window and waits for its goroutines, then
// checks each window's applied history: revisions strictly increase within
// an epoch and an epoch once left never comes back, each applied
// snapshot carries the data the store held at that revision, and nothing was
// applied after the window's Stop returned.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/sleep"
	"github.com/statesync-go/statesync/statesynctest"
)

// Defaults of the harness.
const (
	DefaultTopic              = "test"
	DefaultIPCDelay           = time.Millisecond
	DefaultConvergenceTimeout = 5 * time.Second
	// PollInterval is how often WaitForConvergence looks at the windows.
	PollInterval = 5 * time.Millisecond
)

// ErrSimulated is wrapped by the errors of a provider whose failCount is
// positive.
var ErrSimulated = errors.New("e2e: simulated provider failure")

// TB is the part of testing.TB (and of *rapid.T) that the harness uses.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// BusConfig configures a [Bus]. The zero value gives the defaults: topic
// "test", 1 ms IPC delay, synchronous delivery, no mutex, no faults,
// snapshots serialised per call.
type BusConfig struct {
	// Topic is the bus's topic; "" means "test".
	Topic string
	// Epoch is the store's epoch at the start; "" means none.
	Epoch string
	// IPCDelay is the default time a provider call takes; zero means 1 ms,
	// a negative value means no delay.
	IPCDelay time.Duration
	// Async delivers each event on a goroutine, without delay ("next
	// tick"). A positive Faults.MaxDelay takes precedence.
	Async bool
	// MutexContention, if positive, serialises provider calls and adds this
	// delay to each.
	MutexContention time.Duration
	// ShareSnapshots makes providers return the store's own encoding of the
	// data to every window instead of a fresh JSON encoding per call.
	ShareSnapshots bool
	// Faults are injected by the bus's [statesynctest.Chaos] into every
	// delivery and every call to a default provider. Faults.Logf, if nil,
	// is the test's Logf.
	Faults statesynctest.ChaosOptions
}

// WindowConfig configures one window of a [Bus].
type WindowConfig[T any] struct {
	// IPCDelay overrides the bus's IPC delay for this window's provider;
	// nil means the bus's, zero or negative means none.
	IPCDelay *time.Duration
	// FailCount is the number of provider calls that fail (with
	// ErrSimulated, before any delay) before calls succeed again.
	FailCount int
	// Interceptor, if set, rewrites each snapshot the provider returns.
	Interceptor func(statesync.Snapshot) statesync.Snapshot
	// OnApply, if set, runs synchronously inside the window's applier after
	// the snapshot is recorded. It may mutate the bus, whose invalidation
	// then re-enters the engine.
	OnApply func(Applied[T])
	// Provider, Applier and Subscriber replace the window's defaults.
	// With a custom Applier the window records no history.
	// Calls to the provider are counted in every case.
	Provider   statesync.Provider
	Applier    statesync.Applier
	Subscriber statesync.Subscriber
	// Options are passed to NewConsumer; the window's error collector is
	// chained before Options.OnError.
	Options statesync.ConsumerOptions
}

// WindowPatch changes a window's provider settings at run time
// ([Bus.ConfigureWindow]). Nil fields are left alone.
type WindowPatch struct {
	IPCDelay  *time.Duration
	FailCount *int
}

// Applied is one snapshot a window applied.
type Applied[T any] struct {
	Revision statesync.Revision
	Epoch    string
	// Raw is the snapshot's Data exactly as the applier received it.
	Raw json.RawMessage
	// Data is Raw decoded into a new T.
	Data T
}

// A Bus is a simulated backend for one topic and the windows that follow it.
// Create it with [NewBus]; its methods are safe for concurrent use, and
// Mutate may be called from inside a window's applier.
type Bus[T any] struct {
	tb    TB
	cfg   BusConfig
	topic string
	chaos *statesynctest.Chaos
	sem   chan struct{} // the provider mutex, nil without contention
	// inHook counts the OnApply calls in progress, on every window: a
	// window's Stop called from one (from inside an applier) does not wait.
	inHook atomic.Int64

	mu       sync.Mutex // protects the fields below
	rng      *rand.Rand
	closed   bool
	rev      statesync.Revision
	epoch    string
	data     T
	enc      json.RawMessage                 // json of data, shared
	history  map[storeKey]json.RawMessage    // every state the store held
	windows  []*Window[T]                    // live windows, in creation order
	all      []*Window[T]                    // every window ever made
	settings map[string]*providerState       // by window id
	subs     map[string][]*registration      // handlers by window id
	subOrder []string                        // window ids in order of first subscription
	inner    []statesync.InvalidationHandler // the Chaos's handlers, in subscription order
}

type storeKey struct {
	epoch string
	rev   statesync.Revision
}

type providerState struct {
	delay     *time.Duration
	failCount int
	intercept func(statesync.Snapshot) statesync.Snapshot
}

// A registration is one handler subscribed through [Bus.Subscriber].
// Broadcasts reach it through the Chaos; BroadcastToAll directly.
type registration struct {
	h      statesync.InvalidationHandler
	active atomic.Bool
	unsub  func() // the Chaos's
}

func (r *registration) Invalidate(inv statesync.Invalidation) {
	if r.active.Load() {
		r.h.Invalidate(inv)
	}
}

func (r *registration) InvalidateRaw(payload []byte) {
	if r.active.Load() {
		r.h.InvalidateRaw(payload)
	}
}

// windowKey is the context key of the window id that [Bus.Provider] passes
// through the Chaos to the inner provider.
type windowKey struct{}

// NewBus returns a Bus holding initial at revision 0. It fails t if initial
// cannot be encoded as JSON or STATESYNC_CHAOS_SEED is not an integer, logs
// the seed, and registers [Bus.Close] with t.Cleanup. cfg may be nil.
func NewBus[T any](t TB, initial T, cfg *BusConfig) *Bus[T] {
	t.Helper()
	b := &Bus[T]{tb: t, settings: map[string]*providerState{},
		subs: map[string][]*registration{}, history: map[storeKey]json.RawMessage{}}
	if cfg != nil {
		b.cfg = *cfg
	}
	b.topic = b.cfg.Topic
	if b.topic == "" {
		b.topic = DefaultTopic
	}
	if b.cfg.IPCDelay == 0 {
		b.cfg.IPCDelay = DefaultIPCDelay
	}
	if b.cfg.MutexContention > 0 {
		b.sem = make(chan struct{}, 1)
	}
	faults := b.cfg.Faults
	if faults.MaxDelay <= 0 && b.cfg.Async {
		faults.MaxDelay = time.Nanosecond // on a goroutine, after no delay
	}
	if faults.Logf == nil {
		faults.Logf = t.Logf
	}
	b.chaos = newChaos(t, statesync.SubscriberFunc(b.subscribeInner), statesync.ProviderFunc(b.provideInner), faults)
	seed := uint64(b.chaos.Seed())
	b.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b.epoch = b.cfg.Epoch
	b.data = initial
	var ok bool
	if b.enc, ok = b.encode(initial); !ok {
		t.Fatalf("e2e: NewBus: initial data cannot be encoded")
	}
	b.history[storeKey{b.epoch, 0}] = b.enc
	t.Cleanup(b.Close)
	return b
}

// newChaos is [statesynctest.NewChaos] that fails t instead of panicking on
// a bad STATESYNC_CHAOS_SEED.
func newChaos(t TB, sub statesync.Subscriber, prov statesync.Provider, opts statesynctest.ChaosOptions) (c *statesynctest.Chaos) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("e2e: %v", r)
		}
	}()
	return statesynctest.NewChaos(sub, prov, opts)
}

// encode returns the JSON encoding of v. A value that cannot be encoded is
// a mistake of the test: it is reported with Errorf (Fatalf is not allowed
// off the test's goroutine, and Mutate may run inside an applier) and ok is
// false.
func (b *Bus[T]) encode(v T) (enc json.RawMessage, ok bool) {
	enc, err := json.Marshal(v)
	if err != nil {
		b.tb.Errorf("e2e: cannot encode %v: %v", v, err)
		return nil, false
	}
	return enc, true
}

// Topic returns the bus's topic.
func (b *Bus[T]) Topic() string { return b.topic }

// Seed returns the seed of the bus's Chaos and random generator.
func (b *Bus[T]) Seed() int64 { return b.chaos.Seed() }

// Chaos returns the bus's fault injector, to read its Stats, Flush what it
// holds back or Quiesce it.
func (b *Bus[T]) Chaos() *statesynctest.Chaos { return b.chaos }

// Revision returns the store revision.
func (b *Bus[T]) Revision() statesync.Revision {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rev
}

// Epoch returns the store epoch.
func (b *Bus[T]) Epoch() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epoch
}

// Data returns the store data (the value last given to Mutate, Set or
// Restart; do not modify it).
func (b *Bus[T]) Data() T {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.data
}

// Snapshot returns the store's revision, epoch and data, read together. Its
// Data is the store's own encoding, shared with every caller, so custom
// providers that return it hand every window the same bytes.
func (b *Bus[T]) Snapshot() statesync.Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return statesync.Snapshot{Revision: b.rev, Epoch: b.epoch, Data: b.enc}
}

// Mutate sets the data, increments the revision and broadcasts the change
// without a source id.
func (b *Bus[T]) Mutate(data T) { b.MutateFrom("", data) }

// MutateFrom sets the data, increments the revision and broadcasts
// {topic, revision, epoch, sourceId: id} through the Chaos.
func (b *Bus[T]) MutateFrom(id string, data T) {
	enc, ok := b.encode(data)
	if !ok {
		return
	}
	b.mu.Lock()
	b.rev++
	b.data, b.enc = data, enc
	b.history[storeKey{b.epoch, b.rev}] = enc
	inv := statesync.Invalidation{Topic: b.topic, Revision: b.rev, Epoch: b.epoch, SourceID: id}
	b.mu.Unlock()
	b.broadcast(inv)
}

// Set replaces the revision and data without broadcasting, as a restore
// from backup would. The revision must not go back within the
// epoch.
func (b *Bus[T]) Set(rev statesync.Revision, data T) {
	enc, ok := b.encode(data)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rev, b.data, b.enc = rev, data, enc
	b.history[storeKey{b.epoch, rev}] = enc
}

// Restart simulates a source that lost continuity: it adopts a new epoch
// (which must never have been used), the revision rev (usually lower than
// before) and data, and broadcasts {topic, rev, epoch} through the Chaos.
func (b *Bus[T]) Restart(epoch string, rev statesync.Revision, data T) {
	enc, ok := b.encode(data)
	if !ok {
		return
	}
	b.mu.Lock()
	b.epoch, b.rev, b.data, b.enc = epoch, rev, data, enc
	b.history[storeKey{epoch, rev}] = enc
	inv := statesync.Invalidation{Topic: b.topic, Revision: rev, Epoch: epoch}
	b.mu.Unlock()
	b.broadcast(inv)
}

// broadcast hands inv to the Chaos's handlers, which pass it on to the
// windows' handlers with the configured faults.
func (b *Bus[T]) broadcast(inv statesync.Invalidation) {
	b.mu.Lock()
	hs := slices.Clone(b.inner)
	b.mu.Unlock()
	for _, h := range hs {
		h.Invalidate(inv)
	}
}

// subscribeInner is the subscriber the Chaos wraps: h is the Chaos's
// handler for one subscription made through [Bus.Subscriber].
func (b *Bus[T]) subscribeInner(_ context.Context, _ string, h statesync.InvalidationHandler) (func(), error) {
	b.mu.Lock()
	b.inner = append(b.inner, h)
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			i := slices.Index(b.inner, h)
			b.inner = slices.Delete(b.inner, i, i+1)
		})
	}, nil
}

// BroadcastToAll synchronously delivers {topic, revision, epoch} without a
// source id to every handler, bypassing the Chaos.
func (b *Bus[T]) BroadcastToAll() {
	b.mu.Lock()
	var regs []*registration
	for _, id := range b.subOrder {
		regs = append(regs, b.subs[id]...)
	}
	inv := statesync.Invalidation{Topic: b.topic, Revision: b.rev, Epoch: b.epoch}
	b.mu.Unlock()
	for _, r := range regs {
		r.Invalidate(inv)
	}
}

// Subscriber returns the default subscriber of window id: handlers it
// registers receive the bus's broadcasts (through the Chaos) until their
// unsubscribe function is called or the window is destroyed. Custom
// subscribers may wrap it.
func (b *Bus[T]) Subscriber(id string) statesync.Subscriber {
	return statesync.SubscriberFunc(func(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
		if topic != b.topic {
			return nil, fmt.Errorf("e2e: window %s subscribed to %q on the bus of %q", id, topic, b.topic)
		}
		r := &registration{h: h}
		r.active.Store(true)
		unsub, err := b.chaos.Subscribe(ctx, topic, r)
		if err != nil {
			return nil, err
		}
		r.unsub = unsub
		b.mu.Lock()
		if _, ok := b.subs[id]; !ok {
			b.subOrder = append(b.subOrder, id)
		}
		b.subs[id] = append(b.subs[id], r)
		b.mu.Unlock()
		var once sync.Once
		return func() {
			once.Do(func() {
				r.active.Store(false)
				unsub()
				b.mu.Lock()
				defer b.mu.Unlock()
				if rs, ok := b.subs[id]; ok {
					b.subs[id] = slices.DeleteFunc(rs, func(x *registration) bool { return x == r })
				}
			})
		}, nil
	})
}

// Subscribers returns the number of handlers subscribed for window id.
func (b *Bus[T]) Subscribers(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs[id])
}

// Provider returns the default provider of window id: calls go through the
// Chaos, then read the window's settings (failCount, IPC delay,
// interceptor).
func (b *Bus[T]) Provider(id string) statesync.Provider {
	return statesync.ProviderFunc(func(ctx context.Context, topic string) (statesync.Snapshot, error) {
		return b.chaos.Snapshot(context.WithValue(ctx, windowKey{}, id), topic)
	})
}

// provideInner is the provider the Chaos wraps: the window is named by the
// context.
func (b *Bus[T]) provideInner(ctx context.Context, _ string) (statesync.Snapshot, error) {
	id, _ := ctx.Value(windowKey{}).(string)
	b.mu.Lock()
	ps := b.settings[id]
	delay := b.cfg.IPCDelay
	var intercept func(statesync.Snapshot) statesync.Snapshot
	if ps != nil {
		if ps.failCount > 0 {
			ps.failCount--
			b.mu.Unlock()
			return statesync.Snapshot{}, fmt.Errorf("%w for window %s", ErrSimulated, id)
		}
		if ps.delay != nil {
			delay = *ps.delay
		}
		intercept = ps.intercept
	}
	b.mu.Unlock()

	if b.sem != nil {
		select {
		case b.sem <- struct{}{}:
		case <-ctx.Done():
			return statesync.Snapshot{}, ctx.Err()
		}
		defer func() { <-b.sem }()
		if err := sleep.For(ctx, b.cfg.MutexContention); err != nil {
			return statesync.Snapshot{}, err
		}
	}
	if err := sleep.For(ctx, delay); err != nil {
		return statesync.Snapshot{}, err
	}
	b.mu.Lock()
	snap := statesync.Snapshot{Revision: b.rev, Epoch: b.epoch, Data: b.enc}
	data := b.data
	b.mu.Unlock()
	if !b.cfg.ShareSnapshots {
		// A fresh serialisation per call, as IPC would make.
		enc, err := json.Marshal(data)
		if err != nil {
			return statesync.Snapshot{}, err
		}
		snap.Data = enc
	}
	if intercept != nil {
		snap = intercept(snap)
	}
	return snap, nil
}

// ConfigureWindow changes the provider settings of window id at run time.
func (b *Bus[T]) ConfigureWindow(id string, p WindowPatch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ps := b.settings[id]
	if ps == nil {
		ps = &providerState{}
		b.settings[id] = ps
	}
	if p.IPCDelay != nil {
		ps.delay = new(*p.IPCDelay)
	}
	if p.FailCount != nil {
		ps.failCount = *p.FailCount
	}
}

// A Window is one consumer of the bus: an unstarted [statesync.Consumer]
// plus what the harness records about it. Start it with Start (the
// Consumer's).
type Window[T any] struct {
	*statesync.Consumer
	ID string

	bus       *Bus[T]
	calls     atomic.Int64
	checkData bool // history is checked against the store (no interceptor)

	mu        sync.Mutex // protects the fields below
	applied   []Applied[T]
	errs      []*statesync.Error
	onApply   func(Applied[T])
	stopped   bool
	lateApply int // applies begun after Stop returned
	running   int // applies in progress
	runAtStop int // Stop calls from outside any applier that returned while an apply ran
}

// NewWindow creates and registers window id (not started). It fails the
// test if a live window has that id or NewConsumer fails. cfg may be nil.
func (b *Bus[T]) NewWindow(id string, cfg *WindowConfig[T]) *Window[T] {
	b.tb.Helper()
	var c WindowConfig[T]
	if cfg != nil {
		c = *cfg
	}
	w := &Window[T]{ID: id, bus: b, onApply: c.OnApply, checkData: c.Interceptor == nil}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.tb.Fatalf("e2e: NewWindow(%q) on a closed bus", id)
	}
	for _, x := range b.windows {
		if x.ID == id {
			b.mu.Unlock()
			b.tb.Fatalf("e2e: NewWindow(%q): a live window has that id", id)
		}
	}
	ps := &providerState{failCount: c.FailCount, intercept: c.Interceptor}
	if c.IPCDelay != nil {
		ps.delay = new(*c.IPCDelay)
	}
	b.settings[id] = ps
	b.mu.Unlock()

	sub := c.Subscriber
	if sub == nil {
		sub = b.Subscriber(id)
	}
	prov := c.Provider
	if prov == nil {
		prov = b.Provider(id)
	}
	counted := statesync.ProviderFunc(func(ctx context.Context, topic string) (statesync.Snapshot, error) {
		w.calls.Add(1)
		return prov.Snapshot(ctx, topic)
	})
	app := c.Applier
	if app == nil {
		app = statesync.ApplierFunc(w.apply)
	}
	opts := c.Options
	userOnError := opts.OnError
	opts.OnError = func(e *statesync.Error) {
		w.mu.Lock()
		w.errs = append(w.errs, e)
		w.mu.Unlock()
		if userOnError != nil {
			userOnError(e)
		}
	}
	cons, err := statesync.NewConsumer(b.topic, sub, counted, app, &opts)
	if err != nil {
		b.tb.Fatalf("e2e: NewWindow(%q): %v", id, err)
	}
	w.Consumer = cons
	b.mu.Lock()
	b.windows = append(b.windows, w)
	b.all = append(b.all, w)
	b.mu.Unlock()
	return w
}

func (w *Window[T]) apply(ctx context.Context, s statesync.Snapshot) error {
	var v T
	if err := json.Unmarshal(s.Data, &v); err != nil {
		return fmt.Errorf("e2e: window %s cannot decode snapshot %d: %w", w.ID, s.Revision, err)
	}
	a := Applied[T]{Revision: s.Revision, Epoch: s.Epoch, Raw: s.Data, Data: v}
	w.mu.Lock()
	if w.stopped {
		w.lateApply++
	}
	w.running++
	w.applied = append(w.applied, a)
	hook := w.onApply
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running--
		w.mu.Unlock()
	}()
	if hook != nil {
		w.bus.inHook.Add(1)
		defer w.bus.inHook.Add(-1)
		hook(a)
	}
	return nil
}

// Stop stops the window's consumer and remembers that it did, so that Close
// reports an apply begun afterwards, and an apply still running when Stop
// returned, unless Stop was called while an OnApply ran (possibly from
// inside it, where the engine's Stop does not wait). It is idempotent.
func (w *Window[T]) Stop() {
	w.Consumer.Stop()
	w.mu.Lock()
	w.stopped = true
	if w.running > 0 && w.bus.inHook.Load() == 0 {
		w.runAtStop++
	}
	w.mu.Unlock()
}

// Applied returns a copy of the window's applied history.
func (w *Window[T]) Applied() []Applied[T] {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.applied)
}

// Applies returns the number of snapshots the window applied.
func (w *Window[T]) Applies() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.applied)
}

// Last returns the last applied snapshot; ok is false if there is none.
func (w *Window[T]) Last() (a Applied[T], ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.applied) == 0 {
		return a, false
	}
	return w.applied[len(w.applied)-1], true
}

// Errors returns a copy of the errors the window's consumer reported.
func (w *Window[T]) Errors() []*statesync.Error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.errs)
}

// ProviderCalls returns the number of calls made to the window's provider
// (failed ones included) since creation or the last ResetProviderCalls.
func (w *Window[T]) ProviderCalls() int { return int(w.calls.Load()) }

// ResetProviderCalls sets the provider call count to zero.
func (w *Window[T]) ResetProviderCalls() { w.calls.Store(0) }

// Window returns the live window id, or nil.
func (b *Bus[T]) Window(id string) *Window[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.windows {
		if w.ID == id {
			return w
		}
	}
	return nil
}

// Windows returns the live windows in creation order.
func (b *Bus[T]) Windows() []*Window[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.windows)
}

// AllWindows returns every window the bus made, destroyed ones included.
func (b *Bus[T]) AllWindows() []*Window[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.all)
}

// DestroyWindow stops window id, removes its handlers and unregisters it,
// so that convergence no longer waits for it. It does nothing
// if there is no such live window.
func (b *Bus[T]) DestroyWindow(id string) {
	w := b.Window(id)
	if w == nil {
		return
	}
	w.Stop()
	b.mu.Lock()
	b.windows = slices.DeleteFunc(b.windows, func(x *Window[T]) bool { return x == w })
	regs := b.subs[id]
	delete(b.subs, id)
	b.subOrder = slices.DeleteFunc(b.subOrder, func(x string) bool { return x == id })
	b.mu.Unlock()
	for _, r := range regs {
		r.active.Store(false)
		r.unsub() // takes b.mu
	}
}

// Converged reports whether every live window's revision and epoch equal
// the store's.
func (b *Bus[T]) Converged() bool {
	b.mu.Lock()
	rev, epoch, ws := b.rev, b.epoch, slices.Clone(b.windows)
	b.mu.Unlock()
	for _, w := range ws {
		if w.Revision() != rev || w.Epoch() != epoch {
			return false
		}
	}
	return true
}

// Converge waits until [Bus.Converged], looking every 5 ms, for at most
// timeout (0 means 5 s). On timeout it returns an error giving the store's
// revision and each window's.
func (b *Bus[T]) Converge(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultConvergenceTimeout
	}
	start := time.Now()
	for {
		if b.Converged() {
			return nil
		}
		if time.Since(start) >= timeout {
			break
		}
		time.Sleep(PollInterval)
	}
	b.mu.Lock()
	rev, epoch, ws := b.rev, b.epoch, slices.Clone(b.windows)
	b.mu.Unlock()
	states := make([]string, 0, len(ws))
	for _, w := range ws {
		s := fmt.Sprintf("%s=%d", w.ID, w.Revision())
		if w.Epoch() != epoch {
			s += fmt.Sprintf("(epoch %q)", w.Epoch())
		}
		states = append(states, s)
	}
	return fmt.Errorf("e2e: no convergence after %v: store=%d (epoch %q), windows: %s",
		timeout, rev, epoch, strings.Join(states, ", "))
}

// WaitForConvergence is [Bus.Converge] that fails the test on timeout. Call
// it from the test's goroutine.
func (b *Bus[T]) WaitForConvergence(timeout time.Duration) {
	b.tb.Helper()
	if err := b.Converge(timeout); err != nil {
		b.tb.Fatalf("%v", err)
	}
}

// Float64 returns a number in [0, 1) from the bus's generator.
func (b *Bus[T]) Float64() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rng.Float64()
}

// Between returns a duration in [lo, hi) from the bus's generator.
func (b *Bus[T]) Between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(b.Float64()*float64(hi-lo))
}

// Close closes the Chaos, which drops pending deliveries and waits for
// their goroutines, stops
// every window and waits for its consumer's goroutines, then reports any
// broken invariant of the windows' histories with Errorf. It is idempotent.
// A provider that never returns makes Close wait forever.
func (b *Bus[T]) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	all := slices.Clone(b.all)
	b.mu.Unlock()
	_ = b.chaos.Close()
	for _, w := range all {
		w.Stop()
	}
	for _, w := range all {
		_ = w.Consumer.Wait(context.Background())
	}
	for _, w := range all {
		if err := b.CheckWindow(w); err != nil {
			b.tb.Errorf("%v", err)
		}
	}
}

// CheckWindow checks the history of w: [CheckApplied], each applied
// snapshot's data equals the store's at its epoch and revision (unless w
// has an interceptor), and, as Stop guarantees (B-LIFE-15), no apply began
// after Stop returned and none was running when a Stop called from outside
// the applier returned.
func (b *Bus[T]) CheckWindow(w *Window[T]) error {
	applied := w.Applied()
	w.mu.Lock()
	late, runAtStop := w.lateApply, w.runAtStop
	w.mu.Unlock()
	var errs []error
	if late > 0 {
		errs = append(errs, fmt.Errorf("e2e: window %s applied %d snapshot(s) after Stop returned", w.ID, late))
	}
	if runAtStop > 0 {
		errs = append(errs, fmt.Errorf("e2e: window %s: Stop returned %d time(s) while the applier ran", w.ID, runAtStop))
	}
	if err := CheckApplied(applied); err != nil {
		errs = append(errs, fmt.Errorf("e2e: window %s: %w", w.ID, err))
	}
	if w.checkData {
		b.mu.Lock()
		for _, a := range applied {
			want, ok := b.history[storeKey{a.Epoch, a.Revision}]
			if !ok {
				errs = append(errs, fmt.Errorf("e2e: window %s applied revision %d (epoch %q), which the store never had", w.ID, a.Revision, a.Epoch))
			} else if !bytes.Equal(a.Raw, want) {
				errs = append(errs, fmt.Errorf("e2e: window %s applied %s at revision %d (epoch %q); the store had %s", w.ID, a.Raw, a.Revision, a.Epoch, want))
			}
		}
		b.mu.Unlock()
	}
	return errors.Join(errs...)
}

// CheckApplied checks that an applied history never goes back: within an
// epoch the revisions strictly increase, and an epoch once left never
// comes back.
func CheckApplied[T any](applied []Applied[T]) error {
	left := map[string]bool{}
	for i := 1; i < len(applied); i++ {
		prev, cur := applied[i-1], applied[i]
		switch {
		case cur.Epoch == prev.Epoch:
			if cur.Revision <= prev.Revision {
				return fmt.Errorf("applied revision %d after %d in epoch %q (history %s)", cur.Revision, prev.Revision, cur.Epoch, FormatHistory(applied))
			}
		default:
			left[prev.Epoch] = true
			if left[cur.Epoch] {
				return fmt.Errorf("went back to epoch %q at revision %d (history %s)", cur.Epoch, cur.Revision, FormatHistory(applied))
			}
		}
	}
	return nil
}

// FormatHistory writes the revisions (and epochs) of an applied history.
func FormatHistory[T any](applied []Applied[T]) string {
	parts := make([]string, len(applied))
	for i, a := range applied {
		parts[i] = strconv.FormatUint(uint64(a.Revision), 10)
		if a.Epoch != "" {
			parts[i] = a.Epoch + ":" + parts[i]
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Revisions returns the revisions of an applied history.
func Revisions[T any](applied []Applied[T]) []statesync.Revision {
	revs := make([]statesync.Revision, len(applied))
	for i, a := range applied {
		revs[i] = a.Revision
	}
	return revs
}
