package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/cluster"
	"github.com/statesync-go/statesync/internal/poll"
)

// A backend of the rig: a shared store the tests run on, with the faults
// that only its server can produce.
type backend struct {
	cluster.Backend
	// losses are the ways the store can be made to lose its history.
	losses []historyLoss
	// crashNewEpoch is set for a store whose epoch changes when its server
	// restarts (Redis: a new replication id), even if it lost nothing.
	crashNewEpoch bool
}

// A historyLoss makes a store lose its history. prepare is called while
// the store holds what is to be lost and returns the function that loses
// it (e.g. takes a dump, and returns the restore of that dump).
type historyLoss struct {
	name    string
	prepare func(t testing.TB) (lose func(t testing.TB))
}

// backends are the shared stores the tests run on, one subtest each.
var backends = []struct {
	name string
	make func(t testing.TB) backend
	// crashable starts a server of the store of the test's own, and
	// returns the backend on it and a function that crashes the server
	// (no clean shutdown) and starts it again on the same data.
	crashable func(t testing.TB) (backend, func(t testing.TB))
}{
	{"postgres", postgresBackend, postgresCrashable},
	{"nats", natsBackend, natsCrashable},
	{"redis", redisBackend, redisCrashable},
}

func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { f(t, be.make(t)) })
	}
}

// start starts a cluster of 3 daemons on b.
func start(t *testing.T, b backend) *cluster.Cluster {
	t.Helper()
	return cluster.Start(t, b.Backend, nil)
}

// write puts v on topic through cl and returns the snapshot acknowledged.
func write(t testing.TB, cl *httpsync.Client, topic string, v any) statesync.Snapshot {
	t.Helper()
	snap, err := cl.Put(context.Background(), topic, cluster.JSON(v))
	if err != nil {
		t.Fatalf("Put %s: %v", topic, err)
	}
	return snap
}

// A write on daemon A reaches a consumer on daemon C, every time, and
// every daemon reports the same epoch.
func TestCrossDaemonDelivery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		a, cn := c.Nodes[0], c.Nodes[2]
		f := cluster.Follow(t, "cross", cn.Client, cn.Client)
		var last statesync.Snapshot
		for i := range 20 {
			last = write(t, a.Client, "cross", i)
			cluster.WaitAll(t, 5*time.Second, []*cluster.Follower{f}, map[string]statesync.Snapshot{"cross": last})
		}
		for _, n := range c.Nodes {
			snap, err := n.Client.Snapshot(context.Background(), "cross")
			if err != nil {
				t.Fatal(err)
			}
			if snap.Epoch != last.Epoch || snap.Revision != last.Revision {
				t.Errorf("daemon %s: %d/%s, want %d/%s", n.Name, snap.Revision, snap.Epoch, last.Revision, last.Epoch)
			}
		}
	})
}

// 3 daemons × 8 goroutines × 50 compare-and-set increments of one counter
// end at exactly 1,200: no update is lost across daemons.
func TestNoLostUpdate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		const goroutines, increments = 8, 50
		ctx := context.Background()
		var wg sync.WaitGroup
		var conflicts atomic.Int64
		for _, n := range c.Nodes {
			for range goroutines {
				wg.Go(func() {
					for range increments {
						for {
							cur, err := n.Client.Snapshot(ctx, "counter")
							if err != nil {
								t.Error(err)
								return
							}
							var v int
							if cur.Revision > 0 {
								if err := json.Unmarshal(cur.Data, &v); err != nil {
									t.Error(err)
									return
								}
							}
							_, err = n.Client.PutIf(ctx, "counter", cluster.JSON(v+1), cur.Revision)
							if err == nil {
								break
							}
							if !errors.Is(err, statesync.ErrConflict) {
								t.Error(err)
								return
							}
							conflicts.Add(1)
						}
					}
				})
			}
		}
		wg.Wait()
		snap, err := c.Nodes[0].Client.Snapshot(ctx, "counter")
		if err != nil {
			t.Fatal(err)
		}
		want := len(c.Nodes) * goroutines * increments
		if string(snap.Data) != strconv.Itoa(want) {
			t.Fatalf("counter = %s, want %d", snap.Data, want)
		}
		t.Logf("%d increments with %d conflicts", want, conflicts.Load())
	})
}

// announcedChecker follows topics on one daemon over a raw event stream
// and GETs them from the same daemon meanwhile: a GET must never return a
// revision older than one the daemon announced before the GET was sent.
type announcedChecker struct {
	t      *testing.T
	base   string
	topics []string

	mu        sync.Mutex
	announced map[string]statesync.Revision
	epoch     string
	gets      int
}

func (a *announcedChecker) invalidate(inv statesync.Invalidation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if inv.Epoch != a.epoch {
		a.epoch = inv.Epoch
		clear(a.announced)
	}
	if inv.Revision > a.announced[inv.Topic] {
		a.announced[inv.Topic] = inv.Revision
	}
}

// checked returns how many GETs were checked.
func (a *announcedChecker) checked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gets
}

func (a *announcedChecker) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		topic := a.topics[i%len(a.topics)]
		a.mu.Lock()
		floor, epoch := a.announced[topic], a.epoch
		a.mu.Unlock()
		req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/v1/topics/"+url.PathEscape(topic), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // the daemon's store is cut: errors are fine, old data is not
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			continue
		}
		snap, err := statesync.DecodeSnapshot(body)
		if err != nil {
			a.t.Errorf("GET %s: %v", topic, err)
			return
		}
		a.mu.Lock()
		a.gets++
		a.mu.Unlock()
		if snap.Epoch == epoch && snap.Revision < floor {
			a.t.Errorf("GET %s on the daemon returned revision %d after it announced %d", topic, snap.Revision, floor)
		}
	}
}

// Daemon B's store connections, feed included, are cut for 5 s while
// daemon A writes to 100 topics: B's consumers converge within 2 s of its
// reconnect, and no GET on B returns a revision older than one it
// announced.
func TestFeedCut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		a, bn := c.Nodes[0], c.Nodes[1]
		const n = 100
		topics := make([]string, n)
		want := make(map[string]statesync.Snapshot, n)
		for i := range topics {
			topics[i] = fmt.Sprintf("cut-%03d", i)
			want[topics[i]] = write(t, a.Client, topics[i], 0)
		}
		fs := make([]*cluster.Follower, n)
		for i, topic := range topics {
			fs[i] = cluster.Follow(t, topic, bn.Client, bn.Client)
		}
		cluster.WaitAll(t, 10*time.Second, fs, want)

		checker := &announcedChecker{t: t, base: bn.URL, topics: topics, announced: map[string]statesync.Revision{}}
		watch, err := httpsync.NewClient(bn.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer watch.Close()
		for _, topic := range topics {
			stop, err := watch.Subscribe(context.Background(), topic, invalidationFunc(checker.invalidate))
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { checker.run(ctx) })
		defer func() { cancel(); wg.Wait() }()

		reconnects := bn.Metric(t, "statesync_store_feed_reconnects_total")
		bn.Store.Block(true)
		bn.Store.Cut()
		cutUntil := time.Now().Add(5 * time.Second)
		for i := 1; time.Now().Before(cutUntil); i++ {
			for _, topic := range topics {
				want[topic] = write(t, a.Client, topic, i)
			}
			time.Sleep(50 * time.Millisecond)
		}
		bn.Store.Block(false)
		poll.Within(t, 10*time.Second, "daemon B's feed reconnects", func() (bool, string) {
			m := bn.Metrics(t)
			r, up := m["statesync_store_feed_reconnects_total"], m["statesync_store_feed_connected"]
			return r > reconnects && up == 1, fmt.Sprintf("reconnects %v, connected %v", r, up)
		})
		took := cluster.WaitAll(t, 2*time.Second, fs, want)
		t.Logf("B's consumers converged %v after its feed reconnected; %d checked GETs", took, checker.checked())
	})
}

// A feed that stays connected but delivers nothing is detected within
// 15 s: the daemon reports itself not ready and reconnects.
func TestSilentFeed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		bn := c.Nodes[1]
		write(t, c.Nodes[0].Client, "silent", 1)
		reconnects := bn.Metric(t, "statesync_store_feed_reconnects_total")
		bn.Store.Pause(true)
		paused := time.Now()
		poll.Within(t, 15*time.Second, "daemon B finds its silent feed", func() (bool, string) {
			code, body, err := bn.Health()
			return err == nil && code == http.StatusServiceUnavailable, fmt.Sprintf("%d %s %v", code, body, err)
		})
		t.Logf("silent feed detected after %v", time.Since(paused))
		bn.Store.Pause(false)
		bn.Store.Cut() // the stalled connections are of no more use
		poll.Within(t, 15*time.Second, "daemon B's feed is back", func() (bool, string) {
			m := bn.Metrics(t)
			code, _, _ := bn.Health()
			return m["statesync_store_feed_reconnects_total"] > reconnects && code == 200,
				fmt.Sprintf("reconnects %v, healthz %d", m["statesync_store_feed_reconnects_total"], code)
		})
		f := cluster.Follow(t, "silent", bn.Client, bn.Client)
		last := write(t, c.Nodes[0].Client, "silent", 2)
		cluster.WaitAll(t, 5*time.Second, []*cluster.Follower{f}, map[string]statesync.Snapshot{"silent": last})
	})
}

// A consumer that learns of writes from daemon A but fetches from daemon
// B, whose store connections lag 500 ms, is never left stale: it asks for
// at least the revision it learned of.
func TestLaggingFeed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		a, bn := c.Nodes[0], c.Nodes[1]
		write(t, a.Client, "lag", 0)
		f := cluster.Follow(t, "lag", a.Client, bn.Client)
		bn.Store.Delay(500 * time.Millisecond)
		var last statesync.Snapshot
		for i := range 10 {
			last = write(t, a.Client, "lag", i+1)
			time.Sleep(30 * time.Millisecond)
		}
		cluster.WaitAll(t, 10*time.Second, []*cluster.Follower{f}, map[string]statesync.Snapshot{"lag": last})
		got := f.Last()
		if string(got.Data) != "10" {
			t.Fatalf("follower holds %s at %d, want 10", got.Data, got.Revision)
		}
	})
}

// 1,000 streams on one topic spread over the daemons and one write: each
// daemon reads the store at most once for that revision.
func TestOneStoreReadPerRevision(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		first := write(t, c.Nodes[0].Client, "fan", 0)
		const streams = 999
		fs := make([]*cluster.Follower, 0, streams)
		for i := range streams {
			n := c.Nodes[i%len(c.Nodes)]
			cl, err := httpsync.NewClient(n.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cl.Close() })
			fs = append(fs, cluster.Follow(t, "fan", cl, cl))
		}
		cluster.WaitAll(t, 30*time.Second, fs, map[string]statesync.Snapshot{"fan": first})
		before := make([]float64, len(c.Nodes))
		for i, n := range c.Nodes {
			before[i] = n.Metric(t, "statesync_source_store_reads_total")
		}
		last := write(t, c.Nodes[0].Client, "fan", 1)
		cluster.WaitAll(t, 30*time.Second, fs, map[string]statesync.Snapshot{"fan": last})
		for i, n := range c.Nodes {
			reads := n.Metric(t, "statesync_source_store_reads_total") - before[i]
			t.Logf("daemon %s: %v store reads for %d streams", n.Name, reads, streams/len(c.Nodes))
			if reads > 1 {
				t.Errorf("daemon %s read the store %v times for one revision", n.Name, reads)
			}
		}
	})
}
