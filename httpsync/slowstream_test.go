package httpsync_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync/httpsync"
)

// bigData returns a JSON object of about size bytes, different for each i.
func bigData(size, i int) json.RawMessage {
	return json.RawMessage(`{"i":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat("x", size-32) + `"}`)
}

// openRawStream sends GET path on a new pipe connection of b and returns
// the response, whose body reader reads the connection through rd (nil:
// directly).
func openRawStream(t *testing.T, b *bubbleServer, path string, rd func(net.Conn) io.Reader) (net.Conn, *http.Response) {
	t.Helper()
	conn, err := b.net.dial(context.Background(), "pipe", "pipe")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://pipe"+path, nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	var r io.Reader = conn
	if rd != nil {
		r = rd(conn)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(r, 64<<10), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d; want 200", path, resp.StatusCode)
	}
	return conn, resp
}

// forBothStreamPaths runs test with the standard ResponseWriter stream and
// with a hijacked one.
func forBothStreamPaths(t *testing.T, test func(t *testing.T, hijack bool)) {
	for _, hijack := range []bool{false, true} {
		t.Run("hijack="+strconv.FormatBool(hijack), func(t *testing.T) { test(t, hijack) })
	}
}

// Issue 9, item 4: a client that stops reading while its stream has more
// than MaxStreamBuffer to send (the rest of a large inline snapshot and
// the next one) is disconnected once it stays over the bound for 5 s,
// long before the write timeout; one under the bound is left to the write
// timeout.
func TestSlowStreamDisconnected(t *testing.T) {
	forBothStreamPaths(t, func(t *testing.T, hijack bool) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubbleServer(t, &httpsync.HandlerOptions{HijackStreams: hijack, Heartbeat: time.Hour})
			defer b.stop()
			ctx := context.Background()
			if _, err := b.src.Put(ctx, "big", bigData(600_000, 0)); err != nil {
				t.Fatal(err)
			}
			conn, resp := openRawStream(t, b, "/v1/events?topic=big&inline=1000000", nil)
			defer conn.Close()
			if _, err := io.ReadFull(resp.Body, make([]byte, 8<<10)); err != nil {
				t.Fatal(err)
			}
			// The client reads no more: about 600 KB stay unsent, under
			// the bound.
			time.Sleep(20 * time.Second)
			synctest.Wait()
			if st := b.h.Stats(); st.StreamsOpen != 1 || st.SlowDisconnects != 0 {
				t.Fatalf("a stalled stream under the bound after 20 s: %d open, %d slow disconnects; want 1 open, 0 (the write timeout's business)", st.StreamsOpen, st.SlowDisconnects)
			}
			// A new revision: 600 KB more to send, over the bound.
			if _, err := b.src.Put(ctx, "big", bigData(600_000, 1)); err != nil {
				t.Fatal(err)
			}
			over := time.Now()
			time.Sleep(5*time.Second - 10*time.Millisecond)
			synctest.Wait()
			if st := b.h.Stats(); st.StreamsOpen != 1 || st.SlowDisconnects != 0 {
				t.Fatalf("%v over the bound: %d open, %d slow disconnects; want 1 open (within the grace)", time.Since(over), st.StreamsOpen, st.SlowDisconnects)
			}
			time.Sleep(20 * time.Millisecond)
			synctest.Wait()
			if st := b.h.Stats(); st.StreamsOpen != 0 || st.SlowDisconnects != 1 {
				t.Fatalf("%v over the bound: %d open, %d slow disconnects; want 0 open, 1 slow disconnect", time.Since(over), st.StreamsOpen, st.SlowDisconnects)
			}
		})
	})
}

// slowReader reads at most 32 KiB per 10 ms: 3.2 MB/s.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 32<<10)])
}

// A client that reads at a normal speed is never cut, even when the
// snapshots it gets inline are larger than MaxStreamBuffer and written
// faster than it reads (it misses revisions, never the latest).
func TestSlowStreamHealthyClientNotCut(t *testing.T) {
	forBothStreamPaths(t, func(t *testing.T, hijack bool) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubbleServer(t, &httpsync.HandlerOptions{HijackStreams: hijack, Heartbeat: time.Hour})
			defer b.stop()
			ctx := context.Background()
			size := func(i int) int { return []int{600_000, 1_500_000}[i%2] }
			if _, err := b.src.Put(ctx, "big", bigData(size(0), 0)); err != nil {
				t.Fatal(err)
			}
			conn, resp := openRawStream(t, b, "/v1/events?topic=big&inline=2000000", func(c net.Conn) io.Reader { return slowReader{c} })
			defer conn.Close()
			const writes = 100
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 1; i <= writes; i++ {
					time.Sleep(50 * time.Millisecond) // 20 writes a second, up to 30 MB/s
					if _, err := b.src.Put(ctx, "big", bigData(size(i), i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			br := bufio.NewReaderSize(resp.Body, 64<<10)
			snapshots := 0
			last := `"data":{"i":` + strconv.Itoa(writes) + `,`
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading the stream after %d snapshots: %v (%d slow disconnects)", snapshots, err, b.h.Stats().SlowDisconnects)
				}
				if strings.HasPrefix(line, "data: ") {
					snapshots++
					if strings.Contains(line[:min(len(line), 200)], last) {
						break
					}
				}
			}
			<-done
			if st := b.h.Stats(); st.SlowDisconnects != 0 || st.StreamsOpen != 1 {
				t.Errorf("%d slow disconnects, %d streams open; want 0 and 1", st.SlowDisconnects, st.StreamsOpen)
			}
			t.Logf("%d writes of 0.6 and 1.5 MB, %d received inline by a client reading 3.2 MB/s", writes, snapshots)
		})
	})
}

// A write holds at most one inline snapshot beyond MaxStreamBuffer: the
// other topics of a stream's first frames come as invalidations.
func TestInlineBeyondStreamBufferBecomesInvalidation(t *testing.T) {
	s := newTestServer(t, nil)
	for _, topic := range []string{"a", "b", "c"} {
		s.put(t, topic, string(bigData(400_000, 0)))
	}
	st := s.openStream(t, "/v1/events?topic=a&topic=b&topic=c&inline=1000000")
	var events []string
	for range 3 {
		f := st.nextEvent(t)
		var v struct{ Topic string }
		mustJSON(t, []byte(f.data), &v)
		events = append(events, f.event+" "+v.Topic)
	}
	if got, want := strings.Join(events, ", "), "snapshot a, snapshot b, invalidation c"; got != want {
		t.Errorf("first frames %s; want %s (1 MiB holds two snapshots of 400 KB)", got, want)
	}
}
