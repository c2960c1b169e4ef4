package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/cluster"
)

// benchBackend is the first configured backend, for benchmarks.
func benchBackend(b *testing.B) backend {
	return postgresBackend(b)
}

// BenchmarkCrossDaemonLatency writes on daemon A at 100 writes/s and
// measures the time until a consumer on daemon C has applied each write
// (write sent to applied, so it includes the write's own round trip):
// reported as p50-ms and p99-ms. Run it with -benchtime=1000x for the
// issue's 1,000 writes.
func BenchmarkCrossDaemonLatency(b *testing.B) {
	be := benchBackend(b)
	c := cluster.Start(b, be.Backend, nil)
	a, cn := c.Nodes[0], c.Nodes[2]
	_, err := a.Client.Put(context.Background(), "latency", cluster.JSON(0))
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	sent := map[statesync.Revision]time.Time{}
	var lat []time.Duration
	applied := make(chan struct{}, 1)
	cons, err := statesync.NewConsumer("latency", cn.Client, cn.Client, statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
		now := time.Now()
		mu.Lock()
		for rev, at := range sent {
			if rev <= s.Revision {
				lat = append(lat, now.Sub(at))
				delete(sent, rev)
			}
		}
		mu.Unlock()
		select {
		case applied <- struct{}{}:
		default:
		}
		return nil
	}), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := cons.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer cons.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		start := time.Now()
		snap, err := a.Client.Put(context.Background(), "latency", cluster.JSON(i+1))
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		if cons.Revision() < snap.Revision {
			sent[snap.Revision] = start
		} else {
			lat = append(lat, time.Since(start))
		}
		mu.Unlock()
	}
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		left := len(sent)
		mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-applied:
		case <-deadline:
			b.Fatalf("%d writes never applied", left)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkWrites measures writes/s through the daemons' HTTP API with 1
// and 8 concurrent writers (each on its own topic), through one daemon and
// spread over three.
func BenchmarkWrites(b *testing.B) {
	be := benchBackend(b)
	c := cluster.Start(b, be.Backend, nil)
	for _, daemons := range []int{1, 3} {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("daemons=%d/writers=%d", daemons, writers), func(b *testing.B) {
				var next atomic.Int64
				var wg sync.WaitGroup
				var errs atomic.Int64
				start := time.Now()
				for w := range writers {
					n := c.Nodes[w%daemons]
					topic := fmt.Sprintf("bench-%d", w)
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := n.Client.Put(context.Background(), topic, cluster.JSON(w)); err != nil {
								errs.Add(1)
							}
						}
					})
				}
				wg.Wait()
				if errs.Load() > 0 {
					b.Fatalf("%d writes failed", errs.Load())
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			})
		}
	}
}
