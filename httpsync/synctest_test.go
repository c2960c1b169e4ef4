package httpsync_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// pipeNet is an in-memory network of net.Pipe connections, so that
// net/http runs inside a synctest bubble (loopback sockets are not
// durably blocking, pipes are) and time-dependent behaviour is tested on
// the fake clock.
type pipeNet struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeNet() *pipeNet {
	return &pipeNet{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (n *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-n.conns:
		return c, nil
	case <-n.closed:
		return nil, net.ErrClosed
	}
}

func (n *pipeNet) Close() error {
	n.once.Do(func() { close(n.closed) })
	return nil
}

func (n *pipeNet) Addr() net.Addr { return pipeAddr{} }

func (n *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	srv, cli := net.Pipe()
	select {
	case n.conns <- srv:
		return cli, nil
	case <-n.closed:
		return nil, errors.New("pipe network: connection refused")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// bubbleServer is a Source, Handler and http.Server on a pipeNet, made
// inside the bubble that uses it; stop ends them all.
type bubbleServer struct {
	src *statesync.Source
	h   *httpsync.Handler
	net *pipeNet
	srv *http.Server
	wg  sync.WaitGroup
}

func newBubbleServer(t *testing.T, opts *httpsync.HandlerOptions) *bubbleServer {
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1}), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &bubbleServer{src: src, h: httpsync.NewHandler(src, hijackOpts(opts)), net: newPipeNet()}
	b.srv = &http.Server{Handler: b.h}
	b.wg.Go(func() { b.srv.Serve(b.net) })
	return b
}

func (b *bubbleServer) stop() {
	b.h.Close()
	b.srv.Close()
	b.wg.Wait()
	b.src.Close()
}

// client returns a Client that dials b's pipe network.
func (b *bubbleServer) client(t *testing.T, opts httpsync.ClientOptions) (*httpsync.Client, func()) {
	tr := &http.Transport{DialContext: b.net.dial}
	opts.HTTPClient = &http.Client{Transport: tr}
	c, err := httpsync.NewClient("http://pipe", &opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, func() {
		c.Close()
		tr.CloseIdleConnections()
	}
}

type nopHandler struct{}

func (nopHandler) Invalidate(statesync.Invalidation) {}
func (nopHandler) InvalidateRaw([]byte)              {}

// With the defaults, the server's heartbeat (15 s) keeps a quiet stream
// alive past the client's idle timeout (45 s): one stream for ten minutes.
// Without heartbeats in time, the client drops the silent stream after its
// idle timeout and reconnects.
func TestHeartbeatKeepsStreamAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubbleServer(t, nil)
		defer b.stop()
		c, closeClient := b.client(t, httpsync.ClientOptions{})
		defer closeClient()
		if _, err := c.Subscribe(context.Background(), "a", nopHandler{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		st := b.h.Stats()
		if st.StreamsTotal != 1 || st.StreamsOpen != 1 {
			t.Errorf("after 10 min: %d streams opened, %d open; want 1 and 1", st.StreamsTotal, st.StreamsOpen)
		}
		if st.Heartbeats != 40 {
			t.Errorf("Heartbeats after 10 min = %d; want 40 (one per 15 s)", st.Heartbeats)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		b := newBubbleServer(t, &httpsync.HandlerOptions{Heartbeat: time.Hour})
		defer b.stop()
		c, closeClient := b.client(t, httpsync.ClientOptions{IdleTimeout: 45 * time.Second, Backoff: httpsync.Backoff{Initial: time.Second}})
		defer closeClient()
		if _, err := c.Subscribe(context.Background(), "a", nopHandler{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		// Each stream lives 45 s, then the client waits at most 1 s (its
		// first backoff) plus the 10 ms debounce: between 13 and 14 streams.
		if got := b.h.Stats().StreamsTotal; got < 13 || got > 14 {
			t.Errorf("streams opened in 10 min without heartbeats = %d; want 13 or 14 (one per 45 s idle timeout)", got)
		}
	})
}

// Subscriptions made together cost one stream (the debounce), and a new
// topic later reopens it once.
func TestSubscribeDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubbleServer(t, nil)
		defer b.stop()
		c, closeClient := b.client(t, httpsync.ClientOptions{})
		defer closeClient()
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if _, err := c.Subscribe(context.Background(), "t"+strconv.Itoa(i%10), nopHandler{}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		if st := b.h.Stats(); st.StreamsTotal != 1 || st.InvalidationsSent != 10 {
			t.Errorf("50 subscriptions on 10 topics: %d streams, %d initial frames; want 1 and 10", st.StreamsTotal, st.InvalidationsSent)
		}
		if _, err := c.Subscribe(context.Background(), "t0", nopHandler{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := b.h.Stats().StreamsTotal; got != 1 {
			t.Errorf("a subscription to a followed topic opened a stream: %d; want 1", got)
		}
		if _, err := c.Subscribe(context.Background(), "new", nopHandler{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := b.h.Stats(); st.StreamsTotal != 2 || st.StreamsOpen != 1 {
			t.Errorf("after a new topic: %d streams opened, %d open; want 2 and 1", st.StreamsTotal, st.StreamsOpen)
		}
	})
}

// A stream refused with 401 is retried slowly: every wait is between
// Backoff.Max/2 and Backoff.Max; a server that is down (503) is retried
// with exponential backoff capped at Max.
func TestReconnectBackoff(t *testing.T) {
	toks, err := httpsync.NewTokens([]httpsync.TokenSpec{{Token: "t", Read: []string{"other"}}})
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		b := newBubbleServer(t, &httpsync.HandlerOptions{Auth: toks})
		defer b.stop()
		c, closeClient := b.client(t, httpsync.ClientOptions{Token: "wrong", Backoff: httpsync.Backoff{Initial: time.Second, Max: 30 * time.Second}})
		defer closeClient()
		if _, err := c.Subscribe(context.Background(), "a", nopHandler{}); err != nil {
			t.Fatal(err) // the failed attempt does not fail Subscribe
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		// 600 s of waits of 15–30 s each (plus 10 ms debounces).
		if got := b.h.Stats().Errors[401]; got < 20 || got > 41 {
			t.Errorf("401 attempts in 10 min = %d; want 20 to 41 (a wait of 15-30 s each)", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		b := newBubbleServer(t, nil)
		defer b.stop()
		b.h.Close() // every request is a 503 now
		c, closeClient := b.client(t, httpsync.ClientOptions{Backoff: httpsync.Backoff{Initial: time.Second, Max: 30 * time.Second}})
		defer closeClient()
		if _, err := c.Subscribe(context.Background(), "a", nopHandler{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		// The waits are at most 1, 2, 4, 8, 16, then 30 s: at least 24
		// attempts in 600 s.
		if got := b.h.Stats().Errors[503]; got < 24 {
			t.Errorf("503 attempts in 10 min = %d; want at least 24 (waits capped at 30 s)", got)
		}
	})
}

// Against an unreachable server a consumer's Start fails at once rather
// than hanging: Subscribe returns after the first failed attempt (the
// client keeps retrying in the background) and the snapshot fetch reports
// the error.
func TestStartAgainstDownServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubbleServer(t, nil)
		b.stop() // nothing listens any more
		c, closeClient := b.client(t, httpsync.ClientOptions{})
		defer closeClient()
		con, err := statesync.NewConsumer("a", c, c, statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil }), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer con.Stop()
		err = con.Start(context.Background())
		var se *statesync.Error
		if !errors.As(err, &se) || se.Phase != statesync.PhaseGetSnapshot {
			t.Errorf("Start against a down server = %v; want a getSnapshot error", err)
		}
	})
}
