package netlimit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeAddr is a remote address.
type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// fakeConn is a connection from a remote address that records Close.
type fakeConn struct {
	net.Conn // nil: only RemoteAddr and Close are used
	remote   net.Addr
	closed   atomic.Int32
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed.Add(1); return nil }

// fakeListener hands out the connections sent on its channel; once the
// channel is drained it returns errDone.
type fakeListener struct {
	net.Listener
	conns chan *fakeConn
}

var errDone = errors.New("no more connections")

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	default:
		return nil, errDone
	}
}

// arrive queues connections from the remote addresses; it returns them.
func (l *fakeListener) arrive(addrs ...string) []*fakeConn {
	var out []*fakeConn
	for _, a := range addrs {
		c := &fakeConn{remote: fakeAddr(a)}
		if a == "" {
			c.remote = nil
		}
		l.conns <- c
		out = append(out, c)
	}
	return out
}

func newFake() *fakeListener { return &fakeListener{conns: make(chan *fakeConn, 64)} }

// accept accepts one connection and fails the test on an error.
func accept(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept = %v", err)
	}
	return c
}

func TestTotalCap(t *testing.T) {
	fl := newFake()
	l := NewListener(fl, 2, 0)
	fl.arrive("10.0.0.1:1", "10.0.0.2:1")
	a, b := accept(t, l), accept(t, l)
	if got := l.Open(); got != 2 {
		t.Fatalf("Open = %d; want 2", got)
	}
	// At the cap: the next two are closed at once and Accept goes on to
	// the wrapped listener's error.
	over := fl.arrive("10.0.0.3:1", "10.0.0.4:1")
	if c, err := l.Accept(); !errors.Is(err, errDone) || c != nil {
		t.Fatalf("Accept at the cap = %v, %v; want nil, %v", c, err, errDone)
	}
	for i, c := range over {
		if c.closed.Load() != 1 {
			t.Errorf("connection %d over the cap: closed %d times; want 1", i, c.closed.Load())
		}
	}
	if got := l.Refused(); got != 2 {
		t.Errorf("Refused = %d; want 2", got)
	}
	// Closing one makes room for one.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.Open(); got != 1 {
		t.Fatalf("Open after a Close = %d; want 1", got)
	}
	next := fl.arrive("10.0.0.5:1", "10.0.0.6:1")
	c := accept(t, l)
	if c.RemoteAddr().String() != "10.0.0.5:1" || next[0].closed.Load() != 0 {
		t.Fatalf("accepted %v (closed %d); want 10.0.0.5:1 open", c.RemoteAddr(), next[0].closed.Load())
	}
	if _, err := l.Accept(); !errors.Is(err, errDone) || next[1].closed.Load() != 1 {
		t.Fatalf("second arrival: err %v, closed %d; want refused", err, next[1].closed.Load())
	}
	_ = b.Close()
	_ = c.Close()
	if got := l.Open(); got != 0 {
		t.Errorf("Open after closing all = %d; want 0", got)
	}
}

func TestPerHostCap(t *testing.T) {
	fl := newFake()
	l := NewListener(fl, 0, 2)
	fl.arrive("10.0.0.1:1", "10.0.0.1:2", "10.0.0.2:1")
	var conns []net.Conn
	for range 3 {
		conns = append(conns, accept(t, l))
	}
	over := fl.arrive("10.0.0.1:3")
	if _, err := l.Accept(); !errors.Is(err, errDone) || over[0].closed.Load() != 1 {
		t.Fatalf("third from one host: err %v, closed %d; want refused", err, over[0].closed.Load())
	}
	// Another host still gets in: the cap is per host.
	fl.arrive("10.0.0.2:2")
	conns = append(conns, accept(t, l))
	// A closed connection of the first host makes room for it only.
	_ = conns[0].Close()
	fl.arrive("10.0.0.2:3", "10.0.0.1:4")
	c := accept(t, l)
	if c.RemoteAddr().String() != "10.0.0.1:4" {
		t.Fatalf("accepted %v; want 10.0.0.1:4 (10.0.0.2 is at its cap)", c.RemoteAddr())
	}
	if got := l.Refused(); got != 2 {
		t.Errorf("Refused = %d; want 2", got)
	}
	for _, c := range append(conns[1:], c) {
		_ = c.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open != 0 || len(l.byHost) != 0 {
		t.Errorf("after closing all: open %d, byHost %v; want 0, empty", l.open, l.byHost)
	}
}

func TestNoCap(t *testing.T) {
	for _, limit := range []int{0, -1} {
		fl := newFake()
		l := NewListener(fl, limit, limit)
		var conns []net.Conn
		for range 50 {
			fl.arrive("10.0.0.1:1")
			conns = append(conns, accept(t, l))
		}
		if l.Open() != 50 || l.Refused() != 0 {
			t.Errorf("caps %d: Open %d, Refused %d; want 50, 0", limit, l.Open(), l.Refused())
		}
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

func TestCloseCountsOnce(t *testing.T) {
	fl := newFake()
	l := NewListener(fl, 1, 1)
	fl.arrive("10.0.0.1:1")
	c := accept(t, l)
	for range 3 {
		_ = c.Close()
	}
	if got := l.Open(); got != 0 {
		t.Fatalf("Open after three Closes = %d; want 0", got)
	}
	if n := c.(*conn).Conn.(*fakeConn).closed.Load(); n != 3 {
		t.Errorf("wrapped Close called %d times; want 3 (each is passed on)", n)
	}
	// The count did not go negative: the cap of one still holds.
	fl.arrive("10.0.0.1:2", "10.0.0.1:3")
	d := accept(t, l)
	if _, err := l.Accept(); !errors.Is(err, errDone) || l.Refused() != 1 {
		t.Fatalf("second connection at a cap of one: err %v, Refused %d; want refused", err, l.Refused())
	}
	_ = d.Close()
}

func TestCloseError(t *testing.T) {
	want := errors.New("close failed")
	fc := &failConn{err: want, remote: fakeAddr("10.0.0.1:1")}
	l := NewListener(&oneListener{c: fc}, 1, 0)
	c := accept(t, l)
	if err := c.Close(); err != want {
		t.Errorf("Close = %v; want %v", err, want)
	}
	if l.Open() != 0 {
		t.Errorf("Open after a failed Close = %d; want 0", l.Open())
	}
}

type failConn struct {
	net.Conn
	err    error
	remote net.Addr
}

func (c *failConn) RemoteAddr() net.Addr { return c.remote }
func (c *failConn) Close() error         { return c.err }

type oneListener struct {
	net.Listener
	c net.Conn
}

func (l *oneListener) Accept() (net.Conn, error) { return l.c, nil }

func TestHostOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{fakeAddr("10.0.0.1:80"), "10.0.0.1"},
		{fakeAddr("[::1]:80"), "::1"},
		{fakeAddr("/run/statesync.sock"), "/run/statesync.sock"},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, "127.0.0.1"},
		{nil, ""},
	} {
		if got := hostOf(tc.addr); got != tc.want {
			t.Errorf("hostOf(%v) = %q; want %q", tc.addr, got, tc.want)
		}
	}
	// A connection without a remote address counts under "".
	fl := newFake()
	l := NewListener(fl, 0, 1)
	fl.arrive("", "")
	c := accept(t, l)
	if _, err := l.Accept(); !errors.Is(err, errDone) || l.Refused() != 1 {
		t.Fatalf("second address-less connection: err %v, Refused %d; want refused", err, l.Refused())
	}
	_ = c.Close()
}

// TestTCP checks the wrapper on a real listener: a client over the cap has
// its connection closed by the server at once while the others are served.
func TestTCP(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, 0, 2)
	var wg sync.WaitGroup
	accepted := make(chan net.Conn, 8)
	wg.Go(func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	})
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	// The third client is refused: the server closes it, so its read
	// ends at once (EOF or a reset), well within the bound.
	_ = clients[2].SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	var ne net.Error
	if _, err := clients[2].Read(b[:]); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read of the refused client = %v; want EOF or a reset", err)
	}
	var served []net.Conn
	for range 2 {
		served = append(served, <-accepted)
	}
	// The concrete connection is reachable, for its TCP abilities; closing
	// the wrapper ends its count.
	for _, c := range served {
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			t.Fatalf("accepted %T has no NetConn method", c)
		}
		if _, ok := nc.NetConn().(*net.TCPConn); !ok {
			t.Errorf("NetConn() = %T; want *net.TCPConn", nc.NetConn())
		}
	}
	if l.Open() != 2 || l.Refused() != 1 {
		t.Errorf("Open %d, Refused %d; want 2, 1", l.Open(), l.Refused())
	}
	_ = inner.Close()
	wg.Wait()
	for _, c := range append(clients, served...) {
		_ = c.Close()
	}
	if l.Open() != 0 {
		t.Errorf("Open after closing = %d; want 0", l.Open())
	}
}
