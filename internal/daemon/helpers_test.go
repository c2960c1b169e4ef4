package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/daemon"
)

// waitFor bounds every wait of these tests; polls give up after it.
const waitFor = 10 * time.Second

// testConfig is a daemon on a free loopback port with a fresh data
// directory.
func testConfig(t testing.TB) daemon.Config {
	cfg := daemon.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// testDaemon is a daemon started by a test and an HTTP client of it.
type testDaemon struct {
	s    *daemon.Server
	url  string
	hc   *http.Client
	down bool
}

// startDaemon starts a daemon with cfg; the test's cleanup shuts it down
// if the test did not.
func startDaemon(t testing.TB, cfg daemon.Config) *testDaemon {
	t.Helper()
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("Start(%+v) = %v", cfg, err)
	}
	d := &testDaemon{s: s, url: "http://" + s.Addr().String(), hc: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	t.Cleanup(func() {
		if !d.down {
			if err := d.shutdown(); err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		}
		d.hc.CloseIdleConnections()
	})
	return d
}

// shutdown shuts the daemon down within waitFor.
func (d *testDaemon) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d.down = true
	err := d.s.Shutdown(ctx)
	d.hc.CloseIdleConnections()
	return err
}

// do makes a request; hdr holds header name/value pairs.
func (d *testDaemon) do(t testing.TB, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" { // net/http sends req.Host, not the header
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

// expect makes a request and fails the test unless it is answered with
// status; it returns the body.
func (d *testDaemon) expect(t testing.TB, status int, method, path, body string, hdr ...string) []byte {
	t.Helper()
	resp, b := d.do(t, method, path, body, hdr...)
	if resp.StatusCode != status {
		t.Fatalf("%s %s = %d %s; want %d", method, path, resp.StatusCode, b, status)
	}
	return b
}

// canonicalRev matches a JSON string holding a canonical revision.
var canonicalRev = regexp.MustCompile(`^"(0|[1-9][0-9]*)"$`)

// snapshotBody is a decoded snapshot or write response whose revision was
// a canonical JSON string.
type snapshotBody struct {
	Revision statesync.Revision
	Epoch    string
	Data     json.RawMessage
}

// decodeSnapshot decodes a snapshot or write response, failing the test
// if its revision is not a canonical decimal string (DESIGN §4).
func decodeSnapshot(t testing.TB, b []byte) snapshotBody {
	t.Helper()
	var raw struct {
		Revision json.RawMessage `json:"revision"`
		Epoch    string          `json:"epoch"`
		Data     json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if !canonicalRev.Match(raw.Revision) {
		t.Fatalf("revision in %s = %s; want a canonical decimal string", b, raw.Revision)
	}
	var s snapshotBody
	if err := json.Unmarshal(raw.Revision, &s.Revision); err != nil {
		t.Fatalf("revision %s: %v", raw.Revision, err)
	}
	s.Epoch, s.Data = raw.Epoch, raw.Data
	return s
}

// apiError is the JSON error body of the API.
type apiError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Topic    string `json:"topic"`
	Revision string `json:"revision"`
	Epoch    string `json:"epoch"`
	Expected string `json:"expected"`
}

func decodeError(t testing.TB, b []byte) apiError {
	t.Helper()
	var e struct {
		Error apiError `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("error body %s: %v; want {\"error\":{\"code\":…}}", b, err)
	}
	return e.Error
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// sseEvent is one frame of an event stream.
type sseEvent struct {
	Type string
	Data string
}

// inv decodes an invalidation frame.
func (e sseEvent) inv(t testing.TB) statesync.Invalidation {
	t.Helper()
	if e.Type != "invalidation" {
		t.Fatalf("event %q: want an invalidation", e)
	}
	inv, err := statesync.DecodeInvalidation([]byte(e.Data))
	if err != nil {
		t.Fatalf("invalidation %s: %v", e.Data, err)
	}
	return inv
}

// sseStream is an open GET /v1/events read by a goroutine of its own.
type sseStream struct {
	events chan sseEvent // closed when the stream ends
	err    error         // why it ended; read after events is closed
	retry  string        // the last retry field's value; read after events is closed
	cancel context.CancelFunc
	done   chan struct{}
}

// openStream opens GET path (an /v1/events URL) and checks the response
// is an event stream. The test's cleanup closes it.
func (d *testDaemon) openStream(t testing.TB, path string, hdr ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url+path, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s = %d %q %s; want 200 text/event-stream", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &sseStream{events: make(chan sseEvent, 256), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		defer close(s.events)
		s.err = readFrames(resp.Body, s.events, &s.retry)
	}()
	t.Cleanup(s.close)
	return s
}

// readFrames parses event stream frames from r into ch until r ends; the
// value of the last retry field goes to *retry.
func readFrames(r io.Reader, ch chan<- sseEvent, retry *string) error {
	br := bufio.NewReader(r)
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data != nil {
				if ev.Type == "" {
					ev.Type = "message"
				}
				ev.Data = strings.Join(data, "\n")
				ch <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, "retry:"):
			*retry = strings.TrimSpace(line[len("retry:"):])
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			ev.Type = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[len("data: "):])
		default:
			return errors.New("unexpected event stream line " + strconv.Quote(line))
		}
	}
}

// next returns the next frame, failing the test if none comes in time or
// the stream ends.
func (s *sseStream) next(t testing.TB) sseEvent {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatalf("event stream ended (%v); want a frame", s.err)
		}
		return ev
	case <-timer.C:
		t.Fatalf("no event stream frame within %v", waitFor)
	}
	panic("unreachable")
}

// ended waits for the stream to end, without frames, and returns why.
func (s *sseStream) ended(t testing.TB, within time.Duration) error {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return s.err
			}
			t.Errorf("event stream sent %q; want it to end", ev)
		case <-timer.C:
			t.Fatalf("event stream still open after %v", within)
		}
	}
}

// close ends the stream and waits for its goroutine.
func (s *sseStream) close() {
	s.cancel()
	<-s.done
}

// metrics scrapes /metrics into a map from "name{labels}" to value.
func (d *testDaemon) metrics(t testing.TB) map[string]float64 {
	t.Helper()
	b := d.expect(t, http.StatusOK, http.MethodGet, "/metrics", "")
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("metrics line %q: not name value", line)
		}
		m[line[:i]] = v
	}
	return m
}
