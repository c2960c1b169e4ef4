package statesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ConsumerOptions configures a [Consumer]. The zero value (or nil) means no
// throttling, no retry, no timeout, no filter and no logging. Options are
// copied by [NewConsumer].
type ConsumerOptions struct {
	// Logger receives the engine's debug, warn and error records, with the
	// attributes component=statesync and topic. Nil discards them.
	Logger *slog.Logger

	// OnError is called once for each error the consumer reports, on the
	// goroutine that detected it and with no engine lock held, so it may call
	// Stop, Refresh or Revision; it is not called once Stop has begun, and
	// Stop waits for a call in progress (unless called from inside it).
	// A panic in OnError is recovered and logged.
	// Every report is also logged (at error level, scheduled retries at
	// warn), whether or not OnError is set. Reports
	// of scheduled retries (WillRetry) are the exception: the refresh they
	// belong to is still running and must not wait for OnError (which may
	// wait for a refresh), so they are delivered in order on a goroutine of
	// their own, normally during the retry's delay.
	OnError func(*Error)

	// ShouldRefresh, if set, is asked about each invalidation that passed
	// validation, the topic match and the revision gate; returning false
	// drops it. It is not consulted by Start, Refresh or Offer. A panic is
	// reported with PhaseInvalidation and the invalidation is dropped.
	// The usual use skips one's own writes: inv.SourceID != myID.
	ShouldRefresh func(inv Invalidation) bool

	// Throttle limits how often invalidations cause refreshes. Manual
	// Refresh calls are never throttled.
	Throttle Throttle

	// FetchTimeout bounds each provider call (each attempt, with Retry).
	// Zero means no timeout.
	FetchTimeout time.Duration

	// Retry, if set, retries failed provider calls inside one refresh. Each
	// scheduled retry is logged at warn level and reported to OnError with
	// WillRetry set; the final failure is reported as usual with Attempt and
	// WillRetry=false.
	Retry *RetryPolicy

	// InlineRefresh runs a refresh requested by an invalidation on the
	// delivering goroutine, when none is in flight, saving a goroutine
	// handoff: Invalidate then returns after the applier, which must be
	// quick. With a [SnapshotPeeker] provider (an httpsync.Client, a
	// memsync.Bus) only refreshes that need no I/O run inline; with any
	// other provider the fetch runs inline too. See "Where user code runs"
	// in docs/ARCHITECTURE.md.
	InlineRefresh bool
}

// The lifecycle of a Consumer: idle → starting → started (or back to idle
// if Start fails) → stopped. Stop may come from any state; stopped is final.
const (
	stateIdle int32 = iota
	stateStarting
	stateStarted
	stateStopped
)

// applied is what the consumer has applied. It is replaced, never mutated.
type applied struct {
	rev   Revision
	epoch string
	any   bool // something was applied
}

// A Consumer keeps one topic in sync: it listens for invalidations, pulls
// newer snapshots from its [Provider] and hands them to its [Applier], in
// revision order, at most one refresh in flight and one queued (whatever the
// rate of invalidations).
//
// All methods are safe for concurrent use. The provider and applier are
// never called concurrently for one Consumer, and never with an engine lock
// held. A Consumer is single-use: once stopped it cannot start again.
//
// A Consumer is an [InvalidationHandler]: transports deliver invalidations to
// [Consumer.Invalidate] and [Consumer.InvalidateRaw], which may also be
// called directly.
type Consumer struct {
	topic string
	sub   Subscriber
	prov  Provider
	// peeker is prov as a SnapshotPeeker (before any retry wrapper), or nil.
	peeker SnapshotPeeker
	app    Applier
	opts   ConsumerOptions
	log    *slog.Logger // nil: no logging

	ctx        context.Context // cancelled by Stop; passed to provider and applier
	refreshCtx context.Context // ctx marked as "inside this consumer's refresh"
	cancel     context.CancelFunc
	wg         group // counts refresh and report goroutines

	lifecycle atomic.Int32 // stateIdle…stateStopped; changed under mu, read anywhere
	state     atomic.Pointer[applied]
	sched     atomic.Pointer[scheduler] // nil: passthrough or not started

	mu          sync.Mutex // protects the fields below
	startDone   chan struct{}
	startErr    error
	unsubscribe func()
	slotHeld    bool          // a refresh or an Offer holds the refresh slot
	queued      bool          // one more refresh is to run after the current one
	seq         uint64        // number of refreshes started: refresh n is the n-th
	waiters     []waiter      // Refresh and Start calls waiting for a refresh to end
	slotFree    chan struct{} // closed when the slot is released, if an Offer waits
	regressed   Revision      // revision at which a regression was last reported (0: none)
	// retryReported is closed once the last retry report has been delivered.
	retryReported chan struct{}
	// callbacks counts the applier and OnError calls in progress, begun
	// before Stop; callbacksDone, if a Stop waits, is closed when it drops to 0.
	callbacks     int
	callbacksDone chan struct{}

	// gateHook, if set (by the tests), runs between the revision gate and
	// the applier call, with no lock held.
	gateHook func()
	// handleHook, if set (by the tests), runs between an invalidation's
	// gate check and its refresh request, with no lock held.
	handleHook func()

	wantMu sync.Mutex  // protects want
	want   minRevision // the newest invalidation that asked for a refresh

	// shareProv is prov if its fetches are shared with the other consumers
	// of the topic (see SharedProvider), else nil; share is the group
	// while started.
	shareProv Provider
	share     atomic.Pointer[shareGroup]
	// mustFetch is the refresh that the latest Start or Refresh waits
	// for: it fetches, never using another consumer's snapshot.
	mustFetch atomic.Uint64
}

type waiter struct {
	target uint64 // the refresh whose end this waiter wants
	ch     chan error
}

type refreshCtxKey struct{}

// NewConsumer returns a Consumer for topic that listens with sub, pulls from
// prov and applies with app. It does no I/O: nothing happens until
// [Consumer.Start] or [Consumer.Refresh].
//
// It returns an error wrapping [ErrInvalidTopic] for an invalid topic,
// [ErrMissingDependency] for a nil sub, prov or app, and
// [ErrInvalidThrottle] or [ErrInvalidRetry] for bad options.
func NewConsumer(topic string, sub Subscriber, prov Provider, app Applier, opts *ConsumerOptions) (*Consumer, error) {
	if err := CheckTopic(topic); err != nil {
		return nil, err
	}
	switch {
	case sub == nil:
		return nil, fmt.Errorf("%w: nil Subscriber", ErrMissingDependency)
	case prov == nil:
		return nil, fmt.Errorf("%w: nil Provider", ErrMissingDependency)
	case app == nil:
		return nil, fmt.Errorf("%w: nil Applier", ErrMissingDependency)
	}
	c := &Consumer{topic: topic, sub: sub, prov: prov, app: app}
	c.peeker, _ = prov.(SnapshotPeeker)
	if shareable(prov) {
		c.shareProv = prov
	}
	if opts != nil {
		c.opts = *opts
	}
	if err := c.opts.Throttle.validate(); err != nil {
		return nil, err
	}
	if c.opts.FetchTimeout < 0 {
		return nil, fmt.Errorf("statesync: negative FetchTimeout %v", c.opts.FetchTimeout)
	}
	if c.opts.Retry != nil {
		p := *c.opts.Retry
		rp, err := newRetryProvider(prov, &p)
		if err != nil {
			return nil, err
		}
		rp.onRetry = c.reportRetry
		rp.attemptTimeout = c.opts.FetchTimeout
		c.prov = rp
	}
	if c.opts.Logger != nil {
		c.log = c.opts.Logger.With(slog.String("component", "statesync"), slog.String("topic", topic))
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.refreshCtx = context.WithValue(c.ctx, refreshCtxKey{}, c)
	c.state.Store(&applied{})
	return c, nil
}

// Topic returns the consumer's topic.
func (c *Consumer) Topic() string { return c.topic }

// Revision returns the revision of the last applied snapshot, or 0 before
// the first. It keeps its value after Stop.
func (c *Consumer) Revision() Revision { return c.state.Load().rev }

// Epoch returns the epoch of the last applied snapshot ("" if none).
func (c *Consumer) Epoch() string { return c.state.Load().epoch }

// Start subscribes to the topic, then refreshes, and returns once the
// initial snapshot has been applied (or skipped as not newer). The
// subscription is made before the refresh, so a change made during Start
// is not missed.
//
// Start is idempotent; concurrent calls wait for the first and return its
// result. If subscribing or the initial refresh fails, or ctx ends first,
// Start undoes the subscription and returns the error, and may be called
// again. Start after [Consumer.Stop] returns [ErrStartAfterStop]; if Stop
// runs while Start is in progress, Start returns [ErrStopped].
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	switch c.lifecycle.Load() {
	case stateStopped:
		c.mu.Unlock()
		return ErrStartAfterStop
	case stateStarted:
		c.mu.Unlock()
		return nil
	case stateStarting:
		done := c.startDone
		c.mu.Unlock()
		select {
		case <-done:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.startErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.lifecycle.Store(stateStarting)
	c.startDone = make(chan struct{})
	c.mu.Unlock()

	err := c.start(ctx)

	c.mu.Lock()
	c.startErr = err
	if c.lifecycle.Load() == stateStarting {
		if err == nil {
			c.lifecycle.Store(stateStarted)
		} else {
			c.lifecycle.Store(stateIdle)
		}
	}
	close(c.startDone)
	c.mu.Unlock()
	return err
}

func (c *Consumer) start(ctx context.Context) error {
	c.debug("starting")
	var sched *scheduler
	if !c.opts.Throttle.passthrough() {
		sched = newScheduler(c.opts.Throttle, func() { c.requestRefresh(false, nil) })
		c.sched.Store(sched)
	}
	rollback := func(unsub func()) {
		if sched != nil {
			sched.dispose()
			c.sched.CompareAndSwap(sched, nil)
		}
		if unsub != nil {
			callUnsubscribe(unsub)
		}
	}

	unsub, err := c.subscribe(ctx)
	if err != nil {
		rollback(nil)
		if c.isStopped() {
			return ErrStopped
		}
		e := &Error{Phase: PhaseSubscribe, Topic: c.topic, Err: err, LocalRevision: c.Revision()}
		c.report(e)
		return e
	}
	c.mu.Lock()
	if c.isStopped() { // Stop ran during Subscribe
		c.mu.Unlock()
		rollback(unsub)
		return ErrStopped
	}
	c.unsubscribe = unsub
	if c.shareProv != nil {
		c.share.Store(joinShare(c.shareProv, c.topic))
	}
	c.mu.Unlock()
	c.debug("subscribed")

	err = c.awaitRefresh(ctx)
	if err == nil {
		c.debug("started")
		return nil
	}
	c.mu.Lock()
	unsub, c.unsubscribe = c.unsubscribe, nil
	c.mu.Unlock()
	c.leaveShare()
	rollback(unsub)
	if c.isStopped() {
		return ErrStopped
	}
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		e := &Error{Phase: PhaseStart, Topic: c.topic, Err: err, LocalRevision: c.Revision()}
		c.report(e)
		return e
	}
	return err
}

func (c *Consumer) subscribe(ctx context.Context) (unsub func(), err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r}
		}
	}()
	unsub, err = c.sub.Subscribe(ctx, c.topic, c)
	if err == nil && unsub == nil {
		unsub = func() {}
	}
	return unsub, err
}

func callUnsubscribe(unsub func()) {
	defer func() { _ = recover() }()
	unsub()
}

// Stop stops the consumer: pending throttled refreshes are cancelled, the
// subscription is removed, and the context given to the provider and
// applier is cancelled. If an applier or OnError call is in progress, Stop
// then waits for it to return. So once Stop returns, the applier and
// OnError are not running and are never called again, and no revision is
// adopted. A provider call in progress is not waited for: it may return
// (or, if its refresh had begun just before Stop, even begin) afterwards,
// with the cancelled context, and its result is dropped. [Consumer.Wait]
// waits for every goroutine of the consumer.
//
// Stop is idempotent (every call waits as above) and may be called from
// any callback. Called from inside an applier or OnError call (of this
// Consumer or any other, on the goroutine running it), Stop does not wait:
// it cannot wait for the call it is part of, and waiting for another
// consumer's could deadlock; an applier call of this Consumer under way on
// another goroutine may then still run (or, having passed the revision
// gate, begin). Stop must not be called while holding something the
// applier or OnError waits for.
func (c *Consumer) Stop() {
	c.mu.Lock()
	first := !c.isStopped()
	var unsub func()
	var wake []waiter
	if first {
		c.lifecycle.Store(stateStopped)
		unsub = c.unsubscribe
		c.unsubscribe = nil
		c.queued = false
		// Callers waiting in Start, Refresh or Offer learn of the Stop now, not
		// when a provider that ignores its ctx returns.
		wake = c.waiters
		c.waiters = nil
		if c.slotFree != nil {
			close(c.slotFree)
			c.slotFree = nil
		}
	}
	// No applier or OnError call begins from now on: wait for those that did.
	var done chan struct{}
	if c.callbacks > 0 {
		if c.callbacksDone == nil {
			c.callbacksDone = make(chan struct{})
		}
		done = c.callbacksDone
	}
	c.mu.Unlock()

	if first {
		c.cancel()
		c.leaveShare()
		if s := c.sched.Swap(nil); s != nil {
			s.dispose()
		}
		if unsub != nil {
			callUnsubscribe(unsub)
		}
		for _, w := range wake {
			w.ch <- ErrStopped
		}
		c.debug("stopped")
	}
	if done != nil && !insideCallback() {
		<-done
	}
}

// Wait blocks until every goroutine the consumer started has returned, or
// ctx ends. After [Consumer.Stop], that happens as soon as an in-flight
// provider or applier call returns. If ctx ends first, Wait returns
// ctx.Err() and leaves nothing behind. Wait must not be called from the
// consumer's own provider, applier or callbacks.
func (c *Consumer) Wait(ctx context.Context) error {
	select {
	case <-c.wg.wait():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Refresh pulls the latest snapshot and applies it if newer, bypassing
// throttling, and returns once a refresh that began after the call has
// finished, with that refresh's error (an *[Error]) or ctx.Err().
// A refresh already in flight is not interrupted: the call queues one more,
// shared with every other caller and invalidation that arrives meanwhile.
//
// Refresh works before Start (without subscribing) and returns nil without
// doing anything after Stop. Called from inside the consumer's provider or applier with
// the context it received, it queues a refresh and returns nil at
// once instead of waiting for itself.
func (c *Consumer) Refresh(ctx context.Context) error {
	if ctx.Value(refreshCtxKey{}) == c {
		c.requestRefresh(false, nil)
		return nil
	}
	if c.isStopped() {
		return nil
	}
	err := c.awaitRefresh(ctx)
	if errors.Is(err, ErrStopped) {
		return nil
	}
	return err
}

// isStopped reports whether Stop has been called.
func (c *Consumer) isStopped() bool { return c.lifecycle.Load() == stateStopped }

// The refresh slot. Every refresh and every Offer holds the slot while it
// runs, so the provider and applier never run concurrently. A refresh is
// requested by requestRefresh (which does not wait for it) or by
// awaitRefresh (which does); if the slot is held, the request only marks
// one more refresh as queued. The holder of the slot runs refreshLoop:
// refreshOnce, then endRefresh, which wakes the waiters and hands the slot
// to the queued refresh or releases it.

// takeSlot marks the slot held and returns the number of the refresh that
// holds it. The caller holds mu and has seen the slot free.
func (c *Consumer) takeSlot() uint64 {
	c.slotHeld = true
	c.seq++
	return c.seq
}

// awaitRefresh requests a refresh and waits for its end: the refresh just
// started, or, if the slot is held, the queued one (which begins after
// this call).
func (c *Consumer) awaitRefresh(ctx context.Context) error {
	w := waiter{ch: make(chan error, 1)}
	c.mu.Lock()
	if c.isStopped() {
		c.mu.Unlock()
		return ErrStopped
	}
	coalesced := c.slotHeld
	if coalesced {
		c.queued = true
		w.target = c.seq + 1
		c.mustFetch.Store(w.target) // before endRefresh (under mu) starts it
	} else {
		w.target = c.takeSlot()
		c.mustFetch.Store(w.target) // before the refresh can look
		c.wg.add()
		go c.refreshLoop(w.target, false)
	}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	if coalesced {
		c.debug("refresh coalesced (in-flight)")
	}
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requestRefresh starts a refresh, or queues one if the slot is held. An
// inline refresh runs on the calling goroutine, with those queued
// meanwhile, and requestRefresh returns once they are done; otherwise the
// refresh runs on a goroutine of its own, or on the run queue of its share
// group if the group has other consumers (see runqueue.go), and
// requestRefresh never blocks.
//
// inv is the invalidation that asks for the refresh, if one does: it is
// checked against the gate again, under mu, where offer advances the
// state. A refresh may have applied it since the caller's check, and a
// refresh queued for it then would be one more fetch for a duplicate
// (duplicates add at most one provider call).
func (c *Consumer) requestRefresh(inline bool, inv *Invalidation) {
	c.mu.Lock()
	if c.isStopped() || inv != nil && !c.opensGate(c.state.Load(), *inv) {
		c.mu.Unlock()
		return
	}
	if c.slotHeld {
		c.queued = true
		c.mu.Unlock()
		c.debug("refresh coalesced (in-flight)")
		return
	}
	seq := c.takeSlot()
	c.wg.add()
	c.mu.Unlock()
	if inline {
		c.refreshLoop(seq, true)
		return
	}
	if g := c.share.Load(); g != nil && g.n.Load() > 1 {
		g.runs.add(c, seq)
		return
	}
	go c.refreshLoop(seq, false)
}

// refreshLoop holds the slot: it runs refresh seq and those queued after
// it, and counts itself out of c.wg when done. Inline (on the delivering
// goroutine) with a SnapshotPeeker, a refresh whose snapshot is not at hand
// is handed, with those after it, to a goroutine of its own.
func (c *Consumer) refreshLoop(seq uint64, inline bool) {
	defer c.wg.done()
	for {
		var at *Snapshot
		if inline && c.peeker != nil {
			snap, ok := c.peek()
			if !ok {
				c.wg.add() // before done: the count never drops to 0 meanwhile
				go c.refreshLoop(seq, false)
				return
			}
			at = &snap
		}
		next, ok := c.endRefresh(seq, c.refreshOnce(seq, at))
		if !ok {
			return
		}
		seq = next
	}
}

// refreshOnce is refresh seq: fetch (unless the snapshot is at hand, or
// another consumer fetched it), validate, gate, apply, advance.
func (c *Consumer) refreshOnce(seq uint64, at *Snapshot) *Error {
	if c.isStopped() {
		c.debug("refresh skipped (stopped)")
		return nil
	}
	c.debug("refresh started")
	if at != nil {
		return c.offer(c.refreshCtx, *at)
	}
	if g := c.share.Load(); g != nil && g.n.Load() > 1 {
		if snap, ok := c.sibling(g, seq); ok {
			c.debug("refresh took another consumer's snapshot")
			return c.offer(c.refreshCtx, snap)
		}
	}
	snap, err := c.fetch(seq)
	if err != nil {
		if c.isStopped() {
			return nil
		}
		return c.fetchError(err)
	}
	return c.offer(c.refreshCtx, snap)
}

// endRefresh ends refresh seq with result e: it hands the slot to the
// queued refresh (on this goroutine, or on a new one when an error must be
// reported, so that OnError may wait for that refresh) or releases it,
// reports e, then wakes the waiters. It returns the next refresh to run on
// this goroutine.
func (c *Consumer) endRefresh(seq uint64, e *Error) (next uint64, ok bool) {
	var err error
	if e != nil {
		err = e
	}
	c.mu.Lock()
	stopped := c.isStopped()
	if stopped {
		err = ErrStopped
	}
	var wake []waiter
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if w.target <= seq || stopped {
			wake = append(wake, w)
		} else {
			keep = append(keep, w)
		}
	}
	clear(c.waiters[len(keep):])
	c.waiters = keep
	if c.queued && !stopped {
		c.queued = false
		c.seq++
		next, ok = c.seq, true
		if e != nil {
			c.wg.add()
			go c.refreshLoop(next, false)
			ok = false
		}
	} else {
		c.slotHeld = false
		if c.slotFree != nil {
			close(c.slotFree)
			c.slotFree = nil
		}
	}
	c.mu.Unlock()
	if e != nil && !stopped {
		c.report(e)
	}
	for _, w := range wake {
		w.ch <- err
	}
	return next, ok
}

// leaveShare leaves the consumer's share group, if it is in one.
func (c *Consumer) leaveShare() {
	if g := c.share.Swap(nil); g != nil {
		g.leave()
	}
}

// peek asks the peeker for the topic's snapshot; a panic counts as "not at
// hand" (the fetch that follows reports whatever is wrong).
func (c *Consumer) peek() (snap Snapshot, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return c.peeker.PeekSnapshot(c.topic)
}

// fetch fetches the snapshot for refresh seq, or takes the one another
// consumer of its share group (see SharedProvider) is fetching.
func (c *Consumer) fetch(seq uint64) (Snapshot, error) {
	ctx := c.refreshCtx
	if c.opts.FetchTimeout > 0 && c.opts.Retry == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.FetchTimeout)
		defer cancel()
	}
	// Ask for at least the revision of the invalidation acted on, so a
	// provider behind a load balancer does not answer from a daemon that
	// has not heard of it yet (see WithMinRevision).
	c.wantMu.Lock()
	want := c.want
	c.wantMu.Unlock()
	if cur := c.state.Load(); want.rev > cur.rev || want.epoch != "" && want.epoch != cur.epoch {
		ctx = WithMinRevision(ctx, want.epoch, want.rev)
	}
	if g := c.share.Load(); g != nil && g.n.Load() > 1 {
		return c.fetchShared(ctx, g, seq, want)
	}
	return c.callProvider(ctx)
}

// callProvider asks the provider for the topic's snapshot.
func (c *Consumer) callProvider(ctx context.Context) (snap Snapshot, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r}
		}
	}()
	return c.prov.Snapshot(ctx, c.topic)
}

func (c *Consumer) fetchError(err error) *Error {
	e := &Error{Phase: PhaseGetSnapshot, Topic: c.topic, Err: err, LocalRevision: c.Revision()}
	var se *SnapshotError
	if errors.As(err, &se) {
		e.Phase = PhaseProtocol
		if se.RevisionIsString {
			e.SnapshotRevision = se.Revision
		}
	}
	var re *RetryError
	if errors.As(err, &re) {
		e.Attempt = re.Attempts
	}
	return e
}

// offer validates, gates and applies snap. The caller holds the slot.
func (c *Consumer) offer(ctx context.Context, snap Snapshot) *Error {
	c.mu.Lock()
	if c.isStopped() {
		c.mu.Unlock()
		return nil
	}
	cur := c.state.Load()
	switch c.gate(cur, snap) {
	case gateSkip:
		c.mu.Unlock()
		if c.debugOn() {
			c.logRevisions(slog.LevelDebug, "snapshot skipped (not newer)", snap.Revision, cur.rev)
		}
		return nil
	case gateRegressed:
		report := c.regressed != cur.rev || cur.rev == 0
		c.regressed = cur.rev
		c.mu.Unlock()
		if !report {
			return nil
		}
		return c.regressedError(snap.Revision, cur.rev)
	}
	c.callbacks++ // a Stop from now on waits for this applier call
	c.mu.Unlock()
	if c.gateHook != nil {
		c.gateHook()
	}

	err := callApplier(c.app, ctx, snap)

	c.mu.Lock()
	c.callbackDone()
	if c.isStopped() { // stopped during the apply: keep the old revision
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		c.mu.Unlock()
		return c.applyError(err, cur.rev, snap.Revision)
	}
	if now := c.state.Load(); now != cur && c.gate(now, snap) != gateApply {
		// The applier offered a newer snapshot while applying this one
		// (Offer with its ctx): keep that one, never move back.
		c.mu.Unlock()
		return nil
	}
	epoch := snap.Epoch
	if epoch == "" {
		epoch = cur.epoch
	}
	c.state.Store(&applied{rev: snap.Revision, epoch: epoch, any: true})
	c.regressed = 0
	c.mu.Unlock()
	if c.debugOn() {
		c.logApplied(snap.Revision)
	}
	return nil
}

// The cold paths of offer live in functions of their own, which keeps
// offer's frame small: a refresh's goroutine then reaches the applier without
// growing its initial stack.

//go:noinline
func (c *Consumer) logRevisions(level slog.Level, msg string, snapRev, localRev Revision) {
	c.log.LogAttrs(context.Background(), level, msg,
		slog.String("snapshotRevision", snapRev.String()), slog.String("localRevision", localRev.String()))
}

//go:noinline
func (c *Consumer) logApplied(rev Revision) {
	c.log.LogAttrs(context.Background(), slog.LevelDebug, "applied snapshot", slog.String("revision", rev.String()))
}

//go:noinline
func (c *Consumer) regressedError(snapRev, localRev Revision) *Error {
	if c.log != nil {
		c.logRevisions(slog.LevelWarn, "snapshot revision went backwards", snapRev, localRev)
	}
	return &Error{Phase: PhaseProtocol, Topic: c.topic, LocalRevision: localRev, SnapshotRevision: snapRev.String(),
		Err: fmt.Errorf("%w: snapshot %d is older than applied %d in the same epoch", ErrRevisionRegressed, snapRev, localRev)}
}

//go:noinline
func (c *Consumer) applyError(err error, localRev, snapRev Revision) *Error {
	return &Error{Phase: PhaseApply, Topic: c.topic, Err: err, LocalRevision: localRev, SnapshotRevision: snapRev.String()}
}

type gateResult int

const (
	gateApply gateResult = iota
	gateSkip
	gateRegressed
)

// gate decides whether snap is to be applied over cur.
func (c *Consumer) gate(cur *applied, snap Snapshot) gateResult {
	switch {
	case !cur.any:
		return gateApply // the first snapshot always applies
	case snap.Epoch != "" && snap.Epoch != cur.epoch:
		return gateApply // the source lost continuity: adopt its state
	case snap.Revision > cur.rev:
		return gateApply
	case snap.Revision == cur.rev:
		return gateSkip
	}
	return gateRegressed
}

// enterCallback counts a callback call about to begin, unless the consumer
// is stopped: a Stop waits for the calls counted.
func (c *Consumer) enterCallback() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isStopped() {
		return false
	}
	c.callbacks++
	return true
}

// exitCallback counts a callback call out.
func (c *Consumer) exitCallback() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.callbackDone()
}

// callbackDone counts a callback call out and wakes the Stop calls waiting
// for the last. The caller holds mu.
func (c *Consumer) callbackDone() {
	c.callbacks--
	if c.callbacks == 0 && c.callbacksDone != nil {
		close(c.callbacksDone)
		c.callbacksDone = nil
	}
}

// callApplier calls app.Apply, turning a panic into an error. Its frame
// marks a goroutine as running an applier (see insideCallback).
//
//go:noinline
func callApplier(app Applier, ctx context.Context, snap Snapshot) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r}
		}
	}()
	return app.Apply(ctx, snap)
}

// insideCallback reports whether the calling goroutine is running an
// applier or an OnError callback (of any Consumer): whether callApplier or
// callOnErrorFunc is on its stack. Only Stop asks, and only when such a call
// is in progress.
func insideCallback() bool {
	applier := reflect.ValueOf(callApplier).Pointer()
	onError := reflect.ValueOf(callOnErrorFunc).Pointer()
	pcs := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pcs)
		frames := runtime.CallersFrames(pcs[:n])
		for {
			f, more := frames.Next()
			if f.Func != nil && (f.Func.Entry() == applier || f.Func.Entry() == onError) {
				return true
			}
			if !more {
				break
			}
		}
		if n < len(pcs) {
			return false
		}
		pcs = make([]uintptr, 2*len(pcs)) // a deeper stack: look again, whole
	}
}

// Offer applies snap as if a refresh had fetched it: it is validated against
// the revision gate, applied if newer, and adopted as the consumer's
// revision. Use it with the snapshot a write returns, so that the writer's
// own consumer moves past the write without pulling it again.
//
// Offer waits for a refresh in flight and runs in turn with refreshes. It
// returns nil if the snapshot was applied or skipped as not newer, an
// *[Error] if the applier failed (also reported to OnError), ctx.Err() if
// ctx ended first, and [ErrStopped] after Stop.
func (c *Consumer) Offer(ctx context.Context, snap Snapshot) error {
	if ctx.Value(refreshCtxKey{}) == c { // from inside our applier: we hold the slot
		if e := c.offer(ctx, snap); e != nil {
			return e
		}
		return nil
	}
	for {
		c.mu.Lock()
		if c.isStopped() {
			c.mu.Unlock()
			return ErrStopped
		}
		if !c.slotHeld {
			seq := c.takeSlot()
			c.mu.Unlock()
			e := c.offer(c.refreshCtx, snap)
			// This goroutine is the caller's: a queued refresh gets its own.
			if next, ok := c.endRefresh(seq, e); ok {
				c.wg.add()
				go c.refreshLoop(next, false)
			}
			if e != nil {
				return e
			}
			return nil
		}
		if c.slotFree == nil {
			c.slotFree = make(chan struct{})
		}
		free := c.slotFree
		c.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Invalidate handles an invalidation: it is dropped if the consumer is
// stopped, if its topic is another one, if its revision is not newer than
// the applied one (within the same epoch) or if ShouldRefresh says so;
// otherwise it requests a refresh, through the throttle if one is set. It
// does not allocate on the drop paths. It runs ShouldRefresh, and OnError
// for an error it reports, on the caller's goroutine, and otherwise never
// blocks unless [ConsumerOptions.InlineRefresh] is set, in which case it
// returns once the refresh it started (if any) and those queued meanwhile
// are done.
func (c *Consumer) Invalidate(inv Invalidation) {
	// The gate's common case first, in a few loads: a stale invalidation of
	// this topic, without epoch, with nothing to log. It returns where the
	// full path below would return having done nothing.
	if cur := c.state.Load(); inv.Revision <= cur.rev && inv.Epoch == "" && c.log == nil && inv.Topic == c.topic {
		return
	}
	if c.isStopped() {
		return
	}
	if inv.Topic != c.topic {
		if strings.TrimSpace(inv.Topic) == "" {
			c.reportEvent(inv.AppendJSON(nil), inv.Topic,
				fmt.Errorf("%w: empty topic in invalidation event", ErrInvalidPayload))
		}
		return // another topic: not ours
	}
	c.handle(inv)
}

// opensGate reports whether inv passes the revision gate against cur: it
// is newer, or of another epoch.
func (c *Consumer) opensGate(cur *applied, inv Invalidation) bool {
	otherEpoch := inv.Epoch != "" && inv.Epoch != cur.epoch && cur.any
	return otherEpoch || inv.Revision > cur.rev
}

func (c *Consumer) handle(inv Invalidation) {
	cur := c.state.Load()
	if !c.opensGate(cur, inv) {
		if c.debugOn() {
			c.log.LogAttrs(context.Background(), slog.LevelDebug, "invalidation skipped (not newer)",
				slog.String("eventRevision", inv.Revision.String()), slog.String("localRevision", cur.rev.String()))
		}
		return
	}
	if f := c.opts.ShouldRefresh; f != nil {
		ok, err := callFilter(f, inv)
		if err != nil {
			c.report(&Error{Phase: PhaseInvalidation, Topic: c.topic, Err: err, LocalRevision: cur.rev,
				EventRevision: inv.Revision.String(), EventTopic: inv.Topic, SourceID: inv.SourceID})
			return
		}
		if !ok {
			if c.debugOn() {
				c.log.LogAttrs(context.Background(), slog.LevelDebug, "invalidation skipped (shouldRefresh)", slog.Any("event", inv))
			}
			return
		}
	}
	if c.debugOn() {
		c.log.LogAttrs(context.Background(), slog.LevelDebug, "invalidation triggered refresh", slog.String("eventRevision", inv.Revision.String()))
	}
	c.wantMu.Lock()
	if inv.Epoch != c.want.epoch || inv.Revision > c.want.rev {
		c.want = minRevision{inv.Epoch, inv.Revision}
	}
	c.wantMu.Unlock()
	if s := c.sched.Load(); s != nil {
		s.trigger()
		return
	}
	if c.handleHook != nil {
		c.handleHook()
	}
	c.requestRefresh(c.opts.InlineRefresh, &inv)
}

func callFilter(f func(Invalidation) bool, inv Invalidation) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r}
		}
	}()
	return f(inv), nil
}

// InvalidateRaw decodes an invalidation payload and handles it like
// [Consumer.Invalidate]. A payload for another topic is dropped before its
// revision is looked at; a malformed payload for this topic, or
// one whose topic is missing, empty or not a string, is reported with
// [PhaseProtocol] (or [PhaseInvalidation] if it is not JSON at all) and the
// raw payload, and dropped.
func (c *Consumer) InvalidateRaw(payload []byte) {
	if c.isStopped() {
		return
	}
	d := decodeInvalidation(payload)
	if d.topicOK && d.inv.Topic != c.topic && strings.TrimSpace(d.inv.Topic) != "" {
		return
	}
	if d.err != nil {
		raw := json.RawMessage(append([]byte(nil), payload...))
		if !json.Valid(payload) {
			c.report(&Error{Phase: PhaseInvalidation, Topic: c.topic, Err: d.err, LocalRevision: c.Revision(), SourceEvent: raw})
			return
		}
		c.reportEvent(raw, d.inv.Topic, d.err)
		return
	}
	c.handle(d.inv)
}

// reportEvent reports a malformed invalidation with its raw payload. The
// context has no EventRevision: the revision may be what is wrong.
func (c *Consumer) reportEvent(raw json.RawMessage, topic string, err error) {
	c.report(&Error{Phase: PhaseProtocol, Topic: c.topic, Err: err, LocalRevision: c.Revision(),
		EventTopic: topic, SourceEvent: raw})
}

// reportRetry reports a scheduled retry of the provider.
func (c *Consumer) reportRetry(info retryInfo) {
	if c.isStopped() {
		return
	}
	if c.log != nil {
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "getSnapshot retry scheduled",
			slog.String("phase", string(PhaseGetSnapshot)), slog.Int("attempt", info.Attempt),
			slog.Bool("willRetry", true), slog.Duration("nextDelay", info.NextDelay), slog.Any("error", info.Err))
	}
	if c.opts.OnError == nil {
		return
	}
	e := &Error{Phase: PhaseGetSnapshot, Topic: c.topic, Err: info.Err, LocalRevision: c.Revision(),
		Attempt: info.Attempt, WillRetry: true, NextDelay: info.NextDelay}
	// This runs inside the provider call, which holds the refresh slot: an
	// OnError that called Refresh here would wait for a refresh that cannot
	// begin before it returns. So OnError gets its own goroutine, after the
	// previous retry report (retry reports stay in order); the refresh never
	// waits for it.
	c.mu.Lock()
	prev := c.retryReported
	done := make(chan struct{})
	c.retryReported = done
	c.mu.Unlock()
	c.wg.goRun(func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		if !c.isStopped() {
			c.callOnError(e)
		}
	})
}

// report logs e at error level and calls OnError.
func (c *Consumer) report(e *Error) {
	if c.log != nil {
		c.log.LogAttrs(context.Background(), slog.LevelError, string(e.Phase)+" error", e.attrs()...)
	}
	c.callOnError(e)
}

// callOnError calls OnError with e unless the consumer is stopped; a Stop
// that begins meanwhile waits for the call, as for an applier call.
func (c *Consumer) callOnError(e *Error) {
	if c.opts.OnError == nil {
		return
	}
	if !c.enterCallback() {
		return
	}
	defer c.exitCallback()
	if r := callOnErrorFunc(c.opts.OnError, e); r != nil && c.log != nil {
		c.log.LogAttrs(context.Background(), slog.LevelError, "onError callback threw", slog.Any("error", &PanicError{Value: r}))
	}
}

// callOnErrorFunc calls f with e and returns what it panicked with, if
// anything. Its frame marks a goroutine as running a callback (see
// insideCallback).
//
//go:noinline
func callOnErrorFunc(f func(*Error), e *Error) (panicked any) {
	defer func() { panicked = recover() }()
	f(e)
	return nil
}

// attrs returns the context of e as log attributes (topic is on the logger).
func (e *Error) attrs() []slog.Attr {
	a := []slog.Attr{slog.String("phase", string(e.Phase)), slog.Any("error", e.Err),
		slog.String("localRevision", e.LocalRevision.String())}
	if e.EventRevision != "" {
		a = append(a, slog.String("eventRevision", e.EventRevision))
	}
	if e.EventTopic != "" {
		a = append(a, slog.String("eventTopic", e.EventTopic))
	}
	if e.SnapshotRevision != "" {
		a = append(a, slog.String("snapshotRevision", e.SnapshotRevision))
	}
	if e.SourceID != "" {
		a = append(a, slog.String("sourceId", e.SourceID))
	}
	if e.SourceEvent != nil {
		a = append(a, slog.String("sourceEvent", truncate(e.SourceEvent, 512)))
	}
	if e.Attempt > 0 {
		a = append(a, slog.Int("attempt", e.Attempt), slog.Bool("willRetry", e.WillRetry))
		if e.WillRetry {
			a = append(a, slog.Duration("nextDelay", e.NextDelay))
		}
	}
	return a
}

func (c *Consumer) debugOn() bool {
	return c.log != nil && c.log.Enabled(context.Background(), slog.LevelDebug)
}

func (c *Consumer) debug(msg string) {
	if c.debugOn() {
		c.log.LogAttrs(context.Background(), slog.LevelDebug, msg)
	}
}
