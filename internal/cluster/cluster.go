// Package cluster runs several statesync daemons on one shared store, for
// the multi-daemon tests of every shared store (PostgreSQL, and the stores
// that follow it).
//
// Each daemon reaches the store through a fault proxy of its own
// (internal/faultproxy), so a test can cut, stall or delay one daemon's
// store connections, feed included, while the others carry on. A
// round-robin proxy in front of the daemons stands for a load balancer.
// Followers are statesync consumers over HTTP that record every snapshot
// they apply, and check as they go that no revision goes back within an
// epoch.
package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/faultproxy"
	"github.com/statesync-go/statesync/internal/poll"
)

// A Backend is a shared store the rig runs daemons on.
type Backend struct {
	// Name names the backend in test names.
	Name string
	// Target is the host:port of the store's server: each daemon's fault
	// proxy forwards to it. Empty for a store with no server (bbolt,
	// memory): its daemons have no fault proxy, and StoreURL gets "".
	Target string
	// StoreURL returns the --store URL of a daemon that reaches the
	// server at addr (host:port, its fault proxy).
	StoreURL func(addr string) string
}

// Options configures a [Cluster].
type Options struct {
	// Daemons is the number of daemons; 0 means 3.
	Daemons int
	// Edit, if not nil, changes each daemon's configuration.
	Edit func(i int, cfg *daemon.Config)
}

// A Cluster is several daemons on one store and a load balancer in front.
type Cluster struct {
	Nodes []*Node
	// LB balances connections over the daemons, round-robin.
	LB *faultproxy.RoundRobin
	b  Backend
}

// A Node is one daemon of a Cluster.
type Node struct {
	Name string
	// Store is the fault proxy between this daemon and the store (nil for
	// a store with no server).
	Store *faultproxy.Proxy
	// URL is the daemon's base URL (http://127.0.0.1:port).
	URL string
	// Client is an httpsync client of this daemon alone.
	Client *httpsync.Client

	cfg daemon.Config
	mu  sync.Mutex
	srv *daemon.Server // nil while stopped
}

// Start starts the daemons of a cluster on backend b; the test's cleanup
// stops them.
func Start(t testing.TB, b Backend, opts *Options) *Cluster {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Daemons <= 0 {
		o.Daemons = 3
	}
	c := &Cluster{b: b}
	addrs := make([]string, 0, o.Daemons)
	for i := range o.Daemons {
		n := &Node{Name: string(rune('A' + i))}
		storeAddr := ""
		if b.Target != "" {
			p, err := faultproxy.New(b.Target)
			if err != nil {
				t.Fatalf("cluster: fault proxy: %v", err)
			}
			t.Cleanup(func() { _ = p.Close() })
			n.Store, storeAddr = p, p.Addr()
		}
		cfg := daemon.DefaultConfig()
		cfg.Addr = "127.0.0.1:0"
		cfg.Store = b.StoreURL(storeAddr)
		cfg.ShutdownTimeout = 5 * time.Second
		if o.Edit != nil {
			o.Edit(i, &cfg)
		}
		n.cfg = cfg
		n.start(t)
		n.cfg.Addr = n.srv.Addr().String() // a restart binds the same port
		n.URL = "http://" + n.cfg.Addr
		cl, err := httpsync.NewClient(n.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		n.Client = cl
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.cfg.Addr)
	}
	lb, err := faultproxy.NewRoundRobin(addrs...)
	if err != nil {
		t.Fatalf("cluster: load balancer: %v", err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	c.LB = lb
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.Stop(t)
		}
	})
	return c
}

// LBURL is the base URL of the load balancer.
func (c *Cluster) LBURL() string { return "http://" + c.LB.Addr() }

func (n *Node) start(t testing.TB) {
	t.Helper()
	srv, err := daemon.Start(n.cfg, nil)
	if err != nil {
		t.Fatalf("cluster: daemon %s: %v", n.Name, err)
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
}

// Stop shuts daemon n down gracefully; it is idempotent.
func (n *Node) Stop(t testing.TB) {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("cluster: daemon %s shutdown: %v", n.Name, err)
	}
}

// Restart starts daemon n again on the same port after Stop.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Stop(t)
	n.start(t)
}

// Server returns the running daemon, or nil.
func (n *Node) Server() *daemon.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Metrics returns the daemon's /metrics samples, each series name (with
// its labels, as exposed) mapped to its value.
func (n *Node) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatalf("cluster: %s /metrics: %v", n.Name, err)
	}
	defer resp.Body.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("cluster: %s /metrics: %v", n.Name, err)
	}
	return out
}

// Metric returns one sample of the daemon's /metrics (0 if absent).
func (n *Node) Metric(t testing.TB, series string) float64 {
	t.Helper()
	return n.Metrics(t)[series]
}

// Health returns the status code and body of the daemon's /healthz.
func (n *Node) Health() (int, string, error) {
	resp, err := http.Get(n.URL + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// A Follower is a consumer of one topic over HTTP that records the
// snapshots it applies and fails the test if a revision goes back within
// an epoch.
type Follower struct {
	Topic string
	t     testing.TB
	c     *statesync.Consumer

	mu      sync.Mutex
	last    statesync.Snapshot
	applied int
}

// Follow starts a Follower of topic that subscribes through sub and
// fetches through prov (the same client, or two clients, e.g. of two
// daemons); the test's cleanup stops it.
func Follow(t testing.TB, topic string, sub statesync.Subscriber, prov statesync.Provider) *Follower {
	t.Helper()
	f := &Follower{Topic: topic, t: t}
	c, err := statesync.NewConsumer(topic, sub, prov, statesync.ApplierFunc(f.apply), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("cluster: follower of %s: %v", topic, err)
	}
	t.Cleanup(c.Stop)
	return f
}

func (f *Follower) apply(_ context.Context, s statesync.Snapshot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applied > 0 && s.Epoch == f.last.Epoch && s.Revision < f.last.Revision {
		f.t.Errorf("cluster: follower of %s applied revision %d after %d in epoch %s", f.Topic, s.Revision, f.last.Revision, s.Epoch)
	}
	f.last = s
	f.applied++
	return nil
}

// Last returns the last snapshot applied.
func (f *Follower) Last() statesync.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// Stop stops the follower.
func (f *Follower) Stop() { f.c.Stop() }

// Reaches reports whether the follower has applied a snapshot at least as
// new as want (the same epoch, if want has one, and at least its
// revision).
func (f *Follower) Reaches(want statesync.Snapshot) bool {
	got := f.Last()
	if want.Epoch != "" && got.Epoch != want.Epoch {
		return false
	}
	return got.Revision >= want.Revision
}

// WaitAll waits until every follower reaches want[its topic], or fails
// the test after timeout with the laggards; it returns how long it took.
func WaitAll(t testing.TB, timeout time.Duration, fs []*Follower, want map[string]statesync.Snapshot) time.Duration {
	t.Helper()
	start := time.Now()
	poll.Within(t, timeout, "followers converge", func() (bool, string) {
		var late []string
		for _, f := range fs {
			if w := want[f.Topic]; !f.Reaches(w) {
				late = append(late, fmt.Sprintf("%s at %d/%s, want %d/%s", f.Topic, f.Last().Revision, f.Last().Epoch, w.Revision, w.Epoch))
				if len(late) == 10 {
					break
				}
			}
		}
		return len(late) == 0, strings.Join(late, "; ")
	})
	return time.Since(start)
}

// JSON returns v as JSON, for writes.
func JSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
