package httpsync_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// At shutdown each event stream ends with a retry field of its own, the
// i-th stream's 500 ms + i/ReconnectRate seconds, so that the clients' returns are
// spread; with a negative rate the streams end without one. Over both
// ways of serving streams (STATESYNC_TEST_HIJACK runs this file again with
// hijacked streams).
func TestShutdownSpreadsRetry(t *testing.T) {
	for _, rate := range []int{50, -1} {
		t.Run(strconv.Itoa(rate), func(t *testing.T) {
			s := newTestServer(t, &httpsync.HandlerOptions{ReconnectRate: rate})
			s.put(t, "a", `1`)
			const n = 20
			streams := make([]*sseStream, n)
			for i := range streams {
				streams[i] = s.openStream(t, "/v1/events?topic=a")
				if f := streams[i].next(t); f.retry != "2000" {
					t.Fatalf("first frame %+v; want the retry hint 2000", f)
				}
				if f := streams[i].nextEvent(t); f.event != "invalidation" {
					t.Fatalf("second frame %+v; want the initial invalidation", f)
				}
			}
			if err := s.h.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			var got []int
			for i, st := range streams {
				last, err := readToEnd(st)
				if err != nil {
					t.Fatalf("stream %d: %v", i, err)
				}
				if rate < 0 {
					if last.retry != "" {
						t.Errorf("stream %d ended with retry %q; want none with a negative ReconnectRate", i, last.retry)
					}
					continue
				}
				ms, err := strconv.Atoi(last.retry)
				if err != nil {
					t.Fatalf("stream %d ended with %+v; want a retry field", i, last)
				}
				got = append(got, ms)
			}
			if rate < 0 {
				return
			}
			slices.Sort(got)
			for i, ms := range got {
				if want := 500 + i*1000/rate; ms != want {
					t.Fatalf("the streams' farewell delays are %v ms; want 500, 520, …, %d (one per stream, 1 s / %d apart)", got, 500+(n-1)*1000/rate, rate)
				}
			}
		})
	}
}

// readToEnd reads a raw stream to its end and returns its last frame.
func readToEnd(st *sseStream) (frame, error) {
	var last, f frame
	for {
		line, err := st.br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return last, nil
			}
			return last, err
		}
		switch {
		case line == "\n":
			if f != (frame{}) {
				last, f = f, frame{}
			}
		case len(line) > 7 && line[:7] == "retry: ":
			f.retry = line[7 : len(line)-1]
		case line[0] == ':':
			f.comment = line[1 : len(line)-1]
		default:
			f.data += line
		}
	}
}

// switchNet is the pipe network of the server currently up, which the
// clients dial; while no server is up their connections are refused.
type switchNet struct {
	cur     atomic.Pointer[pipeNet]
	refused atomic.Int64
}

func (s *switchNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n := s.cur.Load()
	if n == nil {
		s.refused.Add(1)
		return nil, errors.New("switch network: connection refused")
	}
	return n.dial(ctx, network, addr)
}

// serve makes b the server up.
func (s *switchNet) serve(b *bubbleServer) { s.cur.Store(b.net) }

// returns records, per client, when invalidations of epoch reached it.
type returns struct {
	mu    sync.Mutex
	first map[int]time.Time // client -> first invalidation of the epoch
}

type returnHandler struct {
	r     *returns
	i     int
	epoch string
}

func (h returnHandler) Invalidate(inv statesync.Invalidation) {
	if inv.Epoch != h.epoch {
		return
	}
	h.r.mu.Lock()
	if _, ok := h.r.first[h.i]; !ok {
		h.r.first[h.i] = time.Now()
	}
	h.r.mu.Unlock()
}
func (returnHandler) InvalidateRaw([]byte) {}

// newEpochServer is a bubbleServer whose store has the given epoch.
func newEpochServer(t *testing.T, epoch string, opts *httpsync.HandlerOptions) *bubbleServer {
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: epoch, FirstRevision: 1}), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &bubbleServer{src: src, h: httpsync.NewHandler(src, hijackOpts(opts)), net: newPipeNet()}
	b.srv = &http.Server{Handler: b.h}
	b.wg.Go(func() { b.srv.Serve(b.net) })
	return b
}

// A server's restart: its clients come back when its farewell told them
// to, spread over the window ReconnectRate gives after 500 ms (on the fake
// clock: exactly then, plus the client's 10 ms debounce), not at random
// within their retry hint (2 s). When the new server is not up yet, the clients
// refused meanwhile try again soon (backing off from 500 ms, not from the
// 2 s hint) and are back shortly after it listens; a server that stays
// down is still retried with growing delays.
func TestRestartSpreadsReturns(t *testing.T) {
	const clients, rate = 20, 10 // farewells 500, 600, …, 2400 ms
	run := func(t *testing.T, gap time.Duration, downFor time.Duration) (*returns, time.Time, *switchNet) {
		sn := &switchNet{}
		old := newEpochServer(t, "e1", &httpsync.HandlerOptions{ReconnectRate: rate})
		t.Cleanup(old.stop)
		sn.serve(old)
		r := &returns{first: map[int]time.Time{}}
		for i := range clients {
			tr := &http.Transport{DialContext: sn.dial}
			c, err := httpsync.NewClient("http://pipe", &httpsync.ClientOptions{HTTPClient: &http.Client{Transport: tr}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(); tr.CloseIdleConnections() })
			if _, err := c.Subscribe(context.Background(), "a", returnHandler{r: r, i: i, epoch: "e2"}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		down := time.Now()
		sn.cur.Store(nil)
		if err := old.h.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := old.srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if downFor > 0 {
			time.Sleep(downFor)
			return r, down, sn
		}
		time.Sleep(gap)
		nu := newEpochServer(t, "e2", nil)
		t.Cleanup(nu.stop)
		sn.serve(nu)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		return r, down, sn
	}
	t.Run("at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, down, sn := run(t, 0, 0)
			var got []time.Duration
			for i := range clients {
				at, ok := r.first[i]
				if !ok {
					t.Fatalf("client %d did not come back", i)
				}
				got = append(got, at.Sub(down))
			}
			slices.Sort(got)
			for i, d := range got {
				if want := 510*time.Millisecond + time.Duration(i)*time.Second/rate; d != want {
					t.Fatalf("the clients came back after %v; want 510ms, 610ms, …, 2.41s (their farewells plus the debounce)", got)
				}
			}
			if n := sn.refused.Load(); n != 0 {
				t.Errorf("%d connections refused with the new server up at once; want 0", n)
			}
		})
	})
	t.Run("after 1.5 s", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, down, _ := run(t, 1500*time.Millisecond, 0)
			for i := range clients {
				at, ok := r.first[i]
				if !ok {
					t.Fatalf("client %d did not come back", i)
				}
				// A client told to come back before the new server
				// listened (at 1.5 s) retries every 250 to 500 ms: it is
				// back by 2.01 s; the others by 2.41 s, their farewell.
				if d := at.Sub(down); d > 2410*time.Millisecond {
					t.Errorf("client %d came back after %v; want at most 2.41s with the server back after 1.5 s", i, d)
				}
			}
		})
	})
	t.Run("down", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, _, sn := run(t, 0, 10*time.Minute)
			// Quick retries (250–500 ms) for 5 s after the farewell, 10
			// to 20 of them, then the backoff, its ceiling already at
			// its 30 s cap: about 40 more in 10 min, a client.
			if n := sn.refused.Load(); n < clients*30 || n > clients*100 {
				t.Errorf("%d connections refused in 10 min of a server down (%d clients); want %d to %d: backing off, not hammering",
					n, clients, clients*30, clients*100)
			}
		})
	})
}
