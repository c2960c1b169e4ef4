package hostile_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
)

// Issue 9, item 4: readers that never read, each following a large topic
// with inline snapshots, cost the daemon memory flat in their number
// (every stream writes the one shared encoding of a revision instead of a
// copy of its own), writes stay fast, and each stalled stream is cut once
// more than MaxStreamBuffer (1 MiB) of its data stays unsent.
//
// STATESYNC_HOSTILE_STREAMS sets the number of streams (default 500), to
// reproduce the figures at 1000 or 2000:
//
//	STATESYNC_HOSTILE_STREAMS=1000 go test -v -run TestStalledInlineStreams ./internal/hostile
func TestStalledInlineStreams(t *testing.T) {
	n := 500
	if s := os.Getenv("STATESYNC_HOSTILE_STREAMS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("STATESYNC_HOSTILE_STREAMS=%q: want a positive number", s)
		}
		n = v
	}
	const (
		size = 900_000 // bytes of the topic's data
		puts = 5
	)
	srv := streamStartDaemon(t)
	base := "http://" + srv.Addr().String()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()

	if d, code := streamPut(t, hc, base, "t", streamBigJSON(size, 0)); code != http.StatusOK {
		t.Fatalf("PUT of %d bytes = %d; want 200", size, code)
	} else {
		t.Logf("PUT of %d bytes on an idle daemon: %v", size, d)
	}
	heap0, rss0 := streamHeap()

	// n readers that send the request and never read a byte.
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatalf("dialing stream %d: %v", i, err)
		}
		conns = append(conns, c)
		_ = c.(*net.TCPConn).SetReadBuffer(4096) // so that the server's writes block soon
		if _, err := io.WriteString(c, "GET /v1/events?topic=t&inline=1000000 HTTP/1.1\r\nHost: "+srv.Addr().String()+"\r\n\r\n"); err != nil {
			t.Fatalf("stream %d: sending the request: %v", i, err)
		}
	}
	streamWaitMetric(t, hc, base, "statesync_streams_open", float64(n), 30*time.Second)
	// Each stream has built its first frame, the snapshot inline.
	streamWaitMetric(t, hc, base, "statesync_snapshots_sent_total", float64(n), 30*time.Second)
	heapOpen, _ := streamHeap()

	// Writes to the topic while every stream is stalled.
	var maxPut time.Duration
	for i := range puts {
		d, code := streamPut(t, hc, base, "t", streamBigJSON(size, i+1))
		if code != http.StatusOK {
			t.Fatalf("PUT %d = %d; want 200", i+1, code)
		}
		maxPut = max(maxPut, d)
	}
	time.Sleep(200 * time.Millisecond) // let the fan-out reach every stream
	heapPut, rssPut := streamHeap()
	tcpPut := streamKernelTCP()
	peak := max(heapOpen, heapPut)
	growth := int64(peak) - int64(heap0)
	t.Logf("%d stalled inline streams on a %d-byte topic, %d PUTs: heap in use %.1f MB before, %.1f MB with the streams open, %.1f MB after the PUTs (growth %.1f MB); RSS %.1f MB -> %.1f MB; slowest PUT %v",
		n, size, puts, streamMB(heap0), streamMB(heapOpen), streamMB(heapPut), float64(growth)/1e6, streamMB(rss0), streamMB(rssPut), maxPut)
	if limit := int64(150e6); growth > limit {
		t.Errorf("heap grew by %.1f MB with %d stalled streams; want < %.0f MB (flat in streams x snapshot size)", float64(growth)/1e6, n, float64(limit)/1e6)
	}
	if maxPut > 5*time.Second {
		t.Errorf("slowest PUT took %v with %d stalled streams; want < 5s", maxPut, n)
	}

	// Each stalled stream has more than 1 MiB unsent (the rest of its first
	// frame, which the 256 KB kernel send buffer of its connection could
	// not take, and the next snapshot): it is cut after a 5 s grace, long
	// before the 1-minute write timeout, and its connection reset, which
	// frees its kernel memory too.
	start := time.Now()
	streamWaitMetric(t, hc, base, "statesync_streams_open", 0, 30*time.Second)
	slow := streamMetric(t, hc, base, "statesync_streams_slow_disconnects_total")
	t.Logf("stalled streams cut %v after the PUTs, %v of them as slow; kernel TCP memory (whole host) %.1f MB after the PUTs, %.1f MB after the cut",
		time.Since(start).Round(100*time.Millisecond), slow, streamMB(tcpPut), streamMB(streamKernelTCP()))
	if slow != float64(n) {
		t.Errorf("statesync_streams_slow_disconnects_total = %v; want %d", slow, n)
	}

	// A reader that reads gets the current state inline.
	resp, err := hc.Get(base + "/v1/events?topic=t&inline=1000000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	want := []byte(`"data":{"i":` + strconv.Itoa(puts) + `,`)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			t.Fatalf("reading the stream of a reader: %v", err)
		}
		if bytes.HasPrefix(line, []byte("data: ")) {
			if !bytes.Contains(line[:min(len(line), 300)], want) {
				t.Fatalf("first data line %.200q; want the snapshot of PUT %d", line, puts)
			}
			break
		}
	}
}

// streamStartDaemon starts a daemon with a memory store on a loopback
// port; the test's cleanup stops it.
func streamStartDaemon(t *testing.T) *daemon.Server {
	t.Helper()
	return startDaemon(t, "", func(c *daemon.Config) {
		c.ShutdownTimeout = 10 * time.Second
		c.MaxConnsPerIP = 0 // every client of the test comes from 127.0.0.1
	})
}

// streamBigJSON returns a JSON object of about size bytes, different for
// each i.
func streamBigJSON(size, i int) string {
	return `{"i":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat("x", size-32) + `"}`
}

// streamPut PUTs data and returns how long it took and the status.
func streamPut(t *testing.T, hc *http.Client, base, topic, data string) (time.Duration, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, base+"/v1/topics/"+topic, strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", topic, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode
}

// streamHeap collects garbage and returns the heap in use and the
// process's resident set size (0 where /proc is missing).
func streamHeap() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kb uint64
				if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
					rss = kb << 10
				}
			}
		}
	}
	return ms.HeapInuse, rss
}

func streamMB(b uint64) float64 { return float64(b) / 1e6 }

// streamKernelTCP returns the memory of the kernel's TCP sockets (all of
// them, not only this process's) from /proc/net/sockstat; 0 where missing.
func streamKernelTCP() uint64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "TCP: "); ok {
			f := strings.Fields(rest)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "mem" {
					pages, _ := strconv.ParseUint(f[i+1], 10, 64)
					return pages * uint64(os.Getpagesize())
				}
			}
		}
	}
	return 0
}

// streamMetric returns the value of an unlabelled metric of the daemon's
// /metrics (0 if absent).
func streamMetric(t *testing.T, hc *http.Client, base, name string) float64 {
	t.Helper()
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return v
		}
	}
	return 0
}

// streamWaitMetric waits until the metric has the value want.
func streamWaitMetric(t *testing.T, hc *http.Client, base, name string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := streamMetric(t, hc, base, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %v; want %v", name, got, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
