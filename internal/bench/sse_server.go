package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/testcert"
)

// The server of the SSE scenarios runs in a process of its own, so that its
// resident memory can be measured apart from the consumers', and so that
// each process needs one descriptor per connection, not two (10,000
// consumers fit the usual 20,000-descriptor limit).
//
// It is the same executable started again: `statesync bench
// sse_reconnect_herd` (or the test binary, running TestSSEServerChild) with
// the environment variable envSSEServer holding its sseServerConfig as
// JSON. It prints one line of JSON, its serverHello, on stdout once it
// listens, and serves until its stdin reaches end of file (the parent
// closes it, or dies), then shuts down gracefully and exits.
//
// Besides the httpsync API under /v1/, it answers GET /bench/stats (an
// sseServerStats) and POST /bench/gc (a garbage collection that returns
// freed memory to the operating system, before the parent reads VmRSS).

// envSSEServer names the environment variable that makes a process the
// server of an SSE scenario.
const envSSEServer = "STATESYNC_BENCH_SSE_SERVER"

// A ServerCommand is how to start the server process of the SSE scenarios.
// The zero value starts this executable as `statesync bench
// sse_reconnect_herd`, which is right inside the statesync binary only;
// tests give the test binary and its -test.run flag.
type ServerCommand struct {
	Path string   // the executable; "" means os.Executable()
	Args []string // its arguments
}

func (sc ServerCommand) resolve() (ServerCommand, error) {
	if sc.Path == "" {
		exe, err := os.Executable()
		if err != nil {
			return sc, fmt.Errorf("finding this executable to start the server process: %w", err)
		}
		sc = ServerCommand{Path: exe, Args: []string{"bench", NameSSEReconnectHerd}}
	}
	return sc, nil
}

// The roles of the processes started with envSSEServer.
const (
	roleServer = ""       // the httpsync server
	roleWriter = "writer" // the writer of sse_fanout (see runWriterRole)
)

// sseServerConfig is the configuration the parent gives a process it
// starts with envSSEServer.
type sseServerConfig struct {
	// Role is roleServer or roleWriter.
	Role string `json:"role,omitempty"`
	// Target, Writes and Interval are the writer's: the server's base URL,
	// and the number of writes and the time between them.
	Target   string        `json:"target,omitempty"`
	Writes   int           `json:"writes,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`

	// Addr is the address to listen on; "" means a free port of 127.0.0.1
	// below the ephemeral range (32768–60999 on Linux), so that while the
	// server restarts no client connection can take the port.
	Addr string `json:"addr"`
	// Data is the directory of a boltstore; "" means a memory store.
	Data string `json:"data,omitempty"`
	// Streams is the number of event streams expected, for the check of the
	// open-file limit.
	Streams int `json:"streams"`
	// TLS makes the server serve HTTPS (HTTP/2 by ALPN) with a certificate
	// of its own, which its hello gives (see sse_tls.go).
	TLS bool `json:"tls,omitempty"`
	// Cert is the writer's: the PEM certificate of a TLS server to trust.
	Cert string `json:"cert,omitempty"`
}

// serverHello is the server process's first line on stdout.
type serverHello struct {
	Addr  string `json:"addr"`
	Epoch string `json:"epoch"`          // the store's epoch
	Cert  string `json:"cert,omitempty"` // the PEM certificate of a TLS server
}

// sseServerStats is the body of GET /bench/stats.
type sseServerStats struct {
	StreamsOpen  int64  `json:"streamsOpen"`
	SnapshotGets uint64 `json:"snapshotGets"`
	NotModified  uint64 `json:"notModified"`
	// MaxBuilds is the largest number of distinct encodings served by GET
	// for one topic revision (see encodings).
	MaxBuilds int `json:"maxBuilds"`
	// Revisions is the number of topic revisions served by GET.
	Revisions int `json:"revisions"`
	// Conns counts the connections accepted.
	Conns uint64 `json:"conns"`
	// HeapInuse and StackInuse are those of runtime.MemStats, in bytes.
	HeapInuse  uint64 `json:"heapInuse"`
	StackInuse uint64 `json:"stackInuse"`
}

// descriptorsFor returns the open files a process needs for n consumers'
// connections: one each for the event streams, plus room for snapshot GETs
// in flight (each on a connection of its own, when the consumers keep no
// idle connection) and the rest.
func descriptorsFor(n int) uint64 { return uint64(n + n/2 + 256) }

// keepAliveDescriptors returns the open files a process needs for n
// consumers that keep their connections alive: after its first snapshot
// GET, each holds two, its event stream and an idle one for the next GET.
func keepAliveDescriptors(n int) uint64 { return uint64(2*n + 256) }

// runServerRole is the body of a process started with envSSEServer, whose
// value is cfgJSON: the server, which serves until stdin reaches end of
// file or ctx ends, or the writer.
func runServerRole(ctx context.Context, cfgJSON string, stdin io.Reader, stdout io.Writer) error {
	var cfg sseServerConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fmt.Errorf("%s: %w", envSSEServer, err)
	}
	if cfg.Role == roleWriter {
		return runWriterRole(ctx, cfg, stdin, stdout)
	}
	if _, err := raiseOpenFiles(descriptorsFor(cfg.Streams), "the SSE server of "+strconv.Itoa(cfg.Streams)+" streams"); err != nil {
		return err
	}
	var store statesync.Store
	closeStore := func() error { return nil }
	if cfg.Data == "" {
		store = statesync.NewMemoryStore(nil)
	} else {
		bs, err := boltstore.Open(filepath.Join(cfg.Data, "statesync.db"), nil)
		if err != nil {
			return err
		}
		store, closeStore = bs, bs.Close
	}
	defer func() { _ = closeStore() }()
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	cur, err := src.Snapshot(ctx, topic)
	if err != nil {
		return err
	}
	// As the daemon serves them: on hijacked connections (ended by
	// api.Shutdown below).
	api := httpsync.NewHandler(src, &httpsync.HandlerOptions{HijackStreams: true})
	defer func() { _ = api.Close() }()

	enc := &encodings{seen: map[string]map[*byte][]byte{}}
	var conns atomic.Uint64
	mux := http.NewServeMux()
	// Only the snapshot route is watched: a handler in front of the event
	// streams would deepen their goroutines' stacks (the httpsync stream
	// goroutine's deepest call, its first write, sits just under 8 KiB, and
	// one more frame in front doubles its stack to 16 KiB), and the memory
	// figure would measure the wrapper.
	mux.Handle("/v1/", api)
	mux.Handle("GET /v1/topics/{topic}", enc.watch(api))
	mux.HandleFunc("GET /bench/stats", func(w http.ResponseWriter, r *http.Request) {
		st := api.Stats()
		builds, revs := enc.counts()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(sseServerStats{StreamsOpen: st.StreamsOpen, SnapshotGets: st.SnapshotGets,
			NotModified: st.NotModified, MaxBuilds: builds, Revisions: revs, Conns: conns.Load(), HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse})
	})
	mux.HandleFunc("POST /bench/gc", func(w http.ResponseWriter, r *http.Request) {
		debug.FreeOSMemory()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /bench/pprof/{profile}", servePprof)

	ln, err := listen(cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Accept errors (too many open files) are worth seeing.
		ErrorLog: log.New(os.Stderr, "bench server: ", 0),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	var certPEM []byte
	if cfg.TLS {
		cert, err := testcert.New(1)
		if err != nil {
			_ = ln.Close()
			return err
		}
		certPEM = cert.CertPEM
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
	}
	served := make(chan error, 1)
	go func() {
		if cfg.TLS {
			served <- srv.ServeTLS(ln, "", "") // HTTP/2 by ALPN
			return
		}
		served <- srv.Serve(ln)
	}()

	hello, _ := json.Marshal(serverHello{Addr: ln.Addr().String(), Epoch: cur.Epoch, Cert: string(certPEM)})
	if _, err := fmt.Fprintf(stdout, "%s\n", hello); err != nil {
		_ = srv.Close()
		<-served
		return err
	}

	// The goroutine reading stdin ends when the parent closes it or dies;
	// if ctx ends first, it is left to the process's exit.
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(eof)
	}()
	var serveErr error
	select {
	case <-eof:
	case <-ctx.Done():
	case serveErr = <-served:
		return fmt.Errorf("serving: %w", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// As the daemon does: the listener closes first, so that clients
	// coming back meanwhile are refused at once rather than answered 503
	// (or cut with the process), then the streams end, each telling its
	// client when to come back (HandlerOptions.ReconnectRate), and the
	// requests in flight finish.
	srv.RegisterOnShutdown(func() { _ = api.Shutdown(sctx) })
	if serr := srv.Shutdown(sctx); serr != nil {
		_ = srv.Close()
		err = serr
	}
	err = errors.Join(err, api.Shutdown(sctx)) // waits for the streams' ends
	if serveErr = <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// servePprof serves the profiles of runtime/pprof, for looking into the
// server during a run: GET /bench/pprof/heap (or goroutine, allocs, …) and
// GET /bench/pprof/cpu?seconds=N. The output is the binary form that
// `go tool pprof` reads.
func servePprof(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("profile")
	w.Header().Set("Content-Type", "application/octet-stream")
	if name == "cpu" {
		secs, err := strconv.Atoi(r.URL.Query().Get("seconds"))
		if err != nil || secs < 1 {
			http.Error(w, "seconds must be a positive number", http.StatusBadRequest)
			return
		}
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		select {
		case <-time.After(time.Duration(secs) * time.Second):
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "no profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	_ = p.WriteTo(w, 0)
}

// listen listens on addr, or, if addr is "", on a free port of 127.0.0.1
// in 20000–32767, below the ephemeral range.
func listen(addr string) (net.Listener, error) {
	if addr != "" {
		return net.Listen("tcp", addr)
	}
	var err error
	for range 200 {
		var ln net.Listener
		ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12768))))
		if err == nil {
			return ln, nil
		}
	}
	return nil, fmt.Errorf("no free port in 20000–32767: %w", err)
}

// encodings counts the distinct encodings of each topic revision that GET
// /v1/topics/{topic} serves, by the identity of the bytes the handler
// writes: the handler writes the encoding of the revision it keeps, which
// is built once per revision and shared, so a second
// backing array for one revision (one ETag) is a second build. The bodies
// seen are kept, so that a freed encoding's address cannot be reused by
// another and hide it. gzipped bodies are not counted (the handler gzips
// only snapshots of 256 bytes and more; the scenarios' are smaller).
type encodings struct {
	mu   sync.Mutex                  // protects seen
	seen map[string]map[*byte][]byte // ETag -> first byte -> body
}

// watch returns next with the bodies of its 200 responses to GET
// /v1/topics/{topic} counted.
func (e *encodings) watch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/topics/") {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&bodyWatcher{ResponseWriter: w, e: e}, r)
	})
}

// counts returns the largest number of encodings of one revision and the
// number of revisions served.
func (e *encodings) counts() (maxBuilds, revisions int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.seen {
		maxBuilds = max(maxBuilds, len(m))
	}
	return maxBuilds, len(e.seen)
}

func (e *encodings) saw(etag string, body []byte) {
	e.mu.Lock()
	m := e.seen[etag]
	if m == nil {
		m = map[*byte][]byte{}
		e.seen[etag] = m
	}
	m[&body[0]] = body
	e.mu.Unlock()
}

// bodyWatcher reports the body of a 200 snapshot response to its encodings.
type bodyWatcher struct {
	http.ResponseWriter
	e      *encodings
	status int
}

func (b *bodyWatcher) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b *bodyWatcher) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if h := b.Header(); b.status == http.StatusOK && len(p) > 0 && h.Get("Content-Encoding") == "" {
		b.e.saw(h.Get("ETag"), p)
	}
	return b.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the writer underneath.
func (b *bodyWatcher) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// serverProc is the parent's handle of a server process.
type serverProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	base  string // http://addr, or https://addr for a TLS server
	cert  []byte // the PEM certificate of a TLS server; nil if none
	epoch string
	hc    *http.Client // for /bench requests
	tr    *http.Transport

	lines   <-chan []byte // the lines it prints after its hello
	stderr  *tailBuffer
	exited  chan struct{} // closed once the process has exited and waitErr is set
	waitErr error
}

// startServer starts a process with cfg (a server, or the writer) and
// waits for its hello: until it listens, for a server.
func startServer(ctx context.Context, sc ServerCommand, cfg sseServerConfig) (*serverProc, error) {
	sc, err := sc.resolve()
	if err != nil {
		return nil, err
	}
	cfgJSON, _ := json.Marshal(cfg) // plain fields always marshal
	cmd := exec.Command(sc.Path, sc.Args...)
	cmd.Env = append(os.Environ(), envSSEServer+"="+string(cfgJSON))
	hello := newLineWriter()
	p := &serverProc{cmd: cmd, lines: hello.lines, stderr: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	cmd.Stdout = hello
	cmd.Stderr = p.stderr
	cmd.WaitDelay = 5 * time.Second
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the server process: %w", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	var line []byte
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	select {
	case line = <-hello.lines:
	case <-p.exited:
		return nil, p.failed("exited before listening", p.waitErr)
	case <-timeout.C:
		p.kill()
		return nil, p.failed("did not listen within a minute", nil)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
	var h serverHello
	if err := json.Unmarshal(line, &h); err != nil || h.Addr == "" {
		p.kill()
		return nil, p.failed(fmt.Sprintf("printed %q instead of its address", line), err)
	}
	p.addr, p.base, p.epoch = h.Addr, "http://"+h.Addr, h.Epoch
	if h.Cert != "" {
		p.base, p.cert = "https://"+h.Addr, []byte(h.Cert)
	}
	if p.tr, err = transportFor(p.cert); err != nil {
		p.kill()
		return nil, err
	}
	p.hc = &http.Client{Transport: p.tr, Timeout: time.Minute}
	return p, nil
}

// failed returns an error about the server process with the end of its
// stderr.
func (p *serverProc) failed(what string, err error) error {
	msg := "server process " + what
	if err != nil {
		msg += ": " + err.Error()
	}
	if tail := strings.TrimSpace(p.stderr.String()); tail != "" {
		msg += "\nits stderr ends with:\n" + tail
	}
	return errors.New(msg)
}

func (p *serverProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop closes the server's stdin, so that it shuts down gracefully, and
// waits until it has exited (killing it after a minute or when ctx ends).
func (p *serverProc) stop(ctx context.Context) error {
	_ = p.stdin.Close()
	if p.tr != nil {
		p.tr.CloseIdleConnections()
	}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.kill()
		return p.failed("did not stop within a minute", nil)
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
	if p.waitErr != nil {
		return p.failed("failed", p.waitErr)
	}
	return nil
}

// stats returns the server's counters.
func (p *serverProc) stats(ctx context.Context) (sseServerStats, error) {
	var st sseServerStats
	err := p.call(ctx, http.MethodGet, "/bench/stats", &st)
	return st, err
}

// rss collects the server's garbage, returning freed memory to the
// operating system, and returns its resident memory in bytes (VmRSS), or 0
// where /proc is not available.
func (p *serverProc) rss(ctx context.Context) (int64, error) {
	if err := p.call(ctx, http.MethodPost, "/bench/gc", nil); err != nil {
		return 0, err
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

func (p *serverProc) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// lineWriter passes on each line written to it, without its end, on
// lines; lines that do not fit its buffer are dropped (the processes print
// only a few).
type lineWriter struct {
	lines chan []byte
	mu    sync.Mutex // protects buf
	buf   []byte
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan []byte, 256)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		select {
		case w.lines <- bytes.Clone(w.buf[:i]):
		default:
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.buf = nil
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	mu  sync.Mutex // protects b
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	t.mu.Unlock()
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// cpuTime returns the user and system CPU time used so far by process pid
// (0 for this one), from /proc/PID/stat; 0 where /proc is not available.
func cpuTime(pid int) time.Duration {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	// utime and stime, fields 14 and 15, in clock ticks of 1/100 s (USER_HZ
	// is 100 on every Linux architecture Go supports).
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}
