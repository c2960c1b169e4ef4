// Package faultproxy is a TCP proxy for tests that injects network faults
// between a client and a server: it cuts connections, refuses new ones,
// stalls them silently or delays what they carry. [RoundRobin] is a plain
// TCP load balancer in front of several servers (daemons), skipping those
// that refuse connections.
//
// Both listen on 127.0.0.1 on a port of their own; point the client at
// Addr. Each accepted connection is forwarded to its own connection to the
// target, in both directions, until either side closes or fails: then both
// are closed (there is no half-close).
package faultproxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds the dial of a target for one accepted connection.
const dialTimeout = 5 * time.Second

// chunkSize is the size of the buffer of each direction of a connection: a
// chunk, for Delay, is what one read returned, at most this much.
const chunkSize = 32 << 10

// A Proxy forwards the TCP connections it accepts to one target and
// injects faults on demand. Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	dial   func(ctx context.Context) (net.Conn, error)
	ctx    context.Context // canceled by Close: ends dials and waits
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu      sync.Mutex // protects the fields below
	conns   map[*pair]struct{}
	blocked bool
	resume  chan struct{} // non-nil while paused, closed by Pause(false)
	delay   time.Duration
	closed  bool
}

// New returns a Proxy listening on 127.0.0.1 on a free port that forwards
// each connection it accepts to target (host:port).
func New(target string) (*Proxy, error) {
	d := net.Dialer{Timeout: dialTimeout}
	return listen(func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", target)
	})
}

func listen(dial func(ctx context.Context) (net.Conn, error)) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, dial: dial, ctx: ctx, cancel: cancel, conns: make(map[*pair]struct{})}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// Addr returns the address the proxy listens on (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every current connection, both the client's and the target's
// side. Connections accepted afterwards are forwarded as usual (unless
// blocked).
func (p *Proxy) Cut() {
	p.mu.Lock()
	cut := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		cut = append(cut, c)
	}
	p.mu.Unlock()
	for _, c := range cut {
		c.close()
	}
}

// Block, while on, makes the proxy close each new connection as soon as it
// is accepted, without dialing the target: clients see their connection
// reset or closed at once. It leaves current connections alone (Cut them
// for a full outage).
func (p *Proxy) Block(on bool) {
	p.mu.Lock()
	p.blocked = on
	p.mu.Unlock()
}

// Pause, while on, stops forwarding bytes in both directions of every
// connection, current and new, while keeping them open: a silent stall,
// as of a network that drops packets. What is sent meanwhile waits in the
// proxy and the kernels' buffers and flows, in order, once Pause(false) is
// called.
func (p *Proxy) Pause(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		if p.resume == nil {
			p.resume = make(chan struct{})
		}
		return
	}
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
}

// Stall stops forwarding bytes on the connections open now, in both
// directions, keeping them open; connections accepted afterwards are
// forwarded as usual. It is what a client sees of a connection that went
// silent (a dead peer, a dropped NAT entry) while it can still make new
// ones: a store's liveness probe must notice and reconnect. resume lets
// the stalled connections flow again, in order; it is idempotent.
func (p *Proxy) Stall() (resume func()) {
	gate := make(chan struct{})
	p.mu.Lock()
	for c := range p.conns {
		c.stall = gate
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			for c := range p.conns {
				if c.stall == gate {
					c.stall = nil
				}
			}
			p.mu.Unlock()
			close(gate)
		})
	}
}

// Delay makes the proxy hold each chunk it forwards (what one read
// returned) for d before writing it, in both directions, keeping the order
// of each direction. The delays of one direction add up: a direction
// reads its next chunk only once it has written the previous one. 0 (the
// default) or less forwards at once.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Conns returns the number of connections being forwarded now (including
// those whose target is being dialed).
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	var err error
	if !already {
		p.cancel()
		err = p.ln.Close()
		p.Cut()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed by Close
		}
		p.mu.Lock()
		if p.closed || p.blocked {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		ctx, cancel := context.WithCancel(p.ctx)
		pr := &pair{client: c, ctx: ctx, cancel: cancel}
		p.conns[pr] = struct{}{}
		p.wg.Go(func() { p.serve(pr) })
		p.mu.Unlock()
	}
}

// serve dials the target for pr and forwards both ways until either side
// ends.
func (p *Proxy) serve(pr *pair) {
	defer func() {
		pr.close()
		p.mu.Lock()
		delete(p.conns, pr)
		p.mu.Unlock()
	}()
	server, err := p.dial(pr.ctx) // canceled by Cut and Close
	if err != nil {
		return
	}
	if !pr.setServer(server) {
		return // cut during the dial
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.forward(pr, pr.client, server) })
	wg.Go(func() { p.forward(pr, server, pr.client) })
	wg.Wait()
}

// forward copies src to dst, chunk by chunk, through the pause and the
// delay, until either fails; then it closes the pair.
func (p *Proxy) forward(pr *pair, src, dst net.Conn) {
	defer pr.close()
	buf := make([]byte, chunkSize)
	for {
		// A TCP connection's Read returns data or an error, never both.
		n, err := src.Read(buf)
		if err != nil || !p.hold(pr) {
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// hold waits while the proxy is paused, then for the delay. It returns
// false if the pair was closed meanwhile.
func (p *Proxy) hold(pr *pair) bool {
	for {
		p.mu.Lock()
		resume, delay := p.resume, p.delay
		if resume == nil {
			resume = pr.stall
		}
		p.mu.Unlock()
		if resume == nil {
			if delay == 0 {
				return true
			}
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				return true
			case <-pr.ctx.Done():
				return false
			}
		}
		select {
		case <-resume:
		case <-pr.ctx.Done():
			return false
		}
	}
}

// A pair is one forwarded connection: the client's and the target's.
type pair struct {
	client net.Conn
	ctx    context.Context // canceled by close
	cancel context.CancelFunc

	stall chan struct{} // non-nil while stalled (see Stall); protected by the Proxy's mu

	mu     sync.Mutex // protects server and closed
	server net.Conn
	closed bool
}

// setServer records the target's connection; if the pair was closed
// meanwhile it closes server and returns false.
func (pr *pair) setServer(server net.Conn) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		_ = server.Close()
		return false
	}
	pr.server = server
	return true
}

// close closes both connections; it is idempotent.
func (pr *pair) close() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		return
	}
	pr.closed = true
	pr.cancel()
	_ = pr.client.Close()
	if pr.server != nil {
		_ = pr.server.Close()
	}
}
