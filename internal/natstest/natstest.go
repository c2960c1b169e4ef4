// Package natstest starts embedded NATS servers with JetStream for the
// module's tests: one node ([NewServer]) or a cluster ([NewCluster]) whose
// nodes can be shut down and restarted and whose stream leaders can be
// found. The servers run in the test's process, listen on 127.0.0.1 on
// ports the system picks, keep their JetStream data in t.TempDir(), and are
// shut down at the test's cleanup. They need no outside service.
package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/statesync-go/statesync/internal/poll"
)

// startTimeout bounds the start of one server.
const startTimeout = 20 * time.Second

// Account is the account of the clients of these servers, which run
// without authentication: the server's global account.
const Account = "$G"

// NewServer starts a single NATS server with JetStream on and returns its
// client URL (nats://127.0.0.1:port). It is shut down at t's cleanup.
func NewServer(t testing.TB) string {
	t.Helper()
	return NewServerWith(t, nil)
}

// NewServerWith is [NewServer] with the server's options changed by
// configure (authentication, max_payload...) before it starts.
func NewServerWith(t testing.TB, configure func(*server.Options)) string {
	t.Helper()
	o := &server.Options{
		ServerName: "single",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
	if configure != nil {
		configure(o)
	}
	s := start(t, o)
	t.Cleanup(func() { shutdown(s) })
	return s.ClientURL()
}

func start(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(startTimeout) {
		shutdown(s)
		t.Fatalf("natstest: server %s not ready within %v", o.ServerName, startTimeout)
	}
	return s
}

func shutdown(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// A Cluster is a JetStream cluster of embedded servers. Its methods are
// safe for concurrent use.
type Cluster struct {
	t    testing.TB
	name string

	mu    sync.Mutex // protects nodes
	nodes []*node
}

type node struct {
	opts *server.Options // with the ports it first got, for a restart
	srv  *server.Server  // nil while shut down
}

// NewCluster starts a JetStream cluster of n servers (n >= 1; 3 for
// replicated streams) and waits until it has a meta leader. The servers
// are shut down at t's cleanup.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: NewCluster(%d): want at least one server", n)
	}
	c := &Cluster{t: t, name: "statesync-test"}
	// The store directories first: cleanups run last-in first-out, and
	// the servers must be down before their directories are removed.
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	t.Cleanup(c.shutdownAll)
	// A JetStream cluster wants its routes configured from the start: the
	// cluster ports are chosen first.
	ports := freePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   dirs[i],
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s := start(t, o)
		// Keep the client port it got, so that a restart listens where
		// the clients look for it.
		o.Port = s.Addr().(*net.TCPAddr).Port
		c.mu.Lock()
		c.nodes = append(c.nodes, &node{opts: o, srv: s})
		c.mu.Unlock()
	}
	c.WaitLeader()
	return c
}

// freePorts returns n TCP ports of 127.0.0.1 that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (c *Cluster) shutdownAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		if nd.srv != nil {
			shutdown(nd.srv)
			nd.srv = nil
		}
	}
}

// Size returns the number of servers, running or not.
func (c *Cluster) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// URL returns the client URLs of every server, running or not, joined by
// commas, as a NATS client takes them: a client reconnects to the others
// when one is shut down.
func (c *Cluster) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port))
	}
	return strings.Join(urls, ",")
}

// NodeURL returns the client URL of server i.
func (c *Cluster) NodeURL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].opts.Port)
}

// Server returns server i, nil while it is shut down.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Shutdown stops server i (as a crash of its process would, less the loss
// of unsynced writes: its store directory is kept) and waits until it is
// down. Shutting down a server that is down does nothing.
func (c *Cluster) Shutdown(i int) {
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s != nil {
		shutdown(s)
	}
}

// Restart starts server i again, on its ports and store directory, after
// [Cluster.Shutdown], and waits until its JetStream is current with the
// cluster. A request it gets in the next moments may still go unanswered
// (clients time out and retry). Restarting a running server does
// nothing.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if s := c.Launch(i); s != nil {
		poll.Until(c.t, fmt.Sprintf("natstest: restarted server n%d current with the cluster", i), s.JetStreamIsCurrent)
	}
}

// Launch starts server i again, as [Cluster.Restart] does, without waiting
// for the cluster: it returns once the server takes connections, as
// servers started together with their clients would, and returns the
// server, or nil if it was running.
func (c *Cluster) Launch(i int) *server.Server {
	c.t.Helper()
	c.mu.Lock()
	nd := c.nodes[i]
	if nd.srv != nil {
		c.mu.Unlock()
		return nil
	}
	o := nd.opts.Clone()
	c.mu.Unlock()
	s := start(c.t, o)
	c.mu.Lock()
	nd.srv = s
	c.mu.Unlock()
	return s
}

// StreamLeader returns the index of the server leading stream (of
// [Account]), or -1 if no running server leads it now.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.srv != nil && nd.srv.JetStreamIsStreamLeader(Account, stream) {
			return i
		}
	}
	return -1
}

// MetaLeader returns the index of the JetStream meta leader, or -1 if no
// running server is it now.
func (c *Cluster) MetaLeader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.srv != nil && nd.srv.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits until the cluster has a JetStream meta leader that
// sees every running server online with JetStream (so that it can place
// the replicas of a new stream on them), and fails the test if that takes
// longer than [poll.Timeout].
func (c *Cluster) WaitLeader() {
	c.t.Helper()
	poll.UntilState(c.t, "natstest: a JetStream meta leader seeing every running server", func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		running := 0
		for _, nd := range c.nodes {
			if nd.srv != nil {
				running++
			}
		}
		for _, nd := range c.nodes {
			if nd.srv != nil && nd.srv.JetStreamIsLeader() {
				peers := nd.srv.JetStreamClusterPeers()
				return len(peers) >= running, fmt.Sprintf("the leader sees %q of %d servers", peers, running)
			}
		}
		return false, "no meta leader"
	})
}

// WaitStreamLeader waits until some running server leads stream, and
// returns its index; it fails the test if that takes longer than [poll.Timeout].
func (c *Cluster) WaitStreamLeader(stream string) int {
	c.t.Helper()
	leader := -1
	poll.Until(c.t, "natstest: a leader of stream "+stream, func() bool { leader = c.StreamLeader(stream); return leader >= 0 })
	return leader
}
