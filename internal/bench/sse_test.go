package bench

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// testServer returns the command that starts this test binary as the
// server process of the SSE scenarios (TestSSEServerChild).
func testServer(t testing.TB) ServerCommand {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("os.Executable: %v", err)
	}
	return ServerCommand{Path: exe, Args: []string{"-test.run=^TestSSEServerChild$", "-test.count=1"}}
}

// TestSSEServerChild is the server process of the SSE tests, which start
// this test binary again with envSSEServer set; otherwise it skips. The
// package's TestMain then checks that the server left no goroutine behind
// (B-GO-06).
func TestSSEServerChild(t *testing.T) {
	cfg := os.Getenv(envSSEServer)
	if cfg == "" {
		t.Skip("the server process of the SSE tests, which start it")
	}
	if err := runServerRole(t.Context(), cfg, os.Stdin, os.Stdout); err != nil {
		t.Fatalf("runServerRole: %v", err)
	}
}

// Every handle, each over its own connection, converges on the last of
// several writes made through the HTTP API (B-E2E-25 over SSE); in pull
// mode each handle GETs at most once per write, in inline mode never,
// whether the consumers refresh on their own goroutines or inline.
func TestSSEFanoutConverges(t *testing.T) {
	const consumers, writes = 20, 3
	for _, v := range []struct{ inline, refresh bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		inline := v.inline
		mode := map[bool]string{false: ModePull, true: ModeInline}[inline]
		t.Run(mode+"/"+refreshMode(v.refresh), func(t *testing.T) {
			r, err := SSEFanout(t.Context(), SSEFanoutConfig{Consumers: consumers, Writes: writes, Interval: 50 * time.Millisecond,
				Inline: inline, InlineRefresh: v.refresh, Server: testServer(t), Logf: t.Logf})
			if err != nil {
				t.Fatalf("SSEFanout: %v", err)
			}
			t.Logf("%+v", r)
			if !r.Converged {
				t.Errorf("SSEFanout(%s).Converged = false; want true", mode)
			}
			if r.errors != 0 {
				t.Errorf("SSEFanout(%s): consumers reported %d errors; want 0", mode, r.errors)
			}
			if r.Name != NameSSEFanout || r.Mode != mode || r.Refresh != refreshMode(v.refresh) || r.Consumers != consumers || r.Writes != writes {
				t.Errorf("SSEFanout(%s) = %+v; want name %s, mode %s, %d consumers, %d writes", mode, r, NameSSEFanout, mode, consumers, writes)
			}
			if !(0 <= r.P50Ms && r.P50Ms <= r.P99Ms && r.P99Ms <= r.MaxMs) {
				t.Errorf("SSEFanout(%s) latencies p50 %v, p99 %v, max %v; want 0 ≤ p50 ≤ p99 ≤ max", mode, r.P50Ms, r.P99Ms, r.MaxMs)
			}
			lo, hi := uint64(consumers), uint64(consumers*writes)
			if inline {
				lo, hi = 0, 0
			}
			if r.SnapshotGets < lo || r.SnapshotGets > hi {
				t.Errorf("SSEFanout(%s).SnapshotGets = %d; want between %d and %d", mode, r.SnapshotGets, lo, hi)
			}
		})
	}
}

// After the server restarts with a new epoch, every handle reconnects and
// applies the same revision again (B-REV-13, B-E2E-07), each with one GET,
// and the server encodes the snapshot once for all of them.
func TestSSEReconnectHerd(t *testing.T) {
	const consumers = 20
	r, err := SSEReconnectHerd(t.Context(), SSEHerdConfig{Consumers: consumers, Server: testServer(t), Logf: t.Logf})
	if err != nil {
		t.Fatalf("SSEReconnectHerd: %v", err)
	}
	t.Logf("%+v", r)
	want := SSEHerdResult{Name: NameSSEReconnectHerd, Consumers: consumers, SnapshotBuilds: 1, SnapshotGets: consumers}
	if got := (SSEHerdResult{Name: r.Name, Consumers: r.Consumers, SnapshotBuilds: r.SnapshotBuilds, SnapshotGets: r.SnapshotGets}); got != want {
		t.Errorf("SSEReconnectHerd(%d) = %+v; want %+v", consumers, got, want)
	}
	if r.errors != 0 {
		t.Errorf("SSEReconnectHerd: consumers reported %d errors; want 0", r.errors)
	}
	if !(r.MsToConverge > 0) {
		t.Errorf("SSEReconnectHerd.MsToConverge = %v; want > 0", r.MsToConverge)
	}
}

// The JSON lines of the SSE scenarios have exactly the field names of
// scenarios.md, plus name (and refresh for sse_fanout).
func TestSSEResultFieldNames(t *testing.T) {
	tests := []struct {
		r    Result
		want []string
	}{
		{SSEFanoutResult{}, []string{"name", "consumers", "mode", "refresh", "writes", "p50_ms", "p99_ms", "max_ms", "snapshot_gets",
			"server_rss_bytes_per_consumer", "converged"}},
		{SSEHerdResult{}, []string{"name", "consumers", "ms_to_converge", "snapshot_builds", "snapshot_gets"}},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(maps.Keys(m))
		want := slices.Sorted(slices.Values(tt.want))
		if !slices.Equal(got, want) {
			t.Errorf("fields of %T = %v; want %v", tt.r, got, want)
		}
	}
}

func TestSSESizes(t *testing.T) {
	def := DefaultSizes()
	tests := []struct {
		arg  string
		want SSESizes
	}{
		{"", SSESizes{Fanout: []SSEFanoutSize{{1000, 20, false}, {10000, 20, false}}, HerdConsumers: 10000}},
		{"0.01", SSESizes{Fanout: []SSEFanoutSize{{10, 1, false}, {100, 1, false}}, HerdConsumers: 100}},
		{"0.1", SSESizes{Fanout: []SSEFanoutSize{{100, 2, false}, {1000, 2, false}}, HerdConsumers: 1000}},
		{"sse_fanout=20x3", SSESizes{Fanout: []SSEFanoutSize{{20, 3, false}}, HerdConsumers: 10000}},
		{"sse_reconnect_herd=7,sse_fanout=20x3,fanout=2x2,sse_fanout=5x1", SSESizes{Fanout: []SSEFanoutSize{{20, 3, false}, {5, 1, false}}, HerdConsumers: 7}},
		{"sse_fanout=20x3/h2,sse_fanout=5x1", SSESizes{Fanout: []SSEFanoutSize{{20, 3, true}, {5, 1, false}}, HerdConsumers: 10000}},
	}
	for _, tt := range tests {
		got, err := ParseSizes(tt.arg)
		if err != nil {
			t.Errorf("ParseSizes(%q): %v", tt.arg, err)
			continue
		}
		if !slices.Equal(got.SSE.Fanout, tt.want.Fanout) || got.SSE.HerdConsumers != tt.want.HerdConsumers {
			t.Errorf("ParseSizes(%q).SSE = %+v; want %+v", tt.arg, got.SSE, tt.want)
		}
		if tt.arg == "sse_fanout=20x3" && (got.Cycles != def.Cycles || !slices.Equal(got.Fanout, def.Fanout)) {
			t.Errorf("ParseSizes(%q) = %+v; want the other sizes at their defaults", tt.arg, got)
		}
	}
	for _, arg := range []string{"sse_fanout=10", "sse_fanout=0x5", "sse_fanout=5x0", "sse_fanout=x", "sse_reconnect_herd=0", "sse_reconnect_herd=a"} {
		if got, err := ParseSizes(arg); err == nil {
			t.Errorf("ParseSizes(%q) = %+v; want an error", arg, got.SSE)
		}
	}
}

// sse_fanout runs at each size in pull mode, inline mode and inline mode
// with InlineRefresh consumers; sse_reconnect_herd once.
func TestSSEScenarios(t *testing.T) {
	all := Scenarios(DefaultSizes())
	for name, want := range map[string]int{NameSSEFanout: 6, NameSSEReconnectHerd: 1} {
		got, err := Select(all, []string{name})
		if err != nil {
			t.Fatalf("Select(%q): %v", name, err)
		}
		if len(got) != want {
			t.Errorf("len(Select(%q)) = %d; want %d", name, len(got), want)
		}
	}
}

// encodings counts one build per distinct body of a revision, only for 200
// responses without Content-Encoding, and passes Flush through (the event
// stream needs it).
func TestEncodings(t *testing.T) {
	body := []byte(`{"revision":"1","data":null}`)
	other := []byte(`{"revision":"2","data":null}`)
	e := &encodings{seen: map[string]map[*byte][]byte{}}
	var respond func(w http.ResponseWriter)
	h := e.watch(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { respond(w) }))
	serve := func(path string, fn func(w http.ResponseWriter)) {
		respond = fn
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	withTag := func(tag string, status int, b []byte) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("ETag", tag)
			if status != 0 {
				w.WriteHeader(status)
			}
			_, _ = w.Write(b)
		}
	}
	serve("/v1/topics/t", withTag(`"e.1"`, 0, body))
	serve("/v1/topics/t", withTag(`"e.1"`, http.StatusOK, body))
	serve("/v1/topics/t", withTag(`"e.1"`, http.StatusNotFound, slices.Clone(body)))
	serve("/v1/topics", withTag(`"e.1"`, http.StatusOK, slices.Clone(body)))
	serve("/v1/topics/t", func(w http.ResponseWriter) {
		w.Header().Set("Content-Encoding", "gzip")
		withTag(`"e.1"`, http.StatusOK, slices.Clone(body))(w)
	})
	if b, r := e.counts(); b != 1 || r != 1 {
		t.Errorf("counts() after one body served twice = %d, %d; want 1, 1", b, r)
	}
	serve("/v1/topics/t", withTag(`"e.2"`, http.StatusOK, other))
	serve("/v1/topics/t", withTag(`"e.1"`, http.StatusOK, slices.Clone(body)))
	if b, r := e.counts(); b != 2 || r != 2 {
		t.Errorf("counts() after a copy of revision 1 and revision 2 = %d, %d; want 2, 2", b, r)
	}
	var flushErr error
	serve("/v1/events", func(w http.ResponseWriter) { flushErr = http.NewResponseController(w).Flush() })
	serve("/v1/topics/t", func(w http.ResponseWriter) { flushErr = http.NewResponseController(w).Flush() })
	if flushErr != nil {
		t.Errorf("Flush through the watcher: %v", flushErr)
	}
}

func TestPercentileMs(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want float64
	}{
		{nil, 50, 0},
		{ms(7), 99, 7},
		{ms(4, 1, 3, 2), 50, 2},
		{ms(4, 1, 3, 2), 100, 4},
		{append(ms(make([]int, 99)...), 1000*time.Millisecond), 99, 0},
		{append(ms(make([]int, 98)...), ms(5, 1000)...), 99, 5},
	}
	for _, tt := range tests {
		if got := percentileMs(slices.Clone(tt.in), tt.p); got != tt.want {
			t.Errorf("percentileMs(%v, %v) = %v; want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

// BenchmarkSSEFanoutWrite times one write through the HTTP API until each
// of 100 handles, each over its own stream, has applied it.
func BenchmarkSSEFanoutWrite(b *testing.B) {
	for _, inline := range []bool{false, true} {
		b.Run(map[bool]string{false: ModePull, true: ModeInline}[inline], func(b *testing.B) {
			benchSSEFanoutWrite(b, 100, inline)
		})
	}
}

func benchSSEFanoutWrite(b *testing.B, consumers int, inline bool) {
	ctx := b.Context()
	srv, err := startServer(ctx, testServer(b), sseServerConfig{Addr: "127.0.0.1:0", Streams: consumers})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.stop(ctx) }()
	w, err := httpsync.NewClient(srv.base, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	if _, err := w.Put(ctx, topic, writeData(0)); err != nil {
		b.Fatal(err)
	}
	f, err := newFleet(ctx, srv.base, nil, consumers, inline, false, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer f.close()
	st0, err := srv.stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		snap, err := w.Put(ctx, topic, writeData(n+1))
		if err != nil {
			b.Fatal(err)
		}
		ok, err := f.waitUntil(ctx, convergeTimeout, func(c *statesync.Consumer) bool { return c.Revision() >= snap.Revision })
		if err != nil || !ok {
			b.Fatalf("write %d: not every handle applied it (%v)", n+1, err)
		}
		n++
	}
	st1, err := srv.stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st1.SnapshotGets-st0.SnapshotGets)/float64(n), "gets/op")
}

// Over HTTP/2 (TLS), pull mode converges too, each handle GETting at most
// once per write, and the consumers' GETs share their streams'
// connections: the server sees one connection per consumer.
func TestSSEFanoutHTTP2(t *testing.T) {
	const consumers, writes = 10, 3
	r, err := SSEFanout(t.Context(), SSEFanoutConfig{Consumers: consumers, Writes: writes, Interval: 50 * time.Millisecond,
		HTTP2: true, Server: testServer(t), Logf: t.Logf})
	if err != nil {
		t.Fatalf("SSEFanout over HTTP/2: %v", err)
	}
	if !r.Converged || r.errors != 0 || r.Proto != "h2" || r.Mode != ModePull {
		t.Errorf("SSEFanout over HTTP/2 = %+v (%d errors); want converged, proto h2, pull mode, no errors", r, r.errors)
	}
	if r.SnapshotGets < consumers || r.SnapshotGets > consumers*writes {
		t.Errorf("SSEFanout over HTTP/2: %d snapshot GETs; want %d to %d", r.SnapshotGets, consumers, consumers*writes)
	}
	if r.conns != consumers {
		t.Errorf("SSEFanout over HTTP/2: the server accepted %d connections from %d consumers; want one each (the GETs ride the streams' connections)", r.conns, consumers)
	}
}

// The writes of the SSE scenarios carry a 100-byte JSON object, as the
// peers' measurements did.
func TestWriteData(t *testing.T) {
	for _, i := range []int{0, 7, 123456} {
		d := writeData(i)
		var v struct {
			Write int    `json:"write"`
			Pad   string `json:"pad"`
		}
		if err := json.Unmarshal(d, &v); err != nil || v.Write != i || len(d) != writeSize {
			t.Errorf("writeData(%d) = %s (%d bytes): %v, write %d; want valid JSON of %d bytes with write %d", i, d, len(d), err, v.Write, writeSize, i)
		}
	}
}
