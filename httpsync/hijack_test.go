package httpsync_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/poll"
)

// HijackStreams: the stream is served on the raw connection, with a
// response that ends with the connection instead of chunks; it starts
// with the retry hint and current revisions, then carries each write.
func TestHijackedStreamFrames(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{HijackStreams: true})
	w := s.put(t, "a", `{"x":1}`)
	st := s.openStream(t, "/v1/events?topic=a")
	if !st.resp.Close {
		t.Error("response without Connection: close; want it (the body ends with the connection)")
	}
	if te := st.resp.TransferEncoding; len(te) != 0 {
		t.Errorf("Transfer-Encoding = %v; want none (the body ends with the connection)", te)
	}
	if _, err := http.ParseTime(st.resp.Header.Get("Date")); err != nil {
		t.Errorf("Date header %q: %v; want an HTTP date, as net/http sends", st.resp.Header.Get("Date"), err)
	}
	if got := st.resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q; want no-cache", got)
	}
	if f := st.next(t); f.retry != "2000" {
		t.Errorf("first frame = %+v; want retry 2000", f)
	}
	wantInv := func(rev statesync.Revision) {
		t.Helper()
		f := st.nextEvent(t)
		var inv statesync.Invalidation
		mustJSON(t, []byte(f.data), &inv)
		if f.event != "invalidation" || inv.Topic != "a" || inv.Revision != rev {
			t.Fatalf("frame = %+v; want an invalidation of a at %v", f, rev)
		}
	}
	wantInv(w.Revision)
	w2 := s.put(t, "a", `{"x":2}`)
	wantInv(w2.Revision)
	if got := s.h.Stats().StreamsOpen; got != 1 {
		t.Errorf("StreamsOpen = %d; want 1", got)
	}
}

// HijackStreams with inline snapshots and heartbeats.
func TestHijackedStreamInlineAndHeartbeat(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{HijackStreams: true, Heartbeat: 20 * time.Millisecond})
	s.put(t, "a", `{"x":1}`)
	st := s.openStream(t, "/v1/events?topic=a&inline=1024")
	f := st.nextEvent(t)
	var snap struct {
		Topic    string          `json:"topic"`
		Revision string          `json:"revision"`
		Data     json.RawMessage `json:"data"`
	}
	mustJSON(t, []byte(f.data), &snap)
	if f.event != "snapshot" || snap.Topic != "a" || string(snap.Data) != `{"x":1}` {
		t.Fatalf("first event = %+v; want an inline snapshot of a with {\"x\":1}", f)
	}
	for {
		if f := st.next(t); f.comment == "heartbeat" {
			break
		}
	}
}

// HijackStreams: a client that goes away is noticed at once (not at the
// next heartbeat), and its stream's goroutines end.
func TestHijackedStreamClientGone(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{HijackStreams: true, Heartbeat: time.Hour})
	conn, err := net.Dial("tcp", s.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("response = %q, %v; want HTTP/1.1 200 OK", buf[:n], err)
	}
	poll.Until(t, "the stream to be registered", func() bool { return s.h.Stats().StreamsOpen == 1 })
	conn.Close()
	poll.Until(t, "the stream to end after the client closed", func() bool { return s.h.Stats().StreamsOpen == 0 })
}

// HijackStreams: Shutdown ends hijacked streams (which the http.Server no
// longer tracks) and waits for their goroutines; the client sees the end
// of the body.
func TestHijackedStreamShutdown(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{HijackStreams: true})
	st := s.openStream(t, "/v1/events?topic=a")
	st.next(t) // retry hint
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v; want nil", err)
	}
	if got := s.h.Stats().StreamsOpen; got != 0 {
		t.Errorf("StreamsOpen after Shutdown = %d; want 0", got)
	}
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, st.br); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("reading the stream to its end = %v; want a clean EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end after Shutdown")
	}
}

// HijackStreams: the Go client follows topics over hijacked streams.
func TestHijackedStreamClient(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{HijackStreams: true})
	c, err := httpsync.NewClient(s.ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	applied := make(chan statesync.Revision, 16)
	cons, err := statesync.NewConsumer("a", c, c, statesync.ApplierFunc(func(_ context.Context, snap statesync.Snapshot) error {
		applied <- snap.Revision
		return nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { cons.Stop(); _ = cons.Wait(context.Background()) }()
	w := s.put(t, "a", `1`)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case rev := <-applied:
			if rev == w.Revision {
				return
			}
		case <-deadline:
			t.Fatalf("the client never applied revision %v", w.Revision)
		}
	}
}

// A ResponseWriter that cannot hijack (here a wrapper that hides the
// Hijacker) is served the standard way.
func TestHijackStreamsFallback(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{HijackStreams: true})
	s.ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.h.ServeHTTP(struct {
			http.ResponseWriter
			http.Flusher
		}{w, w.(http.Flusher)}, r)
	})
	st := s.openStream(t, "/v1/events?topic=a")
	if len(st.resp.TransferEncoding) == 0 || st.resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding = %v; want chunked (the standard path)", st.resp.TransferEncoding)
	}
	if f := st.next(t); f.retry != "2000" {
		t.Errorf("first frame = %+v; want retry 2000", f)
	}
}
