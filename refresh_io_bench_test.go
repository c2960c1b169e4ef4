package statesync_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// slowProvider answers after delay, as a provider doing I/O (an HTTP GET)
// would, and counts its calls.
type slowProvider struct {
	rev   atomic.Uint64
	calls atomic.Int64
	delay time.Duration
}

func (p *slowProvider) Snapshot(ctx context.Context, _ string) (statesync.Snapshot, error) {
	p.calls.Add(1)
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
		return statesync.Snapshot{}, ctx.Err()
	}
	return statesync.Snapshot{Revision: statesync.Revision(p.rev.Load()), Data: []byte(`{}`)}, nil
}

// sharedSlowProvider is a slowProvider that is a SharedProvider.
type sharedSlowProvider struct{ slowProvider }

func (*sharedSlowProvider) SharedSnapshots() {}

// doneApplier counts wg down once it applies target or later.
type doneApplier struct {
	target statesync.Revision
	wg     *sync.WaitGroup
	once   sync.Once
}

func (a *doneApplier) Apply(_ context.Context, s statesync.Snapshot) error {
	if s.Revision >= a.target {
		a.once.Do(a.wg.Done)
	}
	return nil
}

// BenchmarkRefreshIOBound: n consumers on one bus and a provider that
// takes 5 ms (a network round trip); one invalidation each; the figures
// are the time until every consumer applied it (ms-all-applied) and the
// provider calls it took (fetches/op). With a goroutine per refresh the
// fetches run in parallel: about 5 ms for any n, which a design that
// queues refreshes must not make n times slower. The consumers follow n
// topics, or one topic with a plain provider, or one topic with a
// SharedProvider, whose consumers share one fetch.
func BenchmarkRefreshIOBound(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, mode := range []string{"topics", "one-topic", "one-topic-shared"} {
			b.Run(fmt.Sprintf("consumers=%d/%s", n, mode), func(b *testing.B) {
				var total time.Duration
				var fetches int64
				for range b.N {
					bus := memsync.New(nil)
					sp := &sharedSlowProvider{slowProvider{delay: 5 * time.Millisecond}}
					var prov statesync.Provider = &sp.slowProvider
					if mode == "one-topic-shared" {
						prov = sp
					}
					sp.rev.Store(1)
					var wg sync.WaitGroup
					cs := make([]*statesync.Consumer, n)
					var start sync.WaitGroup
					for j := range cs {
						name := "t"
						if mode == "topics" {
							name = fmt.Sprintf("t%d", j)
						}
						c, err := statesync.NewConsumer(name, bus, prov, &doneApplier{target: 2, wg: &wg}, nil)
						if err != nil {
							b.Fatal(err)
						}
						cs[j] = c
						start.Go(func() {
							if err := c.Start(context.Background()); err != nil {
								b.Error(err)
							}
						})
					}
					start.Wait()
					wg.Add(n)
					sp.rev.Store(2)
					sp.calls.Store(0)
					t0 := time.Now()
					if mode == "topics" {
						for _, c := range cs {
							bus.Publish(statesync.Invalidation{Topic: c.Topic(), Revision: 2})
						}
					} else {
						bus.Publish(statesync.Invalidation{Topic: "t", Revision: 2})
					}
					wg.Wait()
					total += time.Since(t0)
					for _, c := range cs {
						c.Stop()
					}
					fetches += sp.calls.Load()
				}
				b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-all-applied")
				b.ReportMetric(float64(fetches)/float64(b.N), "fetches/op")
			})
		}
	}
}
