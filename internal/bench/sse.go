package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/sleep"
)

// The SSE scenarios, unlike the others, go over the network: the httpsync
// Handler over a Source serves one topic on 127.0.0.1, in a server process
// of its own (see sse_server.go), and every consumer follows it with an
// httpsync.Client of its own over its own connection (see sse_fleet.go), as
// separate clients would. The writes of sse_fanout go through the HTTP API
// (PUT), made by one more Client in a writer process of its own (see
// sse_writer.go).
//
// The consumers share this process and the machine's cores with the
// server: on a small machine the figures measure the machine as much as
// the code. The notes on stderr say where the time went (CPU per delivery
// in each process, PUT times, per-write latencies) and how the server's
// memory divides between heap and stacks.

// The names of the SSE scenarios.
const (
	NameSSEFanout        = "sse_fanout"
	NameSSEReconnectHerd = "sse_reconnect_herd"
)

// The modes of sse_fanout.
const (
	ModePull   = "pull"   // handles GET the snapshot after each invalidation
	ModeInline = "inline" // the snapshot rides in the event (ClientOptions.Inline)
)

// DefaultSSEInterval is the time between the writes of sse_fanout.
const DefaultSSEInterval = 500 * time.Millisecond

// convergeTimeout bounds the wait for the consumers after the last write
// (sse_fanout) or the restart (sse_reconnect_herd).
const convergeTimeout = time.Minute

// sseScenarios returns the SSE scenarios at the sizes of s: sse_fanout at
// each size in pull mode, then in inline mode, then sse_reconnect_herd.
//
// The sse_reconnect_herd scenario is also how the server process starts
// (`statesync bench sse_reconnect_herd` with envSSEServer set): it then
// serves instead, and returns once its parent closes its stdin.
func sseScenarios(s SSESizes) []Scenario {
	// Notes on the runs (phases, their times, whether the consumers keep
	// connections alive) go to stderr, beside the JSON lines.
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "statesync bench: "+format+"\n", args...) }
	var out []Scenario
	// Pull mode (over HTTP/2 alone for a size with HTTP2: see
	// sse_tls.go), inline mode, and inline mode with consumers that apply
	// inline snapshots on the stream's goroutine (InlineRefresh; in pull
	// mode it changes nothing, every refresh needing a GET).
	for _, f := range s.Fanout {
		variants := []struct{ inline, refresh, h2 bool }{{false, false, false}, {true, false, false}, {true, true, false}}
		if f.HTTP2 {
			variants = variants[:1]
			variants[0].h2 = true
		}
		for _, v := range variants {
			out = append(out, Scenario{NameSSEFanout, func(ctx context.Context) (Result, error) {
				return SSEFanout(ctx, SSEFanoutConfig{Consumers: f.Consumers, Writes: f.Writes, Inline: v.inline,
					InlineRefresh: v.refresh, HTTP2: v.h2, Logf: logf})
			}})
		}
	}
	out = append(out, Scenario{NameSSEReconnectHerd, func(ctx context.Context) (Result, error) {
		if cfg := os.Getenv(envSSEServer); cfg != "" {
			if err := runServerRole(ctx, cfg, os.Stdin, os.Stdout); err != nil {
				return nil, err
			}
			return sseServerResult{Name: "sse_server"}, nil
		}
		return SSEReconnectHerd(ctx, SSEHerdConfig{Consumers: s.HerdConsumers, Logf: logf})
	}})
	return out
}

// sseServerResult is what the server process prints when it ends, after
// its hello line; the parent ignores it.
type sseServerResult struct {
	Name string `json:"name"`
}

func (sseServerResult) rank() float64 { return 0 }

// SSEFanoutConfig configures a run of sse_fanout.
type SSEFanoutConfig struct {
	Consumers int
	Writes    int
	// Interval is the time from one write to the next. 0 means
	// DefaultSSEInterval.
	Interval time.Duration
	// Inline selects inline mode; false is pull mode.
	Inline bool
	// InlineRefresh sets the consumers' ConsumerOptions.InlineRefresh:
	// inline snapshots are applied on each client's stream goroutine.
	InlineRefresh bool
	// HTTP2 serves over TLS, where the consumers speak HTTP/2: their GETs
	// share their streams' connections (see sse_tls.go).
	HTTP2 bool
	// Server starts the server process.
	Server ServerCommand
	// Logf, if set, receives notes on the run (phases and their times).
	Logf func(format string, args ...any)
}

// SSEFanoutResult is the outcome of one sse_fanout run.
type SSEFanoutResult struct {
	Name      string `json:"name"`
	Consumers int    `json:"consumers"`
	Mode      string `json:"mode"`    // ModePull or ModeInline
	Refresh   string `json:"refresh"` // the consumers' RefreshGoroutine or RefreshInline
	// Proto is "h2" when the run is over HTTP/2 (SSEFanoutConfig.HTTP2);
	// absent for HTTP/1.1.
	Proto  string `json:"proto,omitempty"`
	Writes int    `json:"writes"`
	// P50Ms, P99Ms and MaxMs are percentiles (nearest rank) of the
	// latencies, one per write and handle, from the write's acknowledgement
	// (its PUT's response read by the writer process) to the handle's apply
	// of that revision or a later one, by the wall clock; an apply that
	// came before the acknowledgement counts 0, and one that never came
	// counts the time until the wait for it ended (converged is then
	// false).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// SnapshotGets counts the snapshot GETs the server answered 200 from
	// the first write until every handle converged (Handler.Stats).
	SnapshotGets uint64 `json:"snapshot_gets"`
	// ServerRSSBytesPerConsumer is the growth of the server process's
	// resident memory (VmRSS, each time read after a garbage collection
	// that returns freed memory to the operating system) from before the
	// consumers connect to after every one has its stream open and its
	// first snapshot applied (and a second more, for the connections of
	// start-up GETs to close), divided by the consumers. 0 where /proc is
	// not available.
	ServerRSSBytesPerConsumer int64 `json:"server_rss_bytes_per_consumer"`
	// Converged says whether every handle ended at the final revision.
	Converged bool `json:"converged"`

	errors int64  // errors the consumers reported (retries excluded)
	conns  uint64 // connections the server accepted from the consumers' start to their convergence
}

func (r SSEFanoutResult) rank() float64 { return r.P99Ms }

// SSEFanout runs sse_fanout: a server process serving the topic (memory
// store), cfg.Consumers handles started on it, then cfg.Writes writes
// through the HTTP API by the writer process, one every cfg.Interval, and a
// wait until every handle has applied the last one (a minute at most).
func SSEFanout(ctx context.Context, cfg SSEFanoutConfig) (SSEFanoutResult, error) {
	res := SSEFanoutResult{Name: NameSSEFanout, Consumers: cfg.Consumers, Writes: cfg.Writes, Mode: ModePull,
		Refresh: refreshMode(cfg.InlineRefresh)}
	if cfg.Inline {
		res.Mode = ModeInline
	}
	label := res.Mode // of the notes on stderr
	if cfg.InlineRefresh {
		label += "+inline-refresh"
	}
	if cfg.HTTP2 {
		res.Proto = "h2"
		label += "+h2"
	}
	if cfg.Consumers < 1 || cfg.Writes < 1 {
		return res, fmt.Errorf("sse_fanout needs at least 1 consumer and 1 write, not %d and %d", cfg.Consumers, cfg.Writes)
	}
	interval := cfg.Interval
	if interval <= 0 {
		interval = DefaultSSEInterval
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	origin := time.Now()

	srv, err := startServer(ctx, cfg.Server, sseServerConfig{Addr: "127.0.0.1:0", Streams: cfg.Consumers, TLS: cfg.HTTP2})
	if err != nil {
		return res, err
	}
	defer func() { _ = srv.stop(context.WithoutCancel(ctx)) }()
	logf("%s %s: server process %d at %s", NameSSEFanout, label, srv.cmd.Process.Pid, srv.base)
	w, err := httpsync.NewClient(srv.base, &httpsync.ClientOptions{HTTPClient: srv.hc})
	if err != nil {
		return res, err
	}
	defer func() { _ = w.Close() }()
	if _, err := w.Put(ctx, topic, writeData(0)); err != nil {
		return res, fmt.Errorf("first write: %w", err)
	}
	wp, err := startServer(ctx, cfg.Server, sseServerConfig{Role: roleWriter, Target: srv.base, Writes: cfg.Writes, Interval: interval,
		Cert: string(srv.cert)})
	if err != nil {
		return res, fmt.Errorf("writer: %w", err)
	}
	defer func() { _ = wp.stop(context.WithoutCancel(ctx)) }()
	rss0, err := srv.rss(ctx)
	if err != nil {
		return res, err
	}
	mem0, err := srv.stats(ctx)
	if err != nil {
		return res, err
	}

	t := time.Now()
	f, err := newFleet(ctx, srv.base, srv.cert, cfg.Consumers, cfg.Inline, cfg.InlineRefresh, origin)
	if err != nil {
		return res, err
	}
	defer f.close()
	logf("%s %s: %d consumers started in %v (keep-alive %v)", NameSSEFanout, label, cfg.Consumers, time.Since(t).Round(time.Millisecond), f.keepAlive)
	// Connections of the last start-up GETs may still be closing (without
	// keep-alive, the server lingers up to 500 ms on each): let them go.
	if err := sleep.For(ctx, settleTime); err != nil {
		return res, err
	}
	rss1, err := srv.rss(ctx)
	if err != nil {
		return res, err
	}
	res.ServerRSSBytesPerConsumer = (rss1 - rss0) / int64(cfg.Consumers)
	st0, err := srv.stats(ctx)
	if err != nil {
		return res, err
	}
	if st0.StreamsOpen != int64(cfg.Consumers) {
		return res, fmt.Errorf("the server has %d streams open with %d consumers started", st0.StreamsOpen, cfg.Consumers)
	}
	per := func(a, b uint64) int64 { return (int64(b) - int64(a)) / int64(cfg.Consumers) }
	logf("%s %s: server memory per consumer: %d B resident, %d B heap in use, %d B stacks", NameSSEFanout, label,
		res.ServerRSSBytesPerConsumer, per(mem0.HeapInuse, st0.HeapInuse), per(mem0.StackInuse, st0.StackInuse))

	// The writes, on the writer's schedule.
	type write struct {
		rev       statesync.Revision
		sent, ack time.Duration
	}
	writes := make([]write, 0, cfg.Writes)
	srvCPU0, cliCPU0 := cpuTime(srv.cmd.Process.Pid), cpuTime(0)
	var gc0 runtime.MemStats
	runtime.ReadMemStats(&gc0)
	if _, err := io.WriteString(wp.stdin, "go\n"); err != nil {
		return res, fmt.Errorf("starting the writer: %w", err)
	}
	for i := range cfg.Writes {
		var line []byte
		timeout := time.NewTimer(interval + convergeTimeout)
		select {
		case line = <-wp.lines:
		case <-wp.exited:
		case <-timeout.C:
		case <-ctx.Done():
		}
		timeout.Stop()
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var wr writeResult
		if line == nil {
			return res, wp.failed(fmt.Sprintf("gave no result for write %d", i+1), nil)
		}
		if err := json.Unmarshal(line, &wr); err != nil {
			return res, wp.failed(fmt.Sprintf("printed %q for write %d", line, i+1), err)
		}
		if wr.Err != "" {
			return res, fmt.Errorf("write %d: %s", i+1, wr.Err)
		}
		writes = append(writes, write{rev: wr.Rev, sent: f.wallOffset(wr.Sent), ack: f.wallOffset(wr.Ack)})
	}
	final := writes[len(writes)-1].rev
	res.Converged, err = f.waitUntil(ctx, convergeTimeout, func(c *statesync.Consumer) bool { return c.Revision() >= final })
	if err != nil {
		return res, err
	}
	waitEnd := f.since()
	srvCPU, cliCPU := cpuTime(srv.cmd.Process.Pid)-srvCPU0, cpuTime(0)-cliCPU0
	perDelivery := func(d time.Duration) float64 {
		return float64(d.Microseconds()) / float64(cfg.Consumers*cfg.Writes)
	}
	var gc1 runtime.MemStats
	runtime.ReadMemStats(&gc1)
	logf("%s %s: CPU during the writes: server %v (%.1f µs per consumer and write), consumers %v (%.1f µs; %d GCs, heap %d MiB)", NameSSEFanout, label,
		srvCPU, perDelivery(srvCPU), cliCPU, perDelivery(cliCPU), gc1.NumGC-gc0.NumGC, gc1.HeapAlloc>>20)
	logf("%s %s: writes done in %v, converged %v after the last", NameSSEFanout, label,
		(writes[len(writes)-1].ack - writes[0].ack).Round(time.Millisecond), (waitEnd - writes[len(writes)-1].ack).Round(time.Millisecond))
	st1, err := srv.stats(ctx)
	if err != nil {
		return res, err
	}
	res.SnapshotGets = st1.SnapshotGets - st0.SnapshotGets
	res.conns = st1.Conns - mem0.Conns
	logf("%s %s: the server accepted %d connections from the consumers' start (%d consumers, %d snapshot GETs during the writes)", NameSSEFanout, label,
		res.conns, cfg.Consumers, res.SnapshotGets)

	lat := make([]time.Duration, 0, len(f.hs)*len(writes))
	fromSent := make([]time.Duration, 0, len(f.hs)*len(writes))
	for _, h := range f.hs {
		log := h.applies()
		j := 0
		for _, wr := range writes {
			for j < len(log) && log[j].rev < wr.rev {
				j++
			}
			at := waitEnd
			if j < len(log) {
				at = log[j].at
			}
			lat = append(lat, max(0, at-wr.ack))
			fromSent = append(fromSent, at-wr.sent)
		}
		if h.c.Revision() != final {
			res.Converged = false
		}
	}
	var perWrite strings.Builder
	col := make([]time.Duration, len(f.hs))
	for k, wr := range writes {
		for i := range f.hs {
			col[i] = lat[i*len(writes)+k]
		}
		fmt.Fprintf(&perWrite, " %.0f/%.0f/%.0f", float64((wr.ack-wr.sent).Microseconds())/1000, percentileMs(col, 99), percentileMs(col, 100))
	}
	logf("%s %s: per write, PUT ms/p99 ms/max ms:%s", NameSSEFanout, label, perWrite.String())
	res.P50Ms, res.P99Ms, res.MaxMs = percentileMs(lat, 50), percentileMs(lat, 99), percentileMs(lat, 100)
	logf("%s %s: latency from the PUT's sending: p50 %v ms, p99 %v ms, max %v ms", NameSSEFanout, label,
		percentileMs(fromSent, 50), percentileMs(fromSent, 99), percentileMs(fromSent, 100))
	res.errors = f.errs.Load()
	if res.errors > 0 {
		logf("%s %s: %v", NameSSEFanout, label, f.err())
	}
	return res, nil
}

// settleTime is how long sse_fanout waits after starting the consumers
// before it reads the server's memory.
const settleTime = time.Second

// writeSize is the size of each write's JSON data: the 100-byte object
// the peers (Centrifugo, Mercure) were measured with (bench/scenarios.md).
const writeSize = 100

// writeData is the data of the i-th write: {"write":i,"pad":"xx…"}, padded
// to writeSize bytes.
func writeData(i int) json.RawMessage {
	b := strconv.AppendInt([]byte(`{"write":`), int64(i), 10)
	b = append(b, `,"pad":"`...)
	for len(b) < writeSize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// percentileMs returns the p-th percentile (nearest rank) of ds in
// milliseconds; it sorts ds.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := max(0, int(math.Ceil(p/100*float64(len(ds))))-1)
	return float64(ds[i].Microseconds()) / 1000
}

// SSEHerdConfig configures a run of sse_reconnect_herd.
type SSEHerdConfig struct {
	Consumers int
	// Server starts the server processes.
	Server ServerCommand
	// Logf, if set, receives notes on the run (phases and their times).
	Logf func(format string, args ...any)
}

// SSEHerdResult is the outcome of one sse_reconnect_herd run.
type SSEHerdResult struct {
	Name      string `json:"name"`
	Consumers int    `json:"consumers"`
	// MsToConverge is the time from the server's shutdown to the last
	// handle's apply of the restarted server's snapshot.
	MsToConverge float64 `json:"ms_to_converge"`
	// SnapshotBuilds is the largest number of times one topic revision's
	// snapshot JSON was encoded by the restarted server, as far as GETs
	// show it (see encodings): one topic here, so at most 1.
	SnapshotBuilds int `json:"snapshot_builds"`
	// SnapshotGets counts the snapshot GETs the restarted server answered
	// 200 (Handler.Stats).
	SnapshotGets uint64 `json:"snapshot_gets"`

	restart time.Duration // from the shutdown to the new server's listening
	errors  int64         // errors the consumers reported (retries excluded)
}

func (r SSEHerdResult) rank() float64 { return r.MsToConverge }

// SSEReconnectHerd runs sse_reconnect_herd: a server process over a
// boltstore in a temporary directory serves the topic, written once, to
// cfg.Consumers handles in pull mode; then it shuts down gracefully (its
// streams end) and a new one starts on the same address over the same
// file. The boltstore takes a new epoch at each start, so every handle
// reconnects and pulls the same revision again under the new epoch; the
// run waits until every one has applied it (a minute at most, else it
// fails).
func SSEReconnectHerd(ctx context.Context, cfg SSEHerdConfig) (SSEHerdResult, error) {
	res := SSEHerdResult{Name: NameSSEReconnectHerd, Consumers: cfg.Consumers}
	if cfg.Consumers < 1 {
		return res, fmt.Errorf("sse_reconnect_herd needs at least 1 consumer, not %d", cfg.Consumers)
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "statesync-bench-herd-")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	origin := time.Now()

	scfg := sseServerConfig{Data: dir, Streams: cfg.Consumers}
	srv, err := startServer(ctx, cfg.Server, scfg)
	if err != nil {
		return res, err
	}
	stopSrv := func() { _ = srv.stop(context.WithoutCancel(ctx)) }
	defer func() { stopSrv() }()
	w, err := httpsync.NewClient(srv.base, nil)
	if err != nil {
		return res, err
	}
	defer func() { _ = w.Close() }()
	snap, err := w.Put(ctx, topic, writeData(0))
	if err != nil {
		return res, fmt.Errorf("write: %w", err)
	}

	t := time.Now()
	f, err := newFleet(ctx, srv.base, nil, cfg.Consumers, false, false, origin)
	if err != nil {
		return res, err
	}
	defer f.close()
	logf("%s: %d consumers started in %v (keep-alive %v)", NameSSEReconnectHerd, cfg.Consumers, time.Since(t).Round(time.Millisecond), f.keepAlive)

	// The restart.
	down := f.since()
	if err := srv.stop(ctx); err != nil {
		return res, fmt.Errorf("stopping the server: %w", err)
	}
	logf("%s: the server exited %v after the shutdown began", NameSSEReconnectHerd, (f.since() - down).Round(time.Millisecond))
	scfg.Addr = srv.addr
	oldEpoch := srv.epoch
	if srv, err = startServer(ctx, cfg.Server, scfg); err != nil {
		stopSrv = func() {}
		return res, fmt.Errorf("restarting the server: %w", err)
	}
	res.restart = time.Since(origin) - down
	srvCPU0, cliCPU0, retries0 := cpuTime(srv.cmd.Process.Pid), cpuTime(0), f.retries.Load()
	if srv.epoch == oldEpoch {
		return res, fmt.Errorf("the restarted server has the epoch of the first, %q", oldEpoch)
	}
	logf("%s: server restarted in %v", NameSSEReconnectHerd, res.restart.Round(time.Millisecond))

	back := func(c *statesync.Consumer) bool { return c.Epoch() == srv.epoch && c.Revision() >= snap.Revision }
	ok, err := f.waitUntil(ctx, convergeTimeout, back)
	if err != nil {
		return res, err
	}
	res.errors = f.errs.Load()
	logf("%s: CPU from the restart to the convergence: server %v, consumers %v; snapshot GETs retried: %d", NameSSEReconnectHerd,
		cpuTime(srv.cmd.Process.Pid)-srvCPU0, cpuTime(0)-cliCPU0, f.retries.Load()-retries0)
	if !ok {
		n := 0
		for _, h := range f.hs {
			if !back(h.c) {
				n++
			}
		}
		return res, fmt.Errorf("%w: %d of %d still behind after %v (consumer errors: %v)", errNotConverged, n, len(f.hs), convergeTimeout, f.err())
	}
	backAt := make([]time.Duration, 0, len(f.hs))
	for _, h := range f.hs {
		for _, a := range h.applies() {
			if a.epoch == srv.epoch {
				backAt = append(backAt, a.at-down)
				break
			}
		}
	}
	logf("%s: consumers back after p50 %v ms, p90 %v ms, p99 %v ms", NameSSEReconnectHerd,
		percentileMs(backAt, 50), percentileMs(backAt, 90), percentileMs(backAt, 99))
	herdNotes(f, down, srv.epoch, logf)
	res.MsToConverge = percentileMs(backAt, 100)
	st, err := srv.stats(ctx)
	if err != nil {
		return res, err
	}
	res.SnapshotGets, res.SnapshotBuilds = st.SnapshotGets, st.MaxBuilds
	if res.errors > 0 {
		logf("%s: %v", NameSSEReconnectHerd, f.err())
	}
	return res, nil
}
