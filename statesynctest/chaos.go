package statesynctest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
)

// SeedEnv is the environment variable that, when set to an integer,
// overrides [ChaosOptions.Seed], to replay a failed run.
const SeedEnv = "STATESYNC_CHAOS_SEED"

// ErrChaos is wrapped by the provider failures a [Chaos] injects.
var ErrChaos = errors.New("statesynctest: injected failure")

// ChaosOptions configures a [Chaos]. Probabilities are in [0, 1]; zero
// fields inject nothing.
type ChaosOptions struct {
	// Seed makes the faults reproducible. 0 means a random seed. The
	// environment variable STATESYNC_CHAOS_SEED, if set, overrides it.
	Seed int64

	// Drop is the probability that an invalidation is not delivered.
	Drop float64
	// Duplicate is the probability that an invalidation is delivered twice.
	Duplicate float64
	// Reorder is the probability that an invalidation is held back and
	// delivered after the next one for the same subscription (or at
	// [Chaos.Flush]).
	Reorder float64
	// MaxDelay, if positive, makes every delivery asynchronous: each runs
	// on a goroutine of the Chaos after a random delay in [0, MaxDelay),
	// which also reorders them.
	MaxDelay time.Duration
	// Garbage is the probability that a malformed raw payload for the same
	// topic is delivered (through InvalidationHandler.InvalidateRaw) before an
	// invalidation.
	Garbage float64

	// FailRate is the probability that a provider call fails with an error
	// wrapping [ErrChaos].
	FailRate float64
	// StallRate is the probability that a provider call hangs until its
	// context ends, Stall elapses (if positive), or [Chaos.Quiesce] or
	// [Chaos.Close] is called. The snapshot is read before the stall, so a
	// stalled call that completes returns stale data late.
	StallRate float64
	// Stall bounds the hang of a stalled provider call; 0 means until the
	// context ends or the Chaos is quiesced.
	Stall time.Duration

	// Logf, if set, receives the seed in use (for example t.Logf), so that
	// a failure can be replayed with STATESYNC_CHAOS_SEED.
	Logf func(format string, args ...any)
}

// ChaosStats counts what a [Chaos] did.
type ChaosStats struct {
	Received   int64 // invalidations received from the inner subscriber
	Delivered  int64 // invalidations handed to handlers, copies included
	Dropped    int64 // invalidations dropped on purpose
	Duplicated int64 // invalidations delivered twice
	Reordered  int64 // invalidations held back behind a later one
	Delayed    int64 // deliveries made on a goroutine after a delay
	Garbage    int64 // malformed payloads delivered
	Calls      int64 // provider calls
	Failed     int64 // provider calls failed on purpose
	Stalled    int64 // provider calls stalled on purpose
}

// A Chaos is a [statesync.Subscriber] and [statesync.Provider] that wraps
// another pair and injects the faults a real network causes: lost,
// duplicated, reordered, delayed and malformed invalidations, failing and
// hanging snapshot calls. Consumers must converge anyway once faults stop
// and a final invalidation or refresh gets through.
//
// # Determinism
//
// Each decision is a function of the seed and of what it is about, not of
// the order of calls: for a delivery, the subscription's number (in
// Subscribe order), the invalidation's topic, revision and epoch, and how
// many times the same invalidation reached that subscription; for a
// provider call, the topic and the call's number for that topic. So a run
// with the same seed injects the same faults into the same events, however
// goroutines interleave, as far as the events themselves are the same.
//
// # Concurrency
//
// A Chaos is safe for concurrent use. Synchronous deliveries run on the
// inner subscriber's goroutine; delayed ones on goroutines owned by the
// Chaos, which [Chaos.Close] waits for. Once an unsubscribe function has
// returned, no new delivery to its handler begins (one already running on
// another goroutine may finish). Handlers may unsubscribe from inside a
// delivery.
type Chaos struct {
	sub  statesync.Subscriber
	prov statesync.Provider
	opts ChaosOptions
	seed int64

	quiet    atomic.Bool   // Quiesce or Close called: no more faults
	quietCh  chan struct{} // closed with quiet, releases stalls
	quietOne sync.Once
	closeCh  chan struct{} // closed by Close
	closeOne sync.Once
	wg       sync.WaitGroup // delayed deliveries

	mu      sync.Mutex // protects the fields below
	closed  bool
	nextSub uint64
	subs    map[*chaosSub]struct{}
	seen    map[deliveryKey]uint64 // occurrences of each invalidation per subscription
	calls   map[string]uint64      // provider calls per topic
	flushCh chan struct{}          // closed by Flush to release delayed deliveries, then replaced
	pending map[*pendingDelivery]struct{}

	received, delivered, dropped, duplicated, reordered, delayed, garbage atomic.Int64
	callsN, failed, stalled                                               atomic.Int64
}

var (
	_ statesync.Subscriber = (*Chaos)(nil)
	_ statesync.Provider   = (*Chaos)(nil)
)

// chaosSub is one subscription through a Chaos.
type chaosSub struct {
	c      *Chaos
	id     uint64
	topic  string
	h      statesync.InvalidationHandler
	active atomic.Bool

	held *delivery // protected by c.mu: an invalidation held back (Reorder)
}

// A delivery is one handler call to make.
type delivery struct {
	inv   statesync.Invalidation
	raw   []byte // if not nil, delivered with InvalidateRaw
	junk  bool   // raw is garbage injected by the Chaos
	delay time.Duration
}

type pendingDelivery struct{ done chan struct{} }

type deliveryKey struct {
	sub   uint64
	topic string
	rev   statesync.Revision
	epoch string
}

// Salts separating the decisions drawn for one event.
const (
	saltDrop uint64 = iota + 1
	saltDuplicate
	saltReorder
	saltDelay
	saltGarbage
	saltGarbageKind
	saltFail
	saltStall
)

// NewChaos returns a Chaos over sub and prov (either may be nil if that
// side is not used). The seed in use is reported to opts.Logf. NewChaos
// panics if STATESYNC_CHAOS_SEED is set to something that is not an
// integer, rather than silently run another seed.
func NewChaos(sub statesync.Subscriber, prov statesync.Provider, opts ChaosOptions) *Chaos {
	seed := opts.Seed
	if env := os.Getenv(SeedEnv); env != "" {
		n, err := strconv.ParseInt(env, 10, 64)
		if err != nil {
			panic(fmt.Sprintf("statesynctest: %s=%q is not an integer", SeedEnv, env))
		}
		seed = n
	}
	for seed == 0 {
		seed = int64(randomUint64())
	}
	c := &Chaos{
		sub: sub, prov: prov, opts: opts, seed: seed,
		quietCh: make(chan struct{}), closeCh: make(chan struct{}),
		subs: make(map[*chaosSub]struct{}), seen: make(map[deliveryKey]uint64), calls: make(map[string]uint64),
		flushCh: make(chan struct{}), pending: make(map[*pendingDelivery]struct{}),
	}
	if opts.Logf != nil {
		opts.Logf("statesynctest: chaos seed %d (set %s=%d to replay)", seed, SeedEnv, seed)
	}
	return c
}

// Seed returns the seed in use.
func (c *Chaos) Seed() int64 { return c.seed }

// Stats returns the counters.
func (c *Chaos) Stats() ChaosStats {
	return ChaosStats{
		Received: c.received.Load(), Delivered: c.delivered.Load(), Dropped: c.dropped.Load(),
		Duplicated: c.duplicated.Load(), Reordered: c.reordered.Load(), Delayed: c.delayed.Load(),
		Garbage: c.garbage.Load(), Calls: c.callsN.Load(), Failed: c.failed.Load(), Stalled: c.stalled.Load(),
	}
}

// Subscribe implements [statesync.Subscriber]: it subscribes h through the
// inner subscriber, injecting faults into what it delivers. After
// [Chaos.Close] it returns [statesync.ErrClosed].
func (c *Chaos) Subscribe(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
	if c.sub == nil {
		return nil, errors.New("statesynctest: chaos has no subscriber")
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, statesync.ErrClosed
	}
	c.nextSub++
	s := &chaosSub{c: c, id: c.nextSub, topic: topic, h: h}
	s.active.Store(true)
	c.subs[s] = struct{}{} // before subscribing: the inner side may deliver at once
	c.mu.Unlock()
	unsub, err := c.sub.Subscribe(ctx, topic, s)
	if err != nil {
		s.active.Store(false)
		c.mu.Lock()
		delete(c.subs, s)
		s.held = nil
		c.mu.Unlock()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.active.Store(false)
			if unsub != nil {
				unsub()
			}
			c.mu.Lock()
			delete(c.subs, s)
			s.held = nil
			c.mu.Unlock()
		})
	}, nil
}

// Invalidate implements [statesync.InvalidationHandler] for the inner subscriber.
func (s *chaosSub) Invalidate(inv statesync.Invalidation) {
	s.c.inject(s, delivery{inv: inv}, deliveryKey{sub: s.id, topic: inv.Topic, rev: inv.Revision, epoch: inv.Epoch})
}

// InvalidateRaw implements [statesync.InvalidationHandler] for the inner subscriber.
func (s *chaosSub) InvalidateRaw(payload []byte) {
	d := delivery{raw: append([]byte(nil), payload...)}
	k := deliveryKey{sub: s.id}
	if inv, err := statesync.DecodeInvalidation(payload); err == nil {
		d.inv = inv
		k.topic, k.rev, k.epoch = inv.Topic, inv.Revision, inv.Epoch
	} else {
		k.topic = "raw:" + string(payload)
		d.inv.Topic = s.topic
	}
	s.c.inject(s, d, k)
}

// inject decides the fate of one invalidation from the inner subscriber
// and makes the resulting deliveries, outside any lock.
func (c *Chaos) inject(s *chaosSub, d delivery, k deliveryKey) {
	c.received.Add(1)
	if !s.active.Load() {
		return
	}
	if c.quiet.Load() {
		c.deliver(s, d)
		return
	}
	o := c.opts
	c.mu.Lock()
	if c.quiet.Load() { // Quiesce began: its Flush may have passed already
		c.mu.Unlock()
		c.deliver(s, d)
		return
	}
	n := c.seen[k]
	c.seen[k] = n + 1
	roll := func(salt uint64) float64 { return c.roll(salt, k, n) }
	var out []delivery
	if o.Garbage > 0 && roll(saltGarbage) < o.Garbage {
		g := delivery{raw: garbagePayload(s.topic, k.rev, roll(saltGarbageKind)), junk: true}
		g.delay = c.delayFor(roll(saltDelay + 100))
		out = append(out, g)
	}
	switch {
	case o.Drop > 0 && roll(saltDrop) < o.Drop:
		c.dropped.Add(1)
	default:
		copies := 1
		if o.Duplicate > 0 && roll(saltDuplicate) < o.Duplicate {
			copies = 2
			c.duplicated.Add(1)
		}
		for i := range copies {
			d := d
			d.delay = c.delayFor(roll(saltDelay + uint64(i)))
			if s.held == nil && o.Reorder > 0 && roll(saltReorder+uint64(i)*1000) < o.Reorder {
				s.held = &d
				c.reordered.Add(1)
				continue
			}
			out = append(out, d)
			if s.held != nil {
				out = append(out, *s.held)
				s.held = nil
			}
		}
	}
	c.mu.Unlock()
	for _, d := range out {
		c.dispatch(s, d)
	}
}

// delayFor maps a roll to a delay in [0, MaxDelay), or 0 without delays.
func (c *Chaos) delayFor(r float64) time.Duration {
	if c.opts.MaxDelay <= 0 {
		return 0
	}
	return time.Duration(r * float64(c.opts.MaxDelay))
}

// dispatch makes d now, or after its delay on a goroutine of the Chaos.
func (c *Chaos) dispatch(s *chaosSub, d delivery) {
	if c.opts.MaxDelay <= 0 || c.quiet.Load() {
		c.deliver(s, d)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.quiet.Load() { // Quiesce began: its Flush may have passed already
		c.mu.Unlock()
		c.deliver(s, d)
		return
	}
	p := &pendingDelivery{done: make(chan struct{})}
	c.pending[p] = struct{}{}
	flush := c.flushCh
	c.delayed.Add(1)
	c.wg.Go(func() {
		defer func() {
			c.mu.Lock()
			delete(c.pending, p)
			c.mu.Unlock()
			close(p.done)
		}()
		timer := time.NewTimer(d.delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-flush:
		case <-c.closeCh:
			return
		}
		c.deliver(s, d)
	})
	c.mu.Unlock()
}

// deliver calls the handler, unless its subscription has ended.
func (c *Chaos) deliver(s *chaosSub, d delivery) {
	if !s.active.Load() {
		return
	}
	switch {
	case d.junk:
		c.garbage.Add(1)
		s.h.InvalidateRaw(d.raw)
	case d.raw != nil:
		c.delivered.Add(1)
		s.h.InvalidateRaw(d.raw)
	default:
		c.delivered.Add(1)
		s.h.Invalidate(d.inv)
	}
}

// Flush delivers every invalidation held back (reordered or delayed) now,
// and returns once they have been delivered. Faults go on for later events.
func (c *Chaos) Flush() {
	c.mu.Lock()
	close(c.flushCh)
	c.flushCh = make(chan struct{})
	var dones []chan struct{}
	for p := range c.pending {
		dones = append(dones, p.done)
	}
	type heldOne struct {
		s *chaosSub
		d delivery
	}
	var held []heldOne
	for s := range c.subs {
		if s.held != nil {
			held = append(held, heldOne{s, *s.held})
			s.held = nil
		}
	}
	c.mu.Unlock()
	for _, h := range held {
		c.deliver(h.s, h.d)
	}
	for _, d := range dones {
		<-d
	}
}

// Quiesce stops injecting faults: later deliveries are made at once and
// later provider calls pass through. It releases stalled provider calls,
// delivers everything held back and returns once that is done. Call it,
// then send a final invalidation (or refresh the consumers), and they must
// converge.
func (c *Chaos) Quiesce() {
	c.quietOne.Do(func() {
		c.quiet.Store(true)
		close(c.quietCh)
	})
	c.Flush()
}

// Close stops injecting faults, drops what is held back, releases stalled
// provider calls and waits for the goroutines of the Chaos. Later
// Subscribe calls return [statesync.ErrClosed]; existing subscriptions
// pass invalidations through. Close is idempotent and returns nil.
func (c *Chaos) Close() error {
	c.quietOne.Do(func() {
		c.quiet.Store(true)
		close(c.quietCh)
	})
	c.closeOne.Do(func() {
		c.mu.Lock()
		c.closed = true
		close(c.closeCh)
		for s := range c.subs {
			s.held = nil
		}
		c.mu.Unlock()
	})
	c.wg.Wait()
	return nil
}

// Snapshot implements [statesync.Provider]: it calls the inner provider,
// unless it fails the call or stalls it first.
func (c *Chaos) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	if c.prov == nil {
		return statesync.Snapshot{}, errors.New("statesynctest: chaos has no provider")
	}
	c.callsN.Add(1)
	if c.quiet.Load() {
		return c.prov.Snapshot(ctx, topic)
	}
	c.mu.Lock()
	n := c.calls[topic]
	c.calls[topic] = n + 1
	c.mu.Unlock()
	k := deliveryKey{topic: topic}
	if c.opts.FailRate > 0 && c.roll(saltFail, k, n) < c.opts.FailRate {
		c.failed.Add(1)
		return statesync.Snapshot{}, fmt.Errorf("%w: snapshot of %q (call %d)", ErrChaos, topic, n+1)
	}
	if c.opts.StallRate > 0 && c.roll(saltStall, k, n) < c.opts.StallRate {
		c.stalled.Add(1)
		snap, err := c.prov.Snapshot(ctx, topic) // stale by the time it returns
		var timeout <-chan time.Time
		if c.opts.Stall > 0 {
			timer := time.NewTimer(c.opts.Stall)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
			return statesync.Snapshot{}, ctx.Err()
		case <-timeout:
		case <-c.quietCh:
		}
		return snap, err
	}
	return c.prov.Snapshot(ctx, topic)
}

// roll returns a number in [0, 1) drawn from the seed, salt, k and n.
func (c *Chaos) roll(salt uint64, k deliveryKey, n uint64) float64 {
	h := mix64(uint64(c.seed) ^ mix64(salt))
	h = mix64(h ^ k.sub)
	h = mix64(h ^ stringHash(k.topic))
	h = mix64(h ^ uint64(k.rev))
	h = mix64(h ^ stringHash(k.epoch))
	h = mix64(h ^ n)
	return float64(h>>11) / (1 << 53)
}

// mix64 is the SplitMix64 finaliser.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func stringHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// garbagePayload returns one of several malformed invalidations of topic,
// chosen by r. Each breaks the protocol in a different way.
func garbagePayload(topic string, rev statesync.Revision, r float64) []byte {
	t, _ := json.Marshal(topic)
	forms := []string{
		`{"topic":%s,"revision":%d}`,                       // a JSON number
		`{"topic":%s,"revision":"00%d"}`,                   // leading zeros
		`{"topic":%s}`,                                     // no revision
		`{"topic":%s,"revision":"-%d"}`,                    // a sign
		`{"topic":%s,"revision":"1%d0000000000000000000"}`, // out of range
		`{"topic":%s,"revision":"%d"`,                      // truncated: not JSON
	}
	f := forms[min(int(r*float64(len(forms))), len(forms)-1)]
	if f == `{"topic":%s}` {
		return fmt.Appendf(nil, f, t)
	}
	return fmt.Appendf(nil, f, t, uint64(rev))
}

func randomUint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v & math.MaxInt64
}
