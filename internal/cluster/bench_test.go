package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/cluster"
	"github.com/statesync-go/statesync/internal/poll"
)

// benchBackends are the stores the benchmarks compare: bbolt, one daemon
// on its file, and the shared stores, on which several daemons run.
var benchBackends = []struct {
	name   string
	make   func(t testing.TB) backend
	shared bool
}{
	{"bbolt", boltBackend, false},
	{"postgres", postgresBackend, true},
	{"nats", natsBackend, true},
	{"redis", redisBackend, true},
}

// boltBackend is a bbolt file of its own: one daemon only.
func boltBackend(t testing.TB) backend {
	dir := t.TempDir()
	return backend{Backend: cluster.Backend{Name: "bbolt", StoreURL: func(string) string { return "bbolt:" + dir }}}
}

// forEachBench runs f for each of benchBackends, as a sub-benchmark.
func forEachBench(b *testing.B, f func(b *testing.B, be backend, shared bool)) {
	for _, bb := range benchBackends {
		b.Run(bb.name, func(b *testing.B) { f(b, bb.make(b), bb.shared) })
	}
}

// BenchmarkCrossDaemonLatency writes on daemon A at 100 writes/s and
// measures the time until a consumer on daemon C has applied each write
// (write sent to applied, so it includes the write's own round trip):
// reported as p50-ms and p99-ms. Run it with -benchtime=1000x for the
// issue's 1,000 writes.
//
// On bbolt, which one daemon holds, the consumer is on the writer's
// daemon. Also reported: reads/rev, the store reads the consumer's daemon
// made per revision written.
func BenchmarkCrossDaemonLatency(b *testing.B) {
	forEachBench(b, benchCrossDaemonLatency)
}

func benchCrossDaemonLatency(b *testing.B, be backend, shared bool) {
	opts := &cluster.Options{Daemons: 3}
	if !shared {
		opts.Daemons = 1
	}
	c := cluster.Start(b, be.Backend, opts)
	a, cn := c.Nodes[0], c.Nodes[len(c.Nodes)-1]
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
	reads := cn.Metric(b, "statesync_source_store_reads_total")
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
	b.ReportMetric((cn.Metric(b, "statesync_source_store_reads_total")-reads)/float64(b.N), "reads/rev")
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
	forEachBench(b, benchWrites)
}

func benchWrites(b *testing.B, be backend, shared bool) {
	counts := []int{1, 3}
	if !shared {
		counts = counts[:1]
	}
	c := cluster.Start(b, be.Backend, &cluster.Options{Daemons: counts[len(counts)-1]})
	for _, daemons := range counts {
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

// BenchmarkDaemonMemory runs a daemon as a process of its own on each
// store, opens 1,000 event streams on it (100 topics, each written once
// and delivered), and reports the process's resident memory (rss-MB),
// its Go heap in use (heap-MB) and the growth of the heap per stream
// (KB/stream) from the idle daemon's, as its /metrics tell.
func BenchmarkDaemonMemory(b *testing.B) {
	forEachBench(b, func(b *testing.B, be backend, _ bool) {
		for range b.N {
			benchDaemonMemory(b, be)
		}
	})
}

func benchDaemonMemory(b *testing.B, be backend) {
	const streams, topics = 1000, 100
	addr := freeAddr(b)
	cmd := exec.Command(daemonBinary(b), "serve", "--addr", addr, "--store", be.StoreURL(be.Target), "--log-level", "warn", "--max-conns-per-ip", "0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	node := &cluster.Node{Name: "memory", URL: "http://" + addr}
	poll.Until(b, "the daemon serves", func() bool {
		code, _, err := node.Health()
		return err == nil && code == 200
	})
	idle := node.Metric(b, "go_memstats_heap_inuse_bytes")
	writer, err := httpsync.NewClient(node.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close()
	var delivered atomic.Int64
	ctx := context.Background()
	for i := range streams {
		cl, err := httpsync.NewClient(node.URL, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		topic := fmt.Sprintf("memory-%03d", i%topics)
		stop, err := cl.Subscribe(ctx, topic, invalidationFunc(func(inv statesync.Invalidation) {
			if inv.Revision > 0 {
				delivered.Add(1)
			}
		}))
		if err != nil {
			b.Fatal(err)
		}
		defer stop()
	}
	for i := range topics {
		if _, err := writer.Put(ctx, fmt.Sprintf("memory-%03d", i), cluster.JSON(map[string]any{"i": i, "pad": strings.Repeat("x", 100)})); err != nil {
			b.Fatal(err)
		}
	}
	poll.Until(b, "every stream hears its topic's write", func() bool { return delivered.Load() >= streams })
	m := node.Metrics(b)
	b.ReportMetric(m["process_resident_memory_bytes"]/(1<<20), "rss-MB")
	b.ReportMetric(m["go_memstats_heap_inuse_bytes"]/(1<<20), "heap-MB")
	b.ReportMetric((m["go_memstats_heap_inuse_bytes"]-idle)/streams/1024, "KB/stream")
	b.ReportMetric(0, "ns/op")
}
