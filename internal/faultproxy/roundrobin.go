package faultproxy

import (
	"context"
	"errors"
	"net"
	"sync"
)

// A RoundRobin is a TCP load balancer for tests: it forwards each
// connection it accepts to the next of its targets, in turn, skipping the
// targets that refuse the connection. Its methods are safe for concurrent
// use.
type RoundRobin struct {
	p *Proxy

	mu      sync.Mutex // protects targets and next
	targets []string
	next    int
}

// errNoTarget is why a connection is closed when every target refused it.
var errNoTarget = errors.New("faultproxy: no target accepted the connection")

// NewRoundRobin returns a RoundRobin listening on 127.0.0.1 on a free port
// in front of targets (host:port each). Connection i (counting from 0) goes
// to target i mod len(targets) if it accepts, else to the next one that
// does, each target tried once; if none does, the client's connection is
// closed.
func NewRoundRobin(targets ...string) (*RoundRobin, error) {
	rr := &RoundRobin{targets: append([]string(nil), targets...)}
	p, err := listen(rr.dial)
	if err != nil {
		return nil, err
	}
	rr.p = p
	return rr, nil
}

// dial connects to the target of the next connection.
func (rr *RoundRobin) dial(ctx context.Context) (net.Conn, error) {
	rr.mu.Lock()
	targets, start := rr.targets, rr.next
	rr.next++
	rr.mu.Unlock()
	d := net.Dialer{Timeout: dialTimeout}
	for i := range targets {
		c, err := d.DialContext(ctx, "tcp", targets[(start+i)%len(targets)])
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, errNoTarget
}

// SetTargets replaces the targets of the connections accepted from now on
// (current ones are left alone).
func (rr *RoundRobin) SetTargets(targets ...string) {
	rr.mu.Lock()
	rr.targets = append([]string(nil), targets...)
	rr.mu.Unlock()
}

// Addr returns the address the balancer listens on (127.0.0.1:port).
func (rr *RoundRobin) Addr() string { return rr.p.Addr() }

// Conns returns the number of connections being forwarded now.
func (rr *RoundRobin) Conns() int { return rr.p.Conns() }

// Cut closes every current connection; new ones are still accepted.
func (rr *RoundRobin) Cut() { rr.p.Cut() }

// Close stops listening, closes every connection and waits for the
// balancer's goroutines to end. It is idempotent.
func (rr *RoundRobin) Close() error { return rr.p.Close() }
