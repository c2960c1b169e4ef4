package daemon_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/poll"
)

// TestWalkthrough is the curl walk-through of the README against a real
// daemon on loopback: PUT, GET with an ETag, 304, a compare-and-set
// refused with 412 and the current revision, PATCH, DELETE and the list
// (DESIGN §4, HTTP API). Every revision on the wire is a canonical decimal
// string (B-REV-01, B-REV-06, B-REV-11).
func TestWalkthrough(t *testing.T) {
	d := startDaemon(t, testConfig(t))

	put := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/demo", `{"theme":"dark"}`))
	if put.Revision == 0 || put.Epoch == "" {
		t.Fatalf("PUT demo = revision %v, epoch %q; want a revision above 0 and an epoch", put.Revision, put.Epoch)
	}

	resp, b := d.do(t, "GET", "/v1/topics/demo", "")
	got := decodeSnapshot(t, b)
	etag := fmt.Sprintf(`"%s.%d"`, put.Epoch, put.Revision)
	if resp.StatusCode != http.StatusOK || got.Revision != put.Revision || got.Epoch != put.Epoch || !jsonEqual(got.Data, []byte(`{"theme":"dark"}`)) {
		t.Errorf("GET demo = %d %s; want 200 with revision %v, epoch %q and the data put", resp.StatusCode, b, put.Revision, put.Epoch)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET demo Content-Type = %q; want application/json", ct)
	}
	if e := resp.Header.Get("ETag"); e != etag {
		t.Errorf("GET demo ETag = %s; want %s", e, etag)
	}

	// A reader that has the current revision gets 304, and any other tag
	// the snapshot.
	if resp, b := d.do(t, "GET", "/v1/topics/demo", "", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || len(b) != 0 {
		t.Errorf("GET demo If-None-Match %s = %d %q; want 304 and no body", etag, resp.StatusCode, b)
	}
	if resp, _ := d.do(t, "GET", "/v1/topics/demo", "", "If-None-Match", `"other.1"`); resp.StatusCode != http.StatusOK {
		t.Errorf("GET demo If-None-Match another tag = %d; want 200", resp.StatusCode)
	}

	// Compare-and-set on a stale revision: 412 with the current one, and
	// nothing written.
	for _, ifMatch := range []string{`"999"`, fmt.Sprintf(`"%d"`, put.Revision-1), fmt.Sprintf(`"otherepoch.%d"`, put.Revision)} {
		resp, b := d.do(t, "PUT", "/v1/topics/demo", `{"theme":"light"}`, "If-Match", ifMatch)
		if resp.StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("PUT demo If-Match %s = %d %s; want 412", ifMatch, resp.StatusCode, b)
		}
		e := decodeError(t, b)
		if e.Code != httpsync.CodeConflict || e.Revision != put.Revision.String() || e.Epoch != put.Epoch || e.Topic != "demo" {
			t.Errorf("PUT demo If-Match %s error = %+v; want code conflict naming revision %v and epoch %q", ifMatch, e, put.Revision, put.Epoch)
		}
		if !strings.Contains(e.Message, "revision "+put.Revision.String()) {
			t.Errorf("PUT demo If-Match %s message = %q; want it to name revision %v", ifMatch, e.Message, put.Revision)
		}
	}
	if got := decodeSnapshot(t, d.expect(t, http.StatusOK, "GET", "/v1/topics/demo", "")); got.Revision != put.Revision || !jsonEqual(got.Data, []byte(`{"theme":"dark"}`)) {
		t.Errorf("GET demo after refused writes = %+v; want revision %v with the first data", got, put.Revision)
	}

	// Compare-and-set on the current revision, in both forms.
	cas := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/demo", `{"theme":"light"}`, "If-Match", etag))
	if cas.Revision <= put.Revision {
		t.Errorf("PUT demo If-Match %s = revision %v; want above %v", etag, cas.Revision, put.Revision)
	}
	cas2 := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/demo", `{"theme":"dark"}`, "If-Match", fmt.Sprintf(`"%d"`, cas.Revision)))
	if cas2.Revision <= cas.Revision {
		t.Errorf("PUT demo If-Match %q = revision %v; want above %v", cas.Revision, cas2.Revision, cas.Revision)
	}

	patch := decodeSnapshot(t, d.expect(t, http.StatusOK, "PATCH", "/v1/topics/demo", `{"lang":"en"}`, "Content-Type", "application/merge-patch+json"))
	if patch.Revision <= cas2.Revision || !jsonEqual(patch.Data, []byte(`{"theme":"dark","lang":"en"}`)) {
		t.Errorf("PATCH demo = %+v; want a revision above %v and the merged data", patch, cas2.Revision)
	}

	del := decodeSnapshot(t, d.expect(t, http.StatusOK, "DELETE", "/v1/topics/demo", ""))
	got = decodeSnapshot(t, d.expect(t, http.StatusOK, "GET", "/v1/topics/demo", ""))
	if del.Revision <= patch.Revision || got.Revision != del.Revision || string(got.Data) != "null" {
		t.Errorf("DELETE demo = revision %v, then GET = %+v; want a revision above %v and data null", del.Revision, got, patch.Revision)
	}

	never := decodeSnapshot(t, d.expect(t, http.StatusOK, "GET", "/v1/topics/never.written", ""))
	if never.Revision != 0 || string(never.Data) != "null" {
		t.Errorf("GET never.written = %+v; want revision 0 and data null", never)
	}

	d.expect(t, http.StatusOK, "PUT", "/v1/topics/another", `[1,2,3]`)
	var list struct {
		Topics []statesync.TopicInfo `json:"topics"`
	}
	if err := json.Unmarshal(d.expect(t, http.StatusOK, "GET", "/v1/topics", ""), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Topics) != 2 || list.Topics[0].Topic != "another" || list.Topics[1].Topic != "demo" || list.Topics[1].Revision != del.Revision {
		t.Errorf("GET /v1/topics = %+v; want another and demo (at %v)", list.Topics, del.Revision)
	}
}

// TestEventStream: a stream sends the current revision of its topic at
// once, then one frame per write (DESIGN §4, GET /v1/events).
func TestEventStream(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	first := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/demo", `{"n":0}`))

	s := d.openStream(t, "/v1/events?topic=demo")
	inv := s.next(t).inv(t)
	if inv.Topic != "demo" || inv.Revision != first.Revision || inv.Epoch != first.Epoch {
		t.Fatalf("first frame = %+v; want demo at %v, epoch %q", inv, first.Revision, first.Epoch)
	}
	prev := first.Revision
	for i := 1; i <= 5; i++ {
		w := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/demo", fmt.Sprintf(`{"n":%d}`, i)))
		inv := s.next(t).inv(t)
		if inv.Topic != "demo" || inv.Revision != w.Revision || inv.Revision <= prev || inv.Epoch != w.Epoch {
			t.Fatalf("frame after PUT %d = %+v; want demo at %v (above %v)", i, inv, w.Revision, prev)
		}
		prev = inv.Revision
	}
	// Another topic's writes are not sent on this stream; the never
	// written topic of a second stream starts at 0.
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/other", `1`)
	s2 := d.openStream(t, "/v1/events?topic=fresh&topic=demo")
	if a, b := s2.next(t).inv(t), s2.next(t).inv(t); a.Topic != "fresh" || a.Revision != 0 || b.Topic != "demo" || b.Revision != prev {
		t.Errorf("second stream's first frames = %+v, %+v; want fresh at 0, demo at %v", a, b, prev)
	}
	last := decodeSnapshot(t, d.expect(t, http.StatusOK, "DELETE", "/v1/topics/demo", ""))
	if inv := s.next(t).inv(t); inv.Topic != "demo" || inv.Revision != last.Revision {
		t.Errorf("frame after DELETE = %+v; want demo at %v (no frame for other)", inv, last.Revision)
	}
}

// TestBadRequests: 413 for a body over --max-body, 400 for a bad topic,
// bad JSON or a bad If-Match, 404 for an unknown route; nothing is stored
// by a refused write (DESIGN §4: "Nothing partial is ever stored").
func TestBadRequests(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBody = 64
	d := startDaemon(t, cfg)

	atLimit := `"` + strings.Repeat("x", 62) + `"` // 64 bytes
	over := `"` + strings.Repeat("x", 63) + `"`    // 65 bytes
	tests := []struct {
		method, path, body string
		hdr                []string
		status             int
		code               string
	}{
		{"PUT", "/v1/topics/big", over, nil, http.StatusRequestEntityTooLarge, httpsync.CodeTooLarge},
		{"PATCH", "/v1/topics/big", `{"a":` + over + `}`, []string{"Content-Type", "application/merge-patch+json"}, http.StatusRequestEntityTooLarge, httpsync.CodeTooLarge},
		{"PUT", "/v1/topics/%2E%2E", `1`, nil, http.StatusBadRequest, httpsync.CodeInvalidTopic},
		{"PUT", "/v1/topics/has%09tab", `1`, nil, http.StatusBadRequest, httpsync.CodeInvalidTopic},
		{"GET", "/v1/topics/bad%00", "", nil, http.StatusBadRequest, httpsync.CodeInvalidTopic},
		{"GET", "/v1/topics/%20", "", nil, http.StatusBadRequest, httpsync.CodeInvalidTopic},
		{"GET", "/v1/topics/" + strings.Repeat("a", 257), "", nil, http.StatusBadRequest, httpsync.CodeInvalidTopic},
		{"GET", "/v1/events", "", nil, http.StatusBadRequest, httpsync.CodeInvalidParameter},
		{"PUT", "/v1/topics/big", `{"a":`, nil, http.StatusBadRequest, httpsync.CodeInvalidJSON},
		{"PUT", "/v1/topics/big", `{"a":1} trailing`, nil, http.StatusBadRequest, httpsync.CodeInvalidJSON},
		{"PUT", "/v1/topics/big", ``, nil, http.StatusBadRequest, httpsync.CodeInvalidJSON},
		{"PATCH", "/v1/topics/big", `{`, nil, http.StatusBadRequest, httpsync.CodeInvalidJSON},
		{"PUT", "/v1/topics/big", `1`, []string{"If-Match", "1"}, http.StatusBadRequest, httpsync.CodeInvalidIfMatch},
		{"GET", "/v1/nowhere", "", nil, http.StatusNotFound, httpsync.CodeNotFound},
		{"POST", "/v1/topics/big", `1`, nil, http.StatusMethodNotAllowed, httpsync.CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		resp, b := d.do(t, tt.method, tt.path, tt.body, tt.hdr...)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s %.20q = %d %s; want %d", tt.method, tt.path, tt.body, resp.StatusCode, b, tt.status)
			continue
		}
		if e := decodeError(t, b); e.Code != tt.code || e.Message == "" {
			t.Errorf("%s %s %.20q error = %+v; want code %q and a message", tt.method, tt.path, tt.body, e, tt.code)
		}
	}
	if got := decodeSnapshot(t, d.expect(t, http.StatusOK, "GET", "/v1/topics/big", "")); got.Revision != 0 || string(got.Data) != "null" {
		t.Errorf("GET big after refused writes = %+v; want revision 0 and data null", got)
	}
	if e := decodeError(t, d.expect(t, http.StatusRequestEntityTooLarge, "PUT", "/v1/topics/big", over)); !strings.Contains(e.Message, "64") {
		t.Errorf("413 message = %q; want it to name the limit of 64 bytes", e.Message)
	}
	ok := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/big", atLimit))
	if got := decodeSnapshot(t, d.expect(t, http.StatusOK, "GET", "/v1/topics/big", "")); got.Revision != ok.Revision || string(got.Data) != atLimit {
		t.Errorf("GET big after a PUT of exactly --max-body = %+v; want revision %v and the data", got, ok.Revision)
	}
}

// tokenFile writes a token file in dir (the format of httpsync.TokenFile).
func tokenFile(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "tokens.json")
	const tokens = `{
  "tokens": [
    {"name": "admin", "token": "admin-secret", "read": ["*"], "write": ["*"]},
    {"name": "reader", "token": "reader-secret", "read": ["pub:*"]},
    {"name": "writer", "token": "writer-secret", "read": ["pub:*"], "write": ["pub:*"]}
  ]
}`
	if err := os.WriteFile(path, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuth: with --tokens, a request without a token or with an unknown
// one is refused with 401, a topic outside the grants with 403 (alone, in
// a refused frame, on an event stream), lists leave such topics out, and
// the event stream accepts the access_token query parameter (DESIGN §4,
// Auth).
func TestAuth(t *testing.T) {
	cfg := testConfig(t)
	cfg.Tokens = tokenFile(t, t.TempDir())
	d := startDaemon(t, cfg)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	tests := []struct {
		method, path, body string
		hdr                []string
		status             int
	}{
		{"GET", "/v1/topics/pub:a", "", nil, http.StatusUnauthorized},
		{"GET", "/v1/topics/pub:a", "", bearer("wrong"), http.StatusUnauthorized},
		{"GET", "/v1/topics/pub:a", "", []string{"Authorization", "reader-secret"}, http.StatusUnauthorized},
		{"PUT", "/v1/topics/pub:a", `1`, nil, http.StatusUnauthorized},
		{"GET", "/v1/topics", "", nil, http.StatusUnauthorized},
		{"GET", "/v1/events?topic=pub:a", "", nil, http.StatusUnauthorized},
		{"GET", "/v1/events?topic=pub:a&access_token=wrong", "", nil, http.StatusUnauthorized},
		{"PUT", "/v1/topics/pub:a", `1`, bearer("reader-secret"), http.StatusForbidden},
		{"GET", "/v1/topics/secret", "", bearer("reader-secret"), http.StatusForbidden},
		{"PUT", "/v1/topics/secret", `1`, bearer("writer-secret"), http.StatusForbidden},
		{"DELETE", "/v1/topics/secret", "", bearer("writer-secret"), http.StatusForbidden},
	}
	for _, tt := range tests {
		resp, b := d.do(t, tt.method, tt.path, tt.body, tt.hdr...)
		want := map[int]string{http.StatusUnauthorized: httpsync.CodeUnauthorized, http.StatusForbidden: httpsync.CodeForbidden}[tt.status]
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s %q = %d %s; want %d", tt.method, tt.path, tt.hdr, resp.StatusCode, b, tt.status)
		} else if e := decodeError(t, b); e.Code != want {
			t.Errorf("%s %s %q error = %+v; want code %q", tt.method, tt.path, tt.hdr, e, want)
		}
	}

	// A stream refuses a topic outside the grants alone, in a refused frame.
	rs := d.openStream(t, "/v1/events?topic=pub:a&topic=secret&access_token=reader-secret")
	if ev := rs.next(t); ev.Type != "refused" || !strings.Contains(ev.Data, `"topic":"secret","code":"forbidden"`) {
		t.Errorf("first frame of a stream naming pub:a and secret = %+v; want secret refused", ev)
	}
	if inv := rs.next(t).inv(t); inv.Topic != "pub:a" {
		t.Errorf("second frame = %+v; want pub:a", inv)
	}

	w := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/pub:a", `{"v":1}`, bearer("writer-secret")...))
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/secret", `"hidden"`, bearer("admin-secret")...)
	if got := decodeSnapshot(t, d.expect(t, http.StatusOK, "GET", "/v1/topics/pub:a", "", bearer("reader-secret")...)); got.Revision != w.Revision {
		t.Errorf("GET pub:a as reader = %+v; want revision %v", got, w.Revision)
	}
	for tok, want := range map[string]string{"reader-secret": "pub:a", "admin-secret": "pub:a secret"} {
		var list struct {
			Topics []statesync.TopicInfo `json:"topics"`
		}
		if err := json.Unmarshal(d.expect(t, http.StatusOK, "GET", "/v1/topics", "", bearer(tok)...), &list); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ti := range list.Topics {
			names = append(names, ti.Topic)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("GET /v1/topics as %s = %s; want %s", tok, got, want)
		}
	}

	// EventSource cannot set headers: access_token in the query.
	s := d.openStream(t, "/v1/events?topic=pub:a&access_token=reader-secret")
	if inv := s.next(t).inv(t); inv.Topic != "pub:a" || inv.Revision != w.Revision {
		t.Errorf("first frame = %+v; want pub:a at %v", inv, w.Revision)
	}
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/secret", `"hidden 2"`, bearer("admin-secret")...)
	w2 := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/pub:a", `{"v":2}`, bearer("admin-secret")...))
	if inv := s.next(t).inv(t); inv.Topic != "pub:a" || inv.Revision != w2.Revision {
		t.Errorf("frame after PUT pub:a = %+v; want pub:a at %v (and never secret)", inv, w2.Revision)
	}

	// Liveness and the static pages need no token.
	d.expect(t, http.StatusOK, "GET", "/healthz", "")
	d.expect(t, http.StatusOK, "GET", "/", "")
}

// TestHealthz: /healthz answers 200 with a JSON status.
func TestHealthz(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	resp, b := d.do(t, "GET", "/healthz", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !jsonEqual(b, []byte(`{"status":"ok"}`)) {
		t.Errorf("GET /healthz = %d %q %s; want 200 application/json {\"status\":\"ok\"}", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

// TestWeb: / serves the dashboard and /statesync.js the browser module
// with a JavaScript content type (DESIGN §6).
func TestWeb(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	tests := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html", "<title>statesync</title>"},
		{"/index.html", "text/html", "<title>statesync</title>"},
		{"/statesync.js", "text/javascript", "export function connect("},
	}
	for _, tt := range tests {
		resp, b := d.do(t, "GET", tt.path, "")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) || !bytes.Contains(b, []byte(tt.contains)) {
			t.Errorf("GET %s = %d %q (%d bytes); want 200 %s holding %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(b), tt.ctype, tt.contains)
		}
	}
	if resp, _ := d.do(t, "GET", "/nothing.js", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing.js = %d; want 404", resp.StatusCode)
	}
	if resp, _ := d.do(t, "POST", "/", "x"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d; want 405", resp.StatusCode)
	}
}

// TestMetrics: /metrics exposes the statesync_* metrics with the Go and
// process collectors, and each counter moves with the requests it counts.
func TestMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.Heartbeat = 20 * time.Millisecond
	d := startDaemon(t, cfg)

	m := d.metrics(t)
	names := []string{"statesync_streams_open", "statesync_streams_total", "statesync_invalidations_sent_total",
		"statesync_snapshots_sent_total", "statesync_invalidations_coalesced_total", "statesync_heartbeats_total",
		"statesync_snapshot_gets_total", "statesync_snapshot_not_modified_total", "statesync_writes_total",
		"statesync_conflicts_total", "statesync_gzip_encodes_total", "statesync_streams_slow_disconnects_total"}
	for _, name := range names {
		if v, ok := m[name]; !ok || v != 0 {
			t.Errorf("metric %s = %v (present %v) at start; want 0", name, v, ok)
		}
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := m[name]; !ok {
			t.Errorf("metric %s missing; want the Go and process collectors", name)
		}
	}

	w := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/demo", `{"n":1}`))
	d.expect(t, http.StatusPreconditionFailed, "PUT", "/v1/topics/demo", `{"n":2}`, "If-Match", `"999"`)
	d.expect(t, http.StatusOK, "GET", "/v1/topics/demo", "")
	d.expect(t, http.StatusNotModified, "GET", "/v1/topics/demo", "", "If-None-Match", fmt.Sprintf(`"%s.%d"`, w.Epoch, w.Revision))
	d.expect(t, http.StatusBadRequest, "GET", "/v1/topics/bad%0A", "")
	big := `"` + strings.Repeat("y", 400) + `"`
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/big", big)
	for range 2 { // one encoding per revision, whatever the readers
		resp, b := d.do(t, "GET", "/v1/topics/big", "", "Accept-Encoding", "gzip")
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("GET big with gzip = %q, %v; want a gzip body", resp.Header.Get("Content-Encoding"), err)
		}
		if plain, err := io.ReadAll(zr); err != nil || !bytes.Contains(plain, []byte(big)) {
			t.Errorf("gunzipped GET big = %.40q, %v; want the snapshot", plain, err)
		}
	}

	s := d.openStream(t, "/v1/events?topic=demo")
	s.next(t)
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/demo", `{"n":3}`)
	s.next(t)
	m = d.metrics(t)
	want := map[string]float64{
		"statesync_writes_total":                  3,
		"statesync_conflicts_total":               1,
		"statesync_snapshot_gets_total":           3,
		"statesync_snapshot_not_modified_total":   1,
		"statesync_gzip_encodes_total":            1,
		"statesync_streams_open":                  1,
		"statesync_streams_total":                 1,
		"statesync_invalidations_sent_total":      2,
		`statesync_http_errors_total{code="412"}`: 1,
		`statesync_http_errors_total{code="400"}`: 1,
	}
	for name, v := range want {
		if m[name] != v {
			t.Errorf("metric %s = %v; want %v", name, m[name], v)
		}
	}
	poll.Until(t, "statesync_heartbeats_total > 0 on an open stream (heartbeat 20ms)", func() bool {
		return d.metrics(t)["statesync_heartbeats_total"] > 0
	})

	s.close()
	poll.Until(t, "statesync_streams_open back to 0 after the stream closed", func() bool {
		return d.metrics(t)["statesync_streams_open"] == 0
	})
}

// TestRestart: data survives a Shutdown and a Start on the same data
// directory; the revisions go on upward and the epoch changes, so that a
// consumer that followed the first run resynchronises with the second
// (B-REV-13) and then follows its writes.
func TestRestart(t *testing.T) {
	cfg := testConfig(t)
	d1 := startDaemon(t, cfg)
	var last snapshotBody
	for i := range 3 {
		w := decodeSnapshot(t, d1.expect(t, http.StatusOK, "PUT", "/v1/topics/a", fmt.Sprintf(`{"n":%d}`, i)))
		if w.Revision <= last.Revision {
			t.Fatalf("PUT a #%d = revision %v; want above %v", i, w.Revision, last.Revision)
		}
		last = w
	}
	b1 := decodeSnapshot(t, d1.expect(t, http.StatusOK, "PATCH", "/v1/topics/b", `{"x":true}`))

	// A consumer of a over the Go client, reconnecting fast.
	c, err := httpsync.NewClient(d1.url, &httpsync.ClientOptions{Backoff: httpsync.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var applied []statesync.Snapshot
	cons, err := statesync.NewConsumer("a", c, c, statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
		mu.Lock()
		applied = append(applied, s)
		mu.Unlock()
		return nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cons.Start(ctx); err != nil {
		t.Fatalf("Start = %v", err)
	}
	defer cons.Stop()
	if cons.Revision() != last.Revision || cons.Epoch() != last.Epoch {
		t.Fatalf("consumer at %v/%q after Start; want %v/%q", cons.Revision(), cons.Epoch(), last.Revision, last.Epoch)
	}

	if err := d1.shutdown(); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	cfg.Addr = d1.s.Addr().String() // the same address, for the consumer
	d2 := startDaemon(t, cfg)

	got := decodeSnapshot(t, d2.expect(t, http.StatusOK, "GET", "/v1/topics/a", ""))
	if got.Revision != last.Revision || !jsonEqual(got.Data, []byte(`{"n":2}`)) {
		t.Errorf("GET a after restart = %+v; want revision %v and the last data", got, last.Revision)
	}
	if got.Epoch == "" || got.Epoch == last.Epoch {
		t.Errorf("epoch after restart = %q; want a new one (was %q)", got.Epoch, last.Epoch)
	}
	if gb := decodeSnapshot(t, d2.expect(t, http.StatusOK, "GET", "/v1/topics/b", "")); gb.Revision != b1.Revision || !jsonEqual(gb.Data, b1.Data) {
		t.Errorf("GET b after restart = %+v; want %+v", gb, b1)
	}
	poll.Until(t, "the consumer adopts the new epoch at the same revision", func() bool {
		return cons.Epoch() == got.Epoch && cons.Revision() == last.Revision
	})

	next := decodeSnapshot(t, d2.expect(t, http.StatusOK, "PUT", "/v1/topics/a", `{"n":3}`))
	if next.Revision <= last.Revision || next.Epoch != got.Epoch {
		t.Errorf("PUT a after restart = revision %v epoch %q; want above %v in epoch %q", next.Revision, next.Epoch, last.Revision, got.Epoch)
	}
	poll.Until(t, "the consumer applies the write after the restart", func() bool { return cons.Revision() == next.Revision })
	cons.Stop()

	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(applied); i++ {
		p, s := applied[i-1], applied[i]
		if s.Epoch == p.Epoch && s.Revision <= p.Revision {
			t.Errorf("applied %v then %v in epoch %q; want increasing revisions within an epoch", p.Revision, s.Revision, s.Epoch)
		}
	}
	if l := applied[len(applied)-1]; !jsonEqual(l.Data, []byte(`{"n":3}`)) {
		t.Errorf("last applied = %s; want {\"n\":3}", l.Data)
	}
}

// TestShutdownClosesStreams: Shutdown ends the open event streams and
// returns well within its timeout; afterwards the address refuses
// connections and Done reports http.ErrServerClosed.
func TestShutdownClosesStreams(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/a", `1`)
	s1 := d.openStream(t, "/v1/events?topic=a")
	s2 := d.openStream(t, "/v1/events?topic=a&topic=b")
	s1.next(t)
	s2.next(t)
	s2.next(t)

	const timeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	d.down = true
	if err := d.s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v; want nil", err)
	}
	if el := time.Since(start); el > timeout/2 {
		t.Errorf("Shutdown took %v with two open streams; want well under its %v timeout", el, timeout)
	}
	for _, s := range []*sseStream{s1, s2} {
		s.ended(t, time.Second) // fails the test if the stream stays open
	}
	select {
	case err := <-d.s.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Done() = %v; want http.ErrServerClosed", err)
		}
	case <-time.After(waitFor):
		t.Errorf("Done() delivered nothing after Shutdown")
	}
	d.hc.CloseIdleConnections()
	if conn, err := net.DialTimeout("tcp", d.s.Addr().String(), time.Second); err == nil {
		conn.Close()
		t.Errorf("dialing %s after Shutdown succeeded; want the listener closed", d.s.Addr())
	}
}

// TestStartErrors: Start refuses what it cannot serve with an error that
// says why, and leaves nothing open behind it.
func TestStartErrors(t *testing.T) {
	t.Run("public address without tokens", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Addr = "0.0.0.0:0"
		if s, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "refusing") {
			if s != nil {
				_ = s.Shutdown(context.Background())
			}
			t.Errorf("Start(0.0.0.0:0) = %v; want a refusal", err)
		}
	})
	t.Run("data is a file", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Data = filepath.Join(cfg.Data, "file")
		if err := os.WriteFile(cfg.Data, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "data directory") {
			t.Errorf("Start with a file as data directory = %v; want a data directory error", err)
		}
	})
	t.Run("token file", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Tokens = filepath.Join(cfg.Data, "missing.json")
		if _, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "missing.json") {
			t.Errorf("Start with a missing token file = %v; want an error naming it", err)
		}
		cfg.Tokens = filepath.Join(cfg.Data, "bad.json")
		if err := os.WriteFile(cfg.Tokens, []byte(`{"tokens":[{"token":"x","raed":["*"]}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "raed") {
			t.Errorf("Start with a misspelt token file = %v; want an error naming the unknown field", err)
		}
	})
	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cfg := testConfig(t)
		cfg.Addr = ln.Addr().String()
		if _, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("Start on a busy address = %v; want address already in use", err)
		}
		// The store was closed: another daemon can open it at once.
		cfg.Addr = "127.0.0.1:0"
		startDaemon(t, cfg)
	})
	t.Run("data directory in use", func(t *testing.T) {
		cfg := testConfig(t)
		startDaemon(t, cfg)
		_, err := daemon.Start(cfg, nil)
		if !errors.Is(err, boltstore.ErrLocked) {
			t.Errorf("second Start on the same data directory = %v; want an error wrapping boltstore.ErrLocked", err)
		}
	})
}

// TestMemory: --memory serves from memory and creates no data directory.
func TestMemory(t *testing.T) {
	cfg := testConfig(t)
	cfg.Memory = true
	cfg.Data = filepath.Join(cfg.Data, "not-created")
	d := startDaemon(t, cfg)
	w := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/m", `"v"`))
	if got := decodeSnapshot(t, d.expect(t, http.StatusOK, "GET", "/v1/topics/m", "")); got.Revision != w.Revision || string(got.Data) != `"v"` {
		t.Errorf("GET m = %+v; want revision %v and \"v\"", got, w.Revision)
	}
	if _, err := os.Stat(cfg.Data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(%s) = %v; want it not to exist with --memory", cfg.Data, err)
	}
}

// TestRun: Run serves until its context ends, then shuts down and
// returns nil; it returns Start's errors at once.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Addr = ln.Addr().String()
	if err := daemon.Run(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Run on a busy address = %v; want address already in use", err)
	}
	ln.Close() // free the port for Run (the kernel keeps it for this process's next bind)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, nil) }()
	d := &testDaemon{url: "http://" + cfg.Addr, hc: &http.Client{}}
	defer d.hc.CloseIdleConnections()
	poll.Until(t, "Run serves /healthz", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run = %v before its context ended", err)
		default:
		}
		resp, err := d.hc.Get(d.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	s := d.openStream(t, "/v1/events?topic=x")
	s.next(t)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v; want nil", err)
		}
	case <-time.After(cfg.ShutdownTimeout + waitFor):
		t.Fatalf("Run did not return after its context ended")
	}
	s.ended(t, time.Second)
}

// TestShutdownEndsStreamsCleanly: an idle event stream closed by a
// graceful shutdown ends with a complete response (the final chunk of its
// chunked body), as a stream the server chose to end should, rather than
// the truncated response of a crash, which proxies log as an upstream
// error.
func TestShutdownEndsStreamsCleanly(t *testing.T) {
	for i := range 20 { // the cut is a race with the handler's return: try it often
		d := startDaemon(t, testConfig(t))
		s := d.openStream(t, "/v1/events?topic=a")
		s.next(t)
		if err := d.shutdown(); err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		if err := s.ended(t, time.Second); err != io.EOF {
			t.Fatalf("run %d: stream ended with %v; want io.EOF (a complete response)", i, err)
		}
	}
}
