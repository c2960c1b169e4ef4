package httpsync_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/poll"
)

// decodeInv decodes an invalidation frame's data.
func decodeInv(t testing.TB, f frame) statesync.Invalidation {
	t.Helper()
	if f.event != "invalidation" {
		t.Fatalf("frame %+v; want event invalidation", f)
	}
	inv, err := statesync.DecodeInvalidation([]byte(f.data))
	if err != nil {
		t.Fatalf("DecodeInvalidation(%s): %v", f.data, err)
	}
	return inv
}

// A stream starts with a retry hint and the current revision of each
// topic, then sends a frame after each write, carrying the writer's
// source id and the time (B-TRANS-08, B-PROTO-01, B-TOPIC-01).
func TestEventsInitialFramesThenChanges(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "a", `1`)
	st := s.openStream(t, "/v1/events?topic=a&topic=b&topic=a")
	if cc := st.resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q; want no-cache", cc)
	}
	if f := st.next(t); f.retry != "2000" {
		t.Fatalf("first frame = %+v; want retry: 2000", f)
	}
	want := []statesync.Invalidation{{Topic: "a", Revision: 1, Epoch: "ep0"}, {Topic: "b", Revision: 0, Epoch: "ep0"}}
	for _, w := range want {
		if got := decodeInv(t, st.nextEvent(t)); got != w {
			t.Fatalf("initial frame = %+v; want %+v", got, w)
		}
	}
	for i, topic := range []string{"b", "a", "b"} {
		resp, body := s.do(t, "PUT", "/v1/topics/"+topic, strconv.Itoa(i), "X-Source-Id", "writer")
		if resp.StatusCode != 200 {
			t.Fatalf("PUT = %d %s", resp.StatusCode, body)
		}
		got := decodeInv(t, st.nextEvent(t))
		wantRev := s.get(t, topic).Revision
		if got.Topic != topic || got.Revision != wantRev || got.Epoch != "ep0" || got.SourceID != "writer" || got.TimestampMs == 0 {
			t.Errorf("frame after PUT %s = %+v; want revision %d, epoch ep0, sourceId writer, a timestamp", topic, got, wantRev)
		}
	}
	// Topics the stream does not follow are not sent.
	s.put(t, "other", `1`)
	s.put(t, "a", `9`)
	if got := decodeInv(t, st.nextEvent(t)); got.Topic != "a" || got.Revision != 3 {
		t.Errorf("frame = %+v; want a at 3 (nothing of topic other)", got)
	}
	if got := s.h.Stats(); got.StreamsOpen != 1 || got.StreamsTotal != 1 || got.InvalidationsSent != 6 {
		t.Errorf("Stats() = %+v; want 1 open, 1 total, 6 invalidations sent", got)
	}
}

// With inline=N, a snapshot of at most N bytes travels in the frame; a
// larger one is announced by an invalidation. Data with line breaks is
// split over data lines and joins back to the same JSON.
func TestEventsInline(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "small", "{\n  \"theme\": \"dark\",\r\n  \"size\": 2\n}")
	s.put(t, "big", `"`+strings.Repeat("x", 200)+`"`)
	st := s.openStream(t, "/v1/events?topic=small&topic=big&inline=100")

	f := st.nextEvent(t)
	if f.event != "snapshot" {
		t.Fatalf("frame = %+v; want event snapshot", f)
	}
	snap, err := statesync.DecodeSnapshot([]byte(f.data))
	if err != nil {
		t.Fatalf("DecodeSnapshot(%s): %v", f.data, err)
	}
	inv, err := statesync.DecodeInvalidation([]byte(f.data))
	if err != nil || inv.Topic != "small" || snap.Revision != 1 || snap.Epoch != "ep0" {
		t.Fatalf("inline frame %s: topic %q revision %d epoch %q (%v); want small at 1 in ep0", f.data, inv.Topic, snap.Revision, snap.Epoch, err)
	}
	var data struct {
		Theme string
		Size  int
	}
	if err := json.Unmarshal(snap.Data, &data); err != nil || data.Theme != "dark" || data.Size != 2 {
		t.Errorf("inline data %q = %+v (%v); want dark, 2", snap.Data, data, err)
	}
	if f := st.nextEvent(t); f.event != "invalidation" || decodeInv(t, f).Topic != "big" {
		t.Errorf("frame for a snapshot over the inline limit = %+v; want an invalidation of big", f)
	}
	resp, _ := s.do(t, "PUT", "/v1/topics/small", `{"theme":"light"}`, "X-Source-Id", "me")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	f = st.nextEvent(t)
	snap, _ = statesync.DecodeSnapshot([]byte(f.data))
	inv, _ = statesync.DecodeInvalidation([]byte(f.data))
	if f.event != "snapshot" || string(snap.Data) != `{"theme":"light"}` || snap.Revision != 2 || inv.SourceID != "me" {
		t.Errorf("frame after PUT = %+v; want a snapshot at 2 of {\"theme\":\"light\"} from me", f)
	}
	if got := s.h.Stats(); got.SnapshotsSent != 2 || got.InvalidationsSent != 1 {
		t.Errorf("Stats(): %d snapshots, %d invalidations sent; want 2 and 1", got.SnapshotsSent, got.InvalidationsSent)
	}
}

// Heartbeat comments keep an idle stream alive.
func TestEventsHeartbeat(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{Heartbeat: 10 * time.Millisecond, RetryHint: 1500 * time.Millisecond})
	st := s.openStream(t, "/v1/events?topic=a")
	if f := st.next(t); f.retry != "1500" {
		t.Fatalf("first frame = %+v; want retry: 1500", f)
	}
	decodeInv(t, st.nextEvent(t))
	if f := st.next(t); f.comment != "heartbeat" {
		t.Fatalf("frame on an idle stream = %+v; want the heartbeat comment", f)
	}
	if s.h.Stats().Heartbeats == 0 {
		t.Error("Stats().Heartbeats = 0 after a heartbeat")
	}
}

// Close and Shutdown end the streams: the client sees the end of the body,
// and Shutdown returns once the streams' handlers have (B-GO-06).
func TestEventsEndOnClose(t *testing.T) {
	s := newTestServer(t, nil)
	streams := []*sseStream{s.openStream(t, "/v1/events?topic=a"), s.openStream(t, "/v1/events?topic=a&topic=b")}
	for _, st := range streams {
		st.nextEvent(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v; want nil", err)
	}
	if got := s.h.Stats().StreamsOpen; got != 0 {
		t.Errorf("StreamsOpen after Shutdown = %d; want 0", got)
	}
	s.put(t, "a", `1`) // the source lives on; the streams are over
	for _, st := range streams {
		for {
			line, err := st.br.ReadString('\n')
			if err != nil {
				break // the end of the stream
			}
			if strings.Contains(line, `"revision":"1"`) {
				t.Errorf("after Shutdown the stream still sent %q", line)
			}
		}
	}
	if err := s.h.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

// A client that goes away ends its stream on the server.
func TestEventsClientGone(t *testing.T) {
	s := newTestServer(t, nil)
	st := s.openStream(t, "/v1/events?topic=a")
	st.nextEvent(t)
	st.resp.Body.Close()
	poll.Until(t, "StreamsOpen = 0", func() bool { return s.h.Stats().StreamsOpen == 0 })
	s.put(t, "a", `1`) // no stream left to notify
}

// smallBufferListener shrinks the send buffer of accepted connections, so
// that a client that stops reading blocks the server's writes soon.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// A reader that does not read while 10,000 writes happen costs bounded
// memory: its stream keeps only the latest pending revision, counting the
// others as coalesced; once it reads, it receives the latest revision
// (DESIGN §3 coalescing, B-GO-02: the source's callback never waits).
func TestEventsSlowReaderCoalesces(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServerOn(t, smallBufferListener{ln}, testEpoch, nil)
	s.hc.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}
	const n = 10_000
	s.put(t, "hot", `0`)
	st := s.openStream(t, "/v1/events?topic=hot")
	decodeInv(t, st.nextEvent(t)) // the initial frame; then the reader stalls

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var last statesync.Snapshot
	for i := range n {
		last = s.put(t, "hot", `{"i":`+strconv.Itoa(i)+`,"pad":"`+strings.Repeat("p", 64)+`"}`)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	stats := s.h.Stats()
	if stats.InvalidationsCoalesced == 0 {
		t.Errorf("InvalidationsCoalesced = 0 after %d writes to a stalled reader; want most of them", n)
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("stalled reader, %d writes: %d frames written, %d coalesced, retained heap growth %d bytes",
		n, stats.InvalidationsSent-1, stats.InvalidationsCoalesced, growth)
	if growth > 4<<20 {
		t.Errorf("retained heap grew by %d bytes while a reader stalled; want bounded (< 4 MiB)", growth)
	}

	// The reader resumes and gets the latest revision.
	for {
		inv := decodeInv(t, st.nextEvent(t))
		if inv.Revision == last.Revision {
			break
		}
		if inv.Revision > last.Revision {
			t.Fatalf("frame at revision %d; the last write was %d", inv.Revision, last.Revision)
		}
	}
	stats = s.h.Stats()
	if got := stats.InvalidationsSent - 1 + stats.InvalidationsCoalesced; got != n {
		t.Errorf("frames sent (%d) + coalesced (%d) = %d; want %d: every write accounted for once", stats.InvalidationsSent-1, stats.InvalidationsCoalesced, got, n)
	}
	if stats.InvalidationsSent-1 >= n/2 {
		t.Errorf("%d frames written for %d writes to a stalled reader; want far fewer", stats.InvalidationsSent-1, n)
	}
}

// Shutdown ends even a stream whose writes are blocked by a reader that
// does not read.
func TestShutdownEndsBlockedStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServerOn(t, smallBufferListener{ln}, testEpoch, &httpsync.HandlerOptions{WriteTimeout: -1})
	st := s.openStream(t, "/v1/events?topic=x&inline=1000000")
	st.nextEvent(t)
	big := `"` + strings.Repeat("z", 100_000) + `"`
	for range 200 { // 20 MB of inline snapshots: more than any socket buffer
		s.put(t, "x", big)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a stalled reader = %v; want nil", err)
	}
}

// With many streams and concurrent writers, every stream receives a topic's
// revisions in increasing order and ends at the last write: the handler's
// fan-out goroutine, which notifies streams off the writers' goroutines,
// keeps each topic's order and loses nothing (DESIGN §3 coalescing,
// B-GO-02).
func TestEventsManyStreamsConverge(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "t", `0`)
	const nStreams, writers, perWriter = 100, 4, 25
	streams := make([]*sseStream, nStreams)
	for i := range streams {
		streams[i] = s.openStream(t, "/v1/events?topic=t")
		decodeInv(t, streams[i].nextEvent(t))
	}
	var wg sync.WaitGroup
	revs := make(chan statesync.Revision, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				req, _ := http.NewRequest(http.MethodPut, s.ts.URL+"/v1/topics/t", strings.NewReader(strconv.Itoa(w*perWriter+i)))
				resp, err := s.hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var res struct {
					Revision statesync.Revision `json:"revision"`
				}
				err = json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("PUT /v1/topics/t = %d, %v; want 200", resp.StatusCode, err)
					return
				}
				revs <- res.Revision
			}
		})
	}
	wg.Wait()
	close(revs)
	var last statesync.Revision
	for r := range revs {
		last = max(last, r)
	}
	for i, st := range streams {
		var prev statesync.Revision
		for prev != last {
			inv := decodeInv(t, st.nextEvent(t))
			if inv.Revision <= prev || inv.Revision > last {
				t.Fatalf("stream %d: frame at revision %d after %d; want increasing revisions up to %d", i, inv.Revision, prev, last)
			}
			prev = inv.Revision
		}
	}
}

// The write deadline of a stream is moved only every WriteTimeout/2, yet a
// client that keeps reading is never cut, and one that stops reading is cut
// between WriteTimeout/2 and WriteTimeout after a write starts blocking.
func TestStreamWriteDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		b := newBubbleServer(t, &httpsync.HandlerOptions{WriteTimeout: timeout, Heartbeat: time.Second})
		defer b.stop()
		conn, err := b.net.dial(context.Background(), "pipe", "pipe")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /v1/events?topic=a HTTP/1.1\r\nHost: pipe\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// Read everything (a heartbeat a second) for 30 s, three timeouts.
		start := time.Now()
		buf := make([]byte, 64<<10)
		for time.Since(start) < 3*timeout {
			if _, err := conn.Read(buf); err != nil {
				t.Fatalf("reading the stream after %v: %v", time.Since(start), err)
			}
		}
		if st := b.h.Stats(); st.StreamsOpen != 1 || st.StreamsTotal != 1 {
			t.Fatalf("a reading client after %v: %d streams open of %d; want 1 of 1", time.Since(start), st.StreamsOpen, st.StreamsTotal)
		}
		// The client stops reading: the next heartbeat's write blocks
		// within a second.
		stopped := time.Now()
		time.Sleep(timeout/2 - 10*time.Millisecond)
		synctest.Wait()
		if got := b.h.Stats().StreamsOpen; got != 1 {
			t.Errorf("%v after the client stopped reading: %d streams open; want 1 (not cut before WriteTimeout/2 of blocking)", time.Since(stopped), got)
		}
		time.Sleep(time.Until(stopped.Add(time.Second + timeout + 10*time.Millisecond)))
		synctest.Wait()
		if got := b.h.Stats().StreamsOpen; got != 0 {
			t.Errorf("%v after the client stopped reading: %d streams open; want 0 (cut within WriteTimeout %v)", time.Since(stopped), got, timeout)
		}
	})
}
