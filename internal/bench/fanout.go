package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// FanoutResult is the outcome of one fanout run.
type FanoutResult struct {
	Name             string  `json:"name"`
	Refresh          string  `json:"refresh"` // RefreshGoroutine or RefreshInline
	Windows          int     `json:"windows"`
	Updates          int     `json:"updates"`
	Ms               float64 `json:"ms"`
	Fetches          int64   `json:"fetches"`
	FetchesPerWindow float64 `json:"fetches_per_window"`
}

func (r FanoutResult) rank() float64 { return r.Ms }

// Fanout runs fanout: windows handles are started on the topic at revision
// 1; then updates invalidations with increasing revisions are delivered to
// all of them, yielding to the scheduler every 10 updates, and the run
// waits until every handle has applied the final revision. ms is the time
// from the first update to the last handle's apply of the final revision;
// fetches counts the provider calls made after the start, including those
// of refreshes that were queued when the last apply happened (they are
// awaited and count). The run fails if a handle does not end at the final
// revision. The provider is a statesync.SharedProvider, as the module's
// own are, so the handles share fetches: a refresh takes the snapshot
// another handle fetched when it is new enough. With inline, the handles
// have InlineRefresh set: each update refreshes every handle inside
// Publish, one after another; the first fetches, the others take its
// snapshot, so fetches is the number of updates.
func Fanout(ctx context.Context, windows, updates int, inline bool) (FanoutResult, error) {
	f, err := newFanout(ctx, windows, updates, inline)
	if err != nil {
		return FanoutResult{}, err
	}
	defer f.close()
	runtime.GC()
	d, err := f.deliver(ctx)
	if err != nil {
		return FanoutResult{}, err
	}
	if err := f.settle(ctx); err != nil {
		return FanoutResult{}, err
	}
	fetches := f.prov.calls.Load()
	return FanoutResult{
		Name:             NameFanout,
		Refresh:          refreshMode(inline),
		Windows:          windows,
		Updates:          updates,
		Ms:               float64(d.Microseconds()) / 1000,
		Fetches:          fetches,
		FetchesPerWindow: float64(fetches) / float64(windows),
	}, nil
}

// fanoutRig is a bus with many started handles on the topic.
type fanoutRig struct {
	bus     *memsync.Bus
	prov    *provider
	cs      []*statesync.Consumer
	apps    []*finalApplier
	updates int
	final   statesync.Revision

	remaining atomic.Int64  // handles yet to apply final
	done      chan struct{} // closed when remaining reaches 0
}

// finalApplier records the last revision applied to one handle and counts
// the handle down when it applies the final revision.
type finalApplier struct {
	rig  *fanoutRig
	last atomic.Uint64
}

func (a *finalApplier) Apply(_ context.Context, s statesync.Snapshot) error {
	a.last.Store(uint64(s.Revision))
	// Applied revisions strictly increase per handle, so each handle
	// counts down once.
	if s.Revision == a.rig.final && a.rig.remaining.Add(-1) == 0 {
		close(a.rig.done)
	}
	return nil
}

// newFanout starts windows handles at revision 1, ready for updates
// invalidations, with InlineRefresh set to inline, and resets the
// provider's call count.
func newFanout(ctx context.Context, windows, updates int, inline bool) (*fanoutRig, error) {
	f := &fanoutRig{
		bus:     memsync.New(nil),
		prov:    newProvider(1),
		updates: updates,
		final:   statesync.Revision(1 + updates),
		done:    make(chan struct{}),
	}
	f.remaining.Store(int64(windows))
	for range windows {
		a := &finalApplier{rig: f}
		c, err := statesync.NewConsumer(topic, f.bus, f.prov, a, &statesync.ConsumerOptions{InlineRefresh: inline})
		if err == nil {
			err = c.Start(ctx)
		}
		if err != nil {
			f.close()
			return nil, err
		}
		f.cs = append(f.cs, c)
		f.apps = append(f.apps, a)
	}
	f.prov.calls.Store(0)
	return f, nil
}

// deliver publishes the updates and waits until every handle has applied
// the final revision. It returns the time that took.
func (f *fanoutRig) deliver(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	for i := 1; i <= f.updates; i++ {
		rev := statesync.Revision(1 + i)
		f.prov.set(rev)
		f.bus.Publish(statesync.Invalidation{Topic: topic, Revision: rev})
		if i%10 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			runtime.Gosched()
		}
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return time.Since(t0), nil
}

// settle waits until every handle is idle (queued refreshes done) and
// checks that each stands at the final revision.
func (f *fanoutRig) settle(ctx context.Context) error {
	for i, c := range f.cs {
		if err := c.Wait(ctx); err != nil {
			return err
		}
		if got := c.Revision(); got != f.final {
			return fmt.Errorf("handle %d of %d at revision %d after the updates; want %d", i, len(f.cs), got, f.final)
		}
	}
	return nil
}

// close stops every handle and waits for their goroutines.
func (f *fanoutRig) close() {
	for _, c := range f.cs {
		c.Stop()
	}
	for _, c := range f.cs {
		_ = c.Wait(context.Background())
	}
	_ = f.bus.Close()
}
