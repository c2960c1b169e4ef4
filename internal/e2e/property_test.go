package e2e_test

// A property test of the engine on the harness: random sequences of writes,
// dropped, duplicated, delayed and reordered deliveries, provider failures,
// windows stopped and started, and source restarts with a new epoch and
// lower revisions. Whatever happened, once the system is quiet and one event
// reaches every window:
//
//   - no window ever applied an older revision within an epoch, nor went
//     back to an epoch it had left (B-GATE-06, B-REV-13, DESIGN §3 Epoch);
//   - every snapshot applied carried the data the store held at its
//     revision, and nothing was applied after Stop (B-LIFE-15);
//   - every live window is at the store's revision, epoch and data
//     (B-TRANS-10: correctness does not depend on delivery guarantees);
//   - the only errors reported are the injected provider failures.
//
// Each rapid iteration runs in its own testing/synctest bubble
// (rapid.SyncTest): delays cost no real time and no goroutine outlives the
// iteration. Wrapping rapid.Check itself in synctest.Test does not work:
// rapid calls t.Deadline, which panics inside a bubble. The number of
// iterations is rapid's (100 by default, -rapid.checks or RAPID_CHECKS to
// change it).
//
// When a bubble deadlocks (an engine bug that leaves a Start or Refresh
// waiting forever), rapid v1.3.0 reports it but then runs the iteration's
// Cleanup functions and cancels its Context outside the bubble, which is a
// fatal error for bubbled channels. The property therefore uses neither: the
// bus is closed by a deferred call inside the bubble (see bubbleTB), and
// calls get context.Background().

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/e2e"
	"github.com/statesync-go/statesync/statesynctest"
	"pgregory.net/rapid"
)

// reorderBuffer stands between the bus and a window's engine and keeps the
// invalidations until the test flushes them, in an order it chooses.
type reorderBuffer struct {
	mu     sync.Mutex
	engine statesync.InvalidationHandler
	held   []statesync.Invalidation
}

func (b *reorderBuffer) Invalidate(inv statesync.Invalidation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = append(b.held, inv)
}

func (b *reorderBuffer) InvalidateRaw(payload []byte) {
	if inv, err := statesync.DecodeInvalidation(payload); err == nil {
		b.Invalidate(inv)
	}
}

// flush delivers the held invalidations in the order perm gives.
func (b *reorderBuffer) flush(t *rapid.T) {
	b.mu.Lock()
	held, engine := b.held, b.engine
	b.held = nil
	b.mu.Unlock()
	if engine == nil || len(held) == 0 {
		return
	}
	for _, inv := range rapid.Permutation(held).Draw(t, "reorder") {
		engine.Invalidate(inv)
	}
}

type propState struct {
	t       *rapid.T
	bus     *e2e.Bus[int]
	next    int // the data of the next write: every write is unique
	windows int // windows made so far, for ids
	epochs  int
	past    []statesync.Invalidation // every state the store announced
	buffers map[string]*reorderBuffer
	starts  []pendingStart
}

type pendingStart struct {
	w   *e2e.Window[int]
	err chan error
}

func (s *propState) write(from string) {
	s.next++
	s.bus.MutateFrom(from, s.next)
	s.past = append(s.past, statesync.Invalidation{Topic: s.bus.Topic(), Revision: s.bus.Revision(), Epoch: s.bus.Epoch()})
}

// newWindow makes a window, reordering its deliveries or not.
func (s *propState) newWindow() *e2e.Window[int] {
	s.windows++
	id := fmt.Sprint("W", s.windows)
	cfg := &e2e.WindowConfig[int]{}
	if rapid.Bool().Draw(s.t, "reorders") {
		buf := &reorderBuffer{}
		s.buffers[id] = buf
		cfg.Subscriber = statesync.SubscriberFunc(func(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
			buf.mu.Lock()
			buf.engine = h
			buf.mu.Unlock()
			return s.bus.Subscriber(id).Subscribe(ctx, topic, buf)
		})
	}
	if d := rapid.IntRange(-1, 8).Draw(s.t, "ipcDelayMs"); d >= 0 {
		cfg.IPCDelay = new(time.Duration(d) * ms)
	}
	return s.bus.NewWindow(id, cfg)
}

// pick returns a live window, or nil if there is none.
func (s *propState) pick() *e2e.Window[int] {
	ws := s.bus.Windows()
	if len(ws) == 0 {
		return nil
	}
	return ws[rapid.IntRange(0, len(ws)-1).Draw(s.t, "window")]
}

func (s *propState) startWindow() {
	w := s.newWindow()
	if rapid.Bool().Draw(s.t, "startInBackground") {
		ps := pendingStart{w, make(chan error, 1)}
		go func() { ps.err <- w.Start(context.Background()) }()
		s.starts = append(s.starts, ps)
		return
	}
	if err := w.Start(context.Background()); err != nil {
		s.t.Fatalf("%s.Start() = %v; want nil", w.ID, err)
	}
}

// bubbleTB is a rapid.T whose Cleanup functions run when the property
// returns or fails inside its bubble, never outside it.
type bubbleTB struct {
	*rapid.T
	cleanups []func()
}

func (b *bubbleTB) Cleanup(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bubbleTB) cleanup() {
	for _, f := range slices.Backward(b.cleanups) {
		f()
	}
}

func (s *propState) step() {
	t := s.t
	switch action := rapid.IntRange(0, 10).Draw(t, "action"); action {
	case 0, 1: // a write, from a window or from outside
		from := ""
		if w := s.pick(); w != nil && rapid.Bool().Draw(t, "fromWindow") {
			from = w.ID
		}
		s.write(from)
	case 2: // a burst of writes
		for range rapid.IntRange(2, 10).Draw(t, "burst") {
			s.write("")
		}
	case 3: // time passes
		time.Sleep(time.Duration(rapid.IntRange(0, 20).Draw(t, "sleepMs")) * ms)
	case 4: // a stale invalidation, delivered very late (old revision, maybe old epoch)
		if w := s.pick(); w != nil && len(s.past) > 0 {
			w.Invalidate(rapid.SampledFrom(s.past).Draw(t, "stale"))
		}
	case 5: // provider failures
		if w := s.pick(); w != nil {
			s.bus.ConfigureWindow(w.ID, e2e.WindowPatch{FailCount: new(rapid.IntRange(1, 3).Draw(t, "failCount"))})
		}
	case 6: // the IPC delay of a window changes
		if w := s.pick(); w != nil {
			s.bus.ConfigureWindow(w.ID, e2e.WindowPatch{IPCDelay: new(time.Duration(rapid.IntRange(0, 10).Draw(t, "delayMs")) * ms)})
		}
	case 7: // a window closes
		if w := s.pick(); w != nil {
			s.bus.DestroyWindow(w.ID)
		}
	case 8: // a window opens
		s.startWindow()
	case 9: // the source restarts: new epoch, lower (or equal) revision
		s.epochs++
		rev := statesync.Revision(rapid.Uint64Range(0, uint64(s.bus.Revision())).Draw(t, "restartRevision"))
		s.next++
		s.bus.Restart(fmt.Sprint("e", s.epochs), rev, s.next)
		s.past = append(s.past, statesync.Invalidation{Topic: s.bus.Topic(), Revision: rev, Epoch: s.bus.Epoch()})
	case 10: // a reordering window receives what it held, shuffled
		if w := s.pick(); w != nil {
			if buf := s.buffers[w.ID]; buf != nil {
				buf.flush(t)
			}
		}
	default:
		t.Fatalf("unknown action %d", action)
	}
}

func checkConvergence(t *rapid.T) {
	seed := rapid.Int64Range(1, math.MaxInt64).Draw(t, "seed")
	ipcDelay := rapid.SampledFrom([]time.Duration{-1, ms, 3 * ms}).Draw(t, "ipcDelay")
	jitter := rapid.SampledFrom([]time.Duration{0, 2 * ms, 10 * ms}).Draw(t, "jitter")
	async := rapid.Bool().Draw(t, "async")
	mutex := rapid.SampledFrom([]time.Duration{0, ms}).Draw(t, "mutex")
	duplicates := rapid.SampledFrom([]float64{0, 0.3, 1}).Draw(t, "duplicates")
	drops := rapid.SampledFrom([]float64{0, 0.3, 0.8}).Draw(t, "drops")
	reorder := rapid.SampledFrom([]float64{0, 0.3}).Draw(t, "reorder")
	cfg := &e2e.BusConfig{
		Epoch:           "e0",
		IPCDelay:        ipcDelay,
		Async:           async,
		MutexContention: mutex,
		Faults:          statesynctest.ChaosOptions{Seed: seed, MaxDelay: jitter, Duplicate: duplicates, Drop: drops, Reorder: reorder},
	}
	tb := &bubbleTB{T: t}
	defer tb.cleanup()
	s := &propState{t: t, bus: e2e.NewBus(tb, 0, cfg), buffers: map[string]*reorderBuffer{}}
	for range rapid.IntRange(1, 3).Draw(t, "initialWindows") {
		s.startWindow()
	}
	for range rapid.IntRange(1, 40).Draw(t, "steps") {
		s.step()
	}

	// Quiescence: background starts finish, every delivery and fetch in
	// flight ends, failures stop, and one event reaches every window.
	var failed []*e2e.Window[int]
	for _, ps := range s.starts {
		switch err := <-ps.err; {
		case err == nil, errors.Is(err, statesync.ErrStopped), errors.Is(err, statesync.ErrStartAfterStop): // closed meanwhile
		case errors.Is(err, e2e.ErrSimulated): // failures were injected before its first fetch
			failed = append(failed, ps.w)
		default:
			t.Fatalf("%s.Start() = %v; want nil, ErrStopped or an injected failure", ps.w.ID, err)
		}
	}
	time.Sleep(time.Second)
	for _, w := range s.bus.Windows() {
		s.bus.ConfigureWindow(w.ID, e2e.WindowPatch{FailCount: new(0)})
	}
	for _, w := range failed {
		if s.bus.Window(w.ID) == w {
			if err := w.Start(context.Background()); err != nil { // B-LIFE-12: a failed Start may be retried
				t.Fatalf("%s.Start() again = %v; want nil", w.ID, err)
			}
		}
	}
	s.bus.Chaos().Quiesce() // delivers what it held back: late, stale events
	s.bus.BroadcastToAll()
	for _, w := range s.bus.Windows() {
		if buf := s.buffers[w.ID]; buf != nil {
			buf.flush(t)
		}
	}
	if err := s.bus.Converge(5 * time.Second); err != nil {
		t.Fatalf("%v", err)
	}

	for _, w := range s.bus.Windows() {
		last, ok := w.Last()
		if !ok || last.Data != s.bus.Data() || last.Epoch != s.bus.Epoch() {
			t.Fatalf("%s's last snapshot = %+v; want the store's data %d in epoch %q", w.ID, last, s.bus.Data(), s.bus.Epoch())
		}
	}
	for _, w := range s.bus.AllWindows() {
		if err := s.bus.CheckWindow(w); err != nil {
			t.Fatalf("%v", err)
		}
		for _, e := range w.Errors() {
			if e.Phase != statesync.PhaseGetSnapshot || !errors.Is(e, e2e.ErrSimulated) {
				t.Fatalf("%s reported %v (phase %q); want only the injected provider failures", w.ID, e, e.Phase)
			}
		}
	}
}

// B-GATE-06, B-REV-13, B-TRANS-10, B-COAL-09, B-LIFE-15: see the file
// comment.
func TestPropertyConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rapid.SyncTest(t, checkConvergence)
	})
}
