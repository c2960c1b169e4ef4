// Package netlimit caps the connections a server holds at once, in total
// and per client address, by wrapping its [net.Listener].
//
// A connection over a cap is closed as soon as it is accepted, before
// anything is read from or written to it: it is never queued, so the
// accept loop goes on serving the others, and the client sees its
// connection closed (or reset) at once. The count of a connection ends when
// it is closed, including connections taken over from net/http
// ([http.Hijacker]), which hold the wrapper's [net.Conn].
//
// Client addresses are the host part of each connection's remote address.
// Behind a reverse proxy, or for a server on a loopback address, every
// client has the same address, so the per-address cap is a second total
// cap there.
package netlimit

import (
	"net"
	"sync"
	"sync/atomic"
)

// A Listener is a net.Listener whose Accept returns only the connections
// within its caps, closing the others. Make one with [NewListener]. It is
// safe for concurrent use.
type Listener struct {
	net.Listener
	max, perHost int

	mu     sync.Mutex // protects open and byHost
	open   int
	byHost map[string]int

	refused atomic.Uint64
}

// NewListener returns ln capped to max connections open at once (0 or
// less: no cap) and to perHost of them from one client address (0 or
// less: no cap).
func NewListener(ln net.Listener, max, perHost int) *Listener {
	return &Listener{Listener: ln, max: max, perHost: perHost, byHost: map[string]int{}}
}

// Accept waits for the next connection within the caps and returns it;
// the connections over a cap that arrive meanwhile are closed and counted
// in [Listener.Refused]. An error of the wrapped listener is returned as
// is.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr())
		if l.take(host) {
			return &conn{Conn: c, l: l, host: host}, nil
		}
		l.refused.Add(1)
		_ = c.Close()
	}
}

// take counts a new connection from host, if it is within the caps.
func (l *Listener) take(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max || l.perHost > 0 && l.byHost[host] >= l.perHost {
		return false
	}
	l.open++
	l.byHost[host]++
	return true
}

// release ends the count of a connection from host.
func (l *Listener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.byHost[host] - 1; n > 0 {
		l.byHost[host] = n
	} else {
		delete(l.byHost, host)
	}
}

// Open returns the number of accepted connections not yet closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused returns the number of connections closed for being over a cap.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// hostOf returns the client address of a connection: the host of a
// host:port address, else the whole address.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	s := a.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// conn is an accepted connection; closing it ends its count, once.
type conn struct {
	net.Conn
	l    *Listener
	host string
	once sync.Once
}

// NetConn returns the connection accepted from the wrapped listener, as
// [crypto/tls.Conn.NetConn] does: for the abilities of the concrete
// connection (a *net.TCPConn's buffer sizes, linger, writev). Closing it
// directly would not end the count: close c.
func (c *conn) NetConn() net.Conn { return c.Conn }

// Close closes the connection and, the first time, ends its count.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}
