package bench

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// topic is the one topic of every scenario.
const topic = "bench"

// provider serves the current snapshot of the topic and counts its calls.
// Like a [statesync.Source], it encodes a revision's data once, when the
// revision is made, and hands the same bytes to every reader.
//
// If blocked is set, calls wait until release is closed (or their context
// ends); entered receives a value, without blocking, each time a call
// starts waiting.
type provider struct {
	cur   atomic.Pointer[statesync.Snapshot]
	calls atomic.Int64

	blocked atomic.Bool
	entered chan struct{} // cap 1
	release chan struct{}
}

func newProvider(rev statesync.Revision) *provider {
	p := &provider{entered: make(chan struct{}, 1), release: make(chan struct{})}
	p.set(rev)
	return p
}

// set makes rev the current revision, with data {"v":rev}.
func (p *provider) set(rev statesync.Revision) {
	data := make([]byte, 0, 32)
	data = append(data, `{"v":`...)
	data = strconv.AppendUint(data, uint64(rev), 10)
	data = append(data, '}')
	p.cur.Store(&statesync.Snapshot{Revision: rev, Data: data})
}

// SharedSnapshots makes the provider a [statesync.SharedProvider], as the
// module's own providers (Source, memsync.Bus, httpsync.Client) are: its
// answers do not depend on who asks, so its consumers share fetches.
func (p *provider) SharedSnapshots() {}

func (p *provider) Snapshot(ctx context.Context, _ string) (statesync.Snapshot, error) {
	p.calls.Add(1)
	if p.blocked.Load() {
		select {
		case p.entered <- struct{}{}:
		default:
		}
		select {
		case <-p.release:
		case <-ctx.Done():
			return statesync.Snapshot{}, ctx.Err()
		}
	}
	return *p.cur.Load(), nil
}

// recorder is an applier that records the last revision applied and the
// number of applies, and signals each apply on a channel of capacity 1
// without blocking. A waiter reads last after each signal, so a signal
// dropped because one is already pending loses nothing.
type recorder struct {
	last    atomic.Uint64
	applies atomic.Int64
	signal  chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) Apply(_ context.Context, s statesync.Snapshot) error {
	r.last.Store(uint64(s.Revision))
	r.applies.Add(1)
	select {
	case r.signal <- struct{}{}:
	default:
	}
	return nil
}

// wake signals r's waiter without an apply, so that it looks at its
// context.
func (r *recorder) wake() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// waitFor waits until r has applied rev or later, or ctx ends. It sleeps on
// a plain receive, as the TypeScript harness awaits one promise: the end of
// ctx wakes it only if the rig registered wake with context.AfterFunc (as
// newSingle does), and a select on ctx.Done() for each wait would cost the
// default mode's cycle about 300 ns of the harness's own.
func (r *recorder) waitFor(ctx context.Context, rev statesync.Revision) error {
	for statesync.Revision(r.last.Load()) < rev {
		<-r.signal
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Refresh modes of the consumers of a scenario: where a refresh that an
// invalidation starts runs (see [statesync.ConsumerOptions.InlineRefresh]).
const (
	RefreshGoroutine = "goroutine" // on the consumer's own goroutine (the default)
	RefreshInline    = "inline"    // on the delivering goroutine
)

// refreshMode names the refresh mode of inline.
func refreshMode(inline bool) string {
	if inline {
		return RefreshInline
	}
	return RefreshGoroutine
}

// single is the rig of the one-handle scenarios: a bus, a provider, a
// recorder and a started consumer.
type single struct {
	bus  *memsync.Bus
	prov *provider
	rec  *recorder
	c    *statesync.Consumer

	stopWake func() bool // unregisters rec.wake from the context
}

// newSingle starts a consumer whose provider stands at rev, with
// InlineRefresh set to inline.
func newSingle(ctx context.Context, rev statesync.Revision, inline bool) (*single, error) {
	s := &single{bus: memsync.New(nil), prov: newProvider(rev), rec: newRecorder()}
	c, err := statesync.NewConsumer(topic, s.bus, s.prov, s.rec, &statesync.ConsumerOptions{InlineRefresh: inline})
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	s.c = c
	s.stopWake = context.AfterFunc(ctx, s.rec.wake)
	return s, nil
}

// close stops the consumer and waits for its goroutines.
func (s *single) close() {
	s.stopWake()
	s.c.Stop()
	_ = s.c.Wait(context.Background()) // returns once the in-flight call, if any, returns
	_ = s.bus.Close()
}

// measure runs fn and returns its duration and the number of heap
// allocations made meanwhile by the whole process (fn's goroutines
// included). It collects garbage first so that the runs start alike.
func measure(fn func() error) (time.Duration, uint64, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	err := fn()
	d := time.Since(t0)
	runtime.ReadMemStats(&after)
	return d, after.Mallocs - before.Mallocs, err
}
