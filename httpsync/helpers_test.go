package httpsync_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// testServer is a Source behind a Handler behind a real loopback server.
type testServer struct {
	store *statesync.MemoryStore
	src   *statesync.Source
	h     *httpsync.Handler
	ts    *httptest.Server
	hc    *http.Client // compression off, so that tests see gzip bodies
}

const testEpoch = "ep0"

func newTestServer(t testing.TB, opts *httpsync.HandlerOptions) *testServer {
	t.Helper()
	return newTestServerOn(t, nil, testEpoch, opts)
}

// newTestServerOn starts a server on ln (a new loopback listener if nil).
func newTestServerOn(t testing.TB, ln net.Listener, epoch string, opts *httpsync.HandlerOptions) *testServer {
	t.Helper()
	store := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: epoch, FirstRevision: 1})
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := httpsync.NewHandler(src, hijackOpts(opts))
	ts := httptest.NewUnstartedServer(h)
	if ln != nil {
		ts.Listener.Close()
		ts.Listener = ln
	}
	ts.Start()
	tr := &http.Transport{DisableCompression: true}
	s := &testServer{store: store, src: src, h: h, ts: ts, hc: &http.Client{Transport: tr}}
	t.Cleanup(func() { s.stop() })
	return s
}

// watchSource calls fn with every invalidation src emits until the test
// ends.
func watchSource(t testing.TB, src *statesync.Source, fn func(statesync.Invalidation)) {
	t.Helper()
	stop, err := src.Watch(t.Context(), fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

// hijackAll makes the test servers hijack their event streams
// (HandlerOptions.HijackStreams), so that the whole suite runs over that
// path too: .ci/run runs the package a second time with
// STATESYNC_TEST_HIJACK=1.
var hijackAll = os.Getenv("STATESYNC_TEST_HIJACK") == "1"

// hijackOpts returns opts, with HijackStreams set if hijackAll.
func hijackOpts(opts *httpsync.HandlerOptions) *httpsync.HandlerOptions {
	if !hijackAll {
		return opts
	}
	var o httpsync.HandlerOptions
	if opts != nil {
		o = *opts
	}
	o.HijackStreams = true
	return &o
}

// stop closes the handler (ending its streams), the server and the source.
func (s *testServer) stop() {
	s.h.Close()
	s.ts.Close()
	s.src.Close()
	s.hc.CloseIdleConnections()
}

// do makes a request; hdr holds header name/value pairs. An event stream
// is not read (it would not end): its body comes back nil, so a test that
// expected an error fails instead of hanging.
func (s *testServer) do(t testing.TB, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// put writes data with the source directly.
func (s *testServer) put(t testing.TB, topic, data string) statesync.Snapshot {
	t.Helper()
	snap, err := s.src.Put(context.Background(), topic, json.RawMessage(data))
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func (s *testServer) get(t testing.TB, topic string) statesync.Snapshot {
	t.Helper()
	snap, err := s.src.Snapshot(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// apiError is the JSON error body.
type apiError struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Revision string `json:"revision"`
		Epoch    string `json:"epoch"`
		Expected string `json:"expected"`
	} `json:"error"`
}

func decodeError(t testing.TB, b []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body %s is not {\"error\":{\"code\":…,\"message\":…}} (%v)", b, err)
	}
	return e
}

// sseStream is a raw event stream read by the tests.
type sseStream struct {
	resp *http.Response
	br   *bufio.Reader
}

// frame is one event of a raw stream.
type frame struct {
	event, data string
	comment     string
	retry       string
}

// openStream opens GET path and fails unless it is a 200 event stream.
func (s *testServer) openStream(t testing.TB, path string, hdr ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.ts.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s = %d %s %s; want 200 text/event-stream", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	st := &sseStream{resp: resp, br: bufio.NewReader(resp.Body)}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return st
}

// next reads the next frame (an event, a comment or a retry hint), failing
// after a generous timeout.
func (st *sseStream) next(t testing.TB) frame {
	t.Helper()
	type result struct {
		f   frame
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var f frame
		for {
			line, err := st.br.ReadString('\n')
			if err != nil {
				ch <- result{err: err}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if f != (frame{}) {
					ch <- result{f: f}
					return
				}
			case strings.HasPrefix(line, ":"):
				f.comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "event: "):
				f.event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				if f.data != "" {
					f.data += "\n"
				}
				f.data += line[len("data: "):]
			case strings.HasPrefix(line, "retry: "):
				f.retry = line[len("retry: "):]
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading event stream: %v", r.err)
		}
		return r.f
	case <-time.After(20 * time.Second):
		t.Fatal("no frame within 20 s")
	}
	return frame{}
}

// nextEvent skips comments and retry hints.
func (st *sseStream) nextEvent(t testing.TB) frame {
	t.Helper()
	for {
		f := st.next(t)
		if f.event != "" || f.data != "" {
			return f
		}
	}
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}
