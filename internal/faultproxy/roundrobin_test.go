package faultproxy

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/poll"
)

func newRoundRobin(t *testing.T, targets ...string) *RoundRobin {
	t.Helper()
	rr, err := NewRoundRobin(targets...)
	if err != nil {
		t.Fatalf("NewRoundRobin: %v", err)
	}
	t.Cleanup(func() {
		if err := rr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rr
}

// served returns the name of the server a new connection to addr reached,
// or "" if it was closed.
func served(t *testing.T, addr string) string {
	t.Helper()
	c := dial(t, addr)
	if err := c.SetReadDeadline(time.Now().Add(poll.Timeout)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(line, "\n")
}

func servedSeq(t *testing.T, addr string, n int) []string {
	t.Helper()
	var got []string
	for range n {
		got = append(got, served(t, addr))
	}
	return got
}

func TestRoundRobin(t *testing.T) {
	a, b, c := newServer(t, "a"), newServer(t, "b"), newServer(t, "c")
	targets := []string{a.addr(), b.addr(), c.addr()}
	rr := newRoundRobin(t, targets...)
	targets[0] = c.addr() // the balancer keeps its own copy
	if !strings.HasPrefix(rr.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q; want 127.0.0.1:port", rr.Addr())
	}
	if got, want := strings.Join(servedSeq(t, rr.Addr(), 7), ","), "a,b,c,a,b,c,a"; got != want {
		t.Errorf("connections went to %s; want %s", got, want)
	}
	poll.Until(t, "7 connections", func() bool { return rr.Conns() == 7 })
	rr.Cut()
	poll.Until(t, "no connection after Cut", func() bool { return rr.Conns() == 0 })
	for _, s := range []*testServer{a, b, c} {
		poll.Until(t, "the servers to see the cut", func() bool { acc, ended := s.counts(); return acc == ended })
	}
}

func TestRoundRobinSkipsDead(t *testing.T) {
	a, b := newServer(t, "a"), newServer(t, "b")
	rr := newRoundRobin(t, a.addr(), deadAddr(t), b.addr())
	// Connection 1 goes to the dead target, so on to the next: b.
	if got, want := strings.Join(servedSeq(t, rr.Addr(), 6), ","), "a,b,b,a,b,b"; got != want {
		t.Errorf("connections went to %s; want %s", got, want)
	}
	rr.SetTargets(deadAddr(t), deadAddr(t))
	if got := served(t, rr.Addr()); got != "" {
		t.Errorf("with every target dead a connection reached %q; want it closed", got)
	}
	rr.SetTargets()
	if got := served(t, rr.Addr()); got != "" {
		t.Errorf("with no target a connection reached %q; want it closed", got)
	}
	targets := []string{b.addr()}
	rr.SetTargets(targets...)
	targets[0] = a.addr() // the balancer keeps its own copy
	if got, want := strings.Join(servedSeq(t, rr.Addr(), 2), ","), "b,b"; got != want {
		t.Errorf("after SetTargets(b) connections went to %s; want %s", got, want)
	}
}
