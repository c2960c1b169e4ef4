package faultproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/poll"
)

// A testServer accepts connections; it writes its name (if any) and a
// newline on each, then echoes what it reads.
type testServer struct {
	ln   net.Listener
	name string
	wg   sync.WaitGroup

	mu       sync.Mutex // protects the fields below
	conns    []net.Conn
	accepted int
	ended    int // connections whose echo ended (closed by the peer)
}

func newServer(t *testing.T, name string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, name: name}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.accepted++
			s.mu.Unlock()
			s.wg.Go(func() {
				if s.name != "" {
					if _, err := io.WriteString(c, s.name+"\n"); err != nil {
						return
					}
				}
				_, _ = io.Copy(c, c)
				_ = c.Close()
				s.mu.Lock()
				s.ended++
				s.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) counts() (accepted, ended int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.ended
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatalf("New(%q): %v", target, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// echo writes msg on c and reads it back.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(poll.Timeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back %d bytes: %v", len(msg), err)
	}
	if string(got) != msg {
		t.Fatalf("read back %q; want %q", got, msg)
	}
}

// wantClosed checks that c reads EOF or a reset, not a timeout.
func wantClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(poll.Timeout)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1))
	if err == nil {
		t.Fatalf("%s: read %d bytes; want the connection closed", what, n)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read timed out; want the connection closed", what)
	}
}

// wantSilent checks that nothing arrives on c for a short while.
func wantSilent(t *testing.T, c net.Conn, what string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(150 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, error %v; want nothing (a timeout)", what, n, err)
	}
}

func waitConns(t *testing.T, p interface{ Conns() int }, want int) {
	t.Helper()
	poll.UntilState(t, fmt.Sprintf("Conns() to be %d", want), func() (bool, string) {
		n := p.Conns()
		return n == want, fmt.Sprint(n)
	})
}

func TestForward(t *testing.T) {
	s := newServer(t, "")
	p := newProxy(t, s.addr())
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q; want 127.0.0.1:port", p.Addr())
	}
	c := dial(t, p.Addr())
	echo(t, c, "hello")
	// More than a chunk, both ways at once.
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*chunkSize/16+7)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(big)
		errc <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading back %d bytes: %v", len(big), err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing %d bytes: %v", len(big), err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes that differ from those written", len(big))
	}
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d with one connection; want 1", n)
	}
	c2 := dial(t, p.Addr())
	echo(t, c2, "second")
	if n := p.Conns(); n != 2 {
		t.Errorf("Conns() = %d with two connections; want 2", n)
	}
	// The client closing closes the target's side.
	_ = c.Close()
	poll.Until(t, "the server to see the connection end", func() bool { _, ended := s.counts(); return ended == 1 })
	waitConns(t, p, 1)
	if accepted, _ := s.counts(); accepted != 2 {
		t.Errorf("server accepted %d connections; want 2", accepted)
	}
}

// The target closing closes the client's side.
func TestTargetCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := newProxy(t, ln.Addr().String())
	c := dial(t, p.Addr())
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(sc, "bye"); err != nil {
		t.Fatal(err)
	}
	_ = sc.Close()
	got, err := io.ReadAll(c)
	if string(got) != "bye" {
		t.Errorf("client read %q (error %v); want %q then EOF", got, err, "bye")
	}
	waitConns(t, p, 0)
}

func TestTargetDown(t *testing.T) {
	p := newProxy(t, deadAddr(t))
	c := dial(t, p.Addr())
	wantClosed(t, c, "connection to a proxy whose target refuses")
	waitConns(t, p, 0)
}

func TestCut(t *testing.T) {
	s := newServer(t, "")
	p := newProxy(t, s.addr())
	c1, c2 := dial(t, p.Addr()), dial(t, p.Addr())
	echo(t, c1, "one")
	echo(t, c2, "two")
	p.Cut()
	wantClosed(t, c1, "first connection after Cut")
	wantClosed(t, c2, "second connection after Cut")
	poll.Until(t, "the server to see both connections end", func() bool { _, ended := s.counts(); return ended == 2 })
	waitConns(t, p, 0)
	c3 := dial(t, p.Addr())
	echo(t, c3, "after the cut")
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d; want 1", n)
	}
}

func TestBlock(t *testing.T) {
	s := newServer(t, "")
	p := newProxy(t, s.addr())
	before := dial(t, p.Addr())
	echo(t, before, "before")
	p.Block(true)
	blocked := dial(t, p.Addr())
	wantClosed(t, blocked, "connection made while blocked")
	echo(t, before, "still up") // Block leaves current connections alone
	if accepted, _ := s.counts(); accepted != 1 {
		t.Errorf("server accepted %d connections; want 1 (a blocked one must not reach it)", accepted)
	}
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d while blocked; want 1", n)
	}
	p.Block(false)
	after := dial(t, p.Addr())
	echo(t, after, "after")
	if accepted, _ := s.counts(); accepted != 2 {
		t.Errorf("server accepted %d connections; want 2", accepted)
	}
}

func TestPause(t *testing.T) {
	s := newServer(t, "")
	p := newProxy(t, s.addr())
	c := dial(t, p.Addr())
	echo(t, c, "before")
	p.Pause(true)
	p.Pause(true) // idempotent
	if _, err := io.WriteString(c, "during"); err != nil {
		t.Fatal(err)
	}
	wantSilent(t, c, "paused connection")
	// A connection made during the pause is accepted, then stalls too.
	c2 := dial(t, p.Addr())
	waitConns(t, p, 2)
	if _, err := io.WriteString(c2, "new"); err != nil {
		t.Fatal(err)
	}
	wantSilent(t, c2, "connection made while paused")
	p.Pause(false)
	p.Pause(false) // idempotent
	for _, x := range []struct {
		c    net.Conn
		want string
	}{{c, "during"}, {c2, "new"}} {
		if err := x.c.SetReadDeadline(time.Now().Add(poll.Timeout)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(x.want))
		if _, err := io.ReadFull(x.c, got); err != nil || string(got) != x.want {
			t.Fatalf("after the pause read %q (error %v); want %q", got, err, x.want)
		}
	}
	echo(t, c, "after")
	if accepted, _ := s.counts(); accepted != 2 {
		t.Errorf("server accepted %d connections; want 2", accepted)
	}
}

// Cut and Close end connections stalled by a pause or a long delay.
func TestCutWhileHeld(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(p *Proxy)
	}{
		{"Pause", func(p *Proxy) { p.Pause(true) }},
		{"Delay", func(p *Proxy) { p.Delay(time.Hour) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, "")
			p := newProxy(t, s.addr())
			c := dial(t, p.Addr())
			echo(t, c, "x")
			tc.fault(p)
			if _, err := io.WriteString(c, "held"); err != nil {
				t.Fatal(err)
			}
			wantSilent(t, c, "held connection")
			p.Cut()
			wantClosed(t, c, "held connection after Cut")
			waitConns(t, p, 0)
			c2 := dial(t, p.Addr())
			waitConns(t, p, 1)
			if _, err := io.WriteString(c2, "held"); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- p.Close() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(poll.Timeout):
				t.Fatal("Close did not return with a held connection")
			}
			wantClosed(t, c2, "held connection after Close")
		})
	}
}

// roundTrip returns how long an echo of msg takes on c.
func roundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	echo(t, c, msg)
	return time.Since(start)
}

func TestDelay(t *testing.T) {
	const d = 200 * time.Millisecond
	s := newServer(t, "")
	p := newProxy(t, s.addr())
	c := dial(t, p.Addr())
	echo(t, c, "warm")
	p.Delay(d)
	if rt := roundTrip(t, c, "slow"); rt < 2*d {
		t.Errorf("round trip with Delay(%v) took %v; want at least %v (the delay each way)", d, rt, 2*d)
	}
	// Order is kept: chunks written apart arrive in order.
	r := bufio.NewReader(c)
	var want strings.Builder
	for i := range 5 {
		msg := string(rune('a'+i)) + "\n"
		want.WriteString(msg)
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // separate chunks, not an assertion
	}
	var got strings.Builder
	for range 5 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got.WriteString(line)
	}
	if got.String() != want.String() {
		t.Errorf("delayed chunks arrived as %q; want %q", got.String(), want.String())
	}
	p.Delay(0)
	if rt := roundTrip(t, c, "fast"); rt >= 2*d {
		t.Errorf("round trip after Delay(0) took %v; want well under %v", rt, 2*d)
	}
}

// deadAddr returns an address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestClose(t *testing.T) {
	s := newServer(t, "")
	p, err := New(s.addr())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	echo(t, c, "x")
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v; want nil", err)
	}
	wantClosed(t, c, "connection after Close")
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		_ = c.Close()
		t.Errorf("Dial after Close succeeded; want refused")
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("Conns() after Close = %d; want 0", n)
	}
}

// Cut while the target is being dialed ends the dial; a dial that returns
// a connection after the cut has it closed.
func TestCutDuringDial(t *testing.T) {
	t.Run("Canceled", func(t *testing.T) {
		dialing := make(chan struct{}, 1)
		p, err := listen(func(ctx context.Context) (net.Conn, error) {
			dialing <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c := dial(t, p.Addr())
		<-dialing
		if n := p.Conns(); n != 1 {
			t.Errorf("Conns() during the dial = %d; want 1", n)
		}
		p.Cut()
		wantClosed(t, c, "connection cut during the dial")
		waitConns(t, p, 0)
	})
	t.Run("Late", func(t *testing.T) {
		dialing, release := make(chan struct{}, 1), make(chan struct{})
		server, other := net.Pipe()
		defer other.Close()
		p, err := listen(func(ctx context.Context) (net.Conn, error) {
			dialing <- struct{}{}
			<-release
			return server, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c := dial(t, p.Addr())
		<-dialing
		p.Cut()
		wantClosed(t, c, "connection cut during the dial")
		close(release)
		waitConns(t, p, 0)
		// The late server connection was closed: its peer reads EOF.
		if n, err := other.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("peer of the late connection read %d bytes, error %v; want EOF", n, err)
		}
	})
}

func TestStall(t *testing.T) {
	s := newServer(t, "")
	p := newProxy(t, s.addr())
	c1, c2 := dial(t, p.Addr()), dial(t, p.Addr())
	echo(t, c1, "one")
	echo(t, c2, "two")
	resume := p.Stall()
	for _, c := range []net.Conn{c1, c2} {
		if _, err := io.WriteString(c, "stalled"); err != nil {
			t.Fatal(err)
		}
	}
	wantSilent(t, c1, "first stalled connection")
	wantSilent(t, c2, "second stalled connection")
	// New connections are forwarded as usual.
	c3 := dial(t, p.Addr())
	echo(t, c3, "new")
	// A second stall (of all three) outlives the first's resume.
	resume2 := p.Stall()
	resume()
	resume() // idempotent
	wantSilent(t, c1, "connection stalled again")
	resume2()
	for _, c := range []net.Conn{c1, c2} {
		if err := c.SetReadDeadline(time.Now().Add(poll.Timeout)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len("stalled"))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "stalled" {
			t.Fatalf("after resume read %q (error %v); want %q", got, err, "stalled")
		}
	}
	echo(t, c3, "after")
	if n := p.Conns(); n != 3 {
		t.Errorf("Conns() = %d; want 3 (a stall closes nothing)", n)
	}
}
