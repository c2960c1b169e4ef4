package httpsync_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// A topic never written is served as revision 0 with null data and the
// store's epoch; a written one as its snapshot, with ETag "<epoch>.<rev>"
// (B-PROTO-02, B-PROTO-13, B-TRANS-08).
func TestGetSnapshot(t *testing.T) {
	s := newTestServer(t, nil)
	resp, body := s.do(t, "GET", "/v1/topics/settings", "")
	if resp.StatusCode != 200 || string(body) != `{"revision":"0","epoch":"ep0","data":null}` {
		t.Fatalf("GET never-written = %d %s; want 200 {\"revision\":\"0\",\"epoch\":\"ep0\",\"data\":null}", resp.StatusCode, body)
	}
	if got := resp.Header.Get("ETag"); got != `"ep0.0"` {
		t.Errorf("ETag = %s; want \"ep0.0\"", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q; want no-cache", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", got)
	}
	s.put(t, "settings", `{"theme":"dark"}`)
	resp, body = s.do(t, "GET", "/v1/topics/settings", "")
	if string(body) != `{"revision":"1","epoch":"ep0","data":{"theme":"dark"}}` || resp.Header.Get("ETag") != `"ep0.1"` {
		t.Fatalf("GET = %s ETag %s; want revision 1 with data, ETag \"ep0.1\"", body, resp.Header.Get("ETag"))
	}
	snap, err := statesync.DecodeSnapshot(body)
	if err != nil || snap.Revision != 1 {
		t.Fatalf("DecodeSnapshot(%s) = %v, %v", body, snap, err)
	}
	// HEAD: the headers without the body.
	resp, body = s.do(t, "HEAD", "/v1/topics/settings", "")
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("ETag") != `"ep0.1"` {
		t.Fatalf("HEAD = %d, %d bytes, ETag %s; want 200, no body, \"ep0.1\"", resp.StatusCode, len(body), resp.Header.Get("ETag"))
	}
}

// If-None-Match with the current ETag is answered 304 without a body; after
// a write the same header gets the new snapshot.
func TestGetNotModified(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "a", `1`)
	for _, inm := range []string{`"ep0.1"`, `W/"ep0.1"`, `"x", "ep0.1"`, `*`} {
		resp, body := s.do(t, "GET", "/v1/topics/a", "", "If-None-Match", inm)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("GET If-None-Match %s = %d %q; want 304 and no body", inm, resp.StatusCode, body)
		}
		if resp.Header.Get("ETag") != `"ep0.1"` {
			t.Errorf("304 ETag = %q; want \"ep0.1\"", resp.Header.Get("ETag"))
		}
	}
	for _, inm := range []string{`"ep0.2"`, `"1"`, `"other.1"`, `garbage`} {
		resp, _ := s.do(t, "GET", "/v1/topics/a", "", "If-None-Match", inm)
		if resp.StatusCode != 200 {
			t.Errorf("GET If-None-Match %s = %d; want 200", inm, resp.StatusCode)
		}
	}
	if got := s.h.Stats().NotModified; got != 4 {
		t.Errorf("Stats().NotModified = %d; want 4", got)
	}
	s.put(t, "a", `2`)
	resp, body := s.do(t, "GET", "/v1/topics/a", "", "If-None-Match", `"ep0.1"`)
	if resp.StatusCode != 200 || string(body) != `{"revision":"2","epoch":"ep0","data":2}` {
		t.Fatalf("GET after write = %d %s; want 200 revision 2", resp.StatusCode, body)
	}
}

// Snapshots are gzipped when the client accepts it, the gzip built once per
// revision however many readers ask; small ones and other clients get them
// plain.
func TestGetGzip(t *testing.T) {
	s := newTestServer(t, nil)
	big := `{"text":"` + strings.Repeat("state sync ", 500) + `"}`
	s.put(t, "big", big)
	s.put(t, "small", `{"a":1}`)
	want := `{"revision":"1","epoch":"ep0","data":` + big + `}`

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, body := s.do(t, "GET", "/v1/topics/big", "", "Accept-Encoding", "br;q=1, gzip;q=0.5")
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("Content-Encoding = %q; want gzip", resp.Header.Get("Content-Encoding"))
				return
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			plain, err := io.ReadAll(zr)
			if err != nil || string(plain) != want {
				t.Errorf("gunzipped body = %.60s…, %v; want %.60s…", plain, err, want)
			}
			if len(body) >= len(want) {
				t.Errorf("gzipped body is %d bytes, plain %d", len(body), len(want))
			}
		})
	}
	wg.Wait()
	if got := s.h.Stats().GzipEncodes; got != 1 {
		t.Errorf("GzipEncodes after 8 gzip GETs of one revision = %d; want 1", got)
	}
	s.put(t, "big", big)
	s.do(t, "GET", "/v1/topics/big", "", "Accept-Encoding", "gzip")
	if got := s.h.Stats().GzipEncodes; got != 2 {
		t.Errorf("GzipEncodes after a new revision = %d; want 2", got)
	}

	for _, tc := range []struct{ topic, ae string }{
		{"big", ""}, {"big", "gzip;q=0"}, {"big", "identity"}, {"small", "gzip"},
	} {
		resp, body := s.do(t, "GET", "/v1/topics/"+tc.topic, "", "Accept-Encoding", tc.ae)
		if resp.Header.Get("Content-Encoding") != "" || !json.Valid(body) {
			t.Errorf("GET %s with Accept-Encoding %q: Content-Encoding %q; want a plain body", tc.topic, tc.ae, resp.Header.Get("Content-Encoding"))
		}
	}
}

// writeResult is the body of a successful write.
type writeResult struct {
	Revision string          `json:"revision"`
	Epoch    string          `json:"epoch"`
	Data     json.RawMessage `json:"data"`
}

// PUT stores the body and answers the new revision, epoch and ETag; the
// invalidation, made after the commit, carries X-Source-Id (B-TRANS-08,
// B-PROTO-01).
func TestPut(t *testing.T) {
	s := newTestServer(t, nil)
	invs := make(chan statesync.Invalidation, 4)
	watchSource(t, s.src, func(inv statesync.Invalidation) { invs <- inv })

	resp, body := s.do(t, "PUT", "/v1/topics/settings", `{"theme":"dark"}`, "X-Source-Id", "w1")
	var res writeResult
	mustJSON(t, body, &res)
	if resp.StatusCode != 200 || res.Revision != "1" || res.Epoch != "ep0" || resp.Header.Get("ETag") != `"ep0.1"` {
		t.Fatalf("PUT = %d %s ETag %s; want 200 revision 1 epoch ep0 ETag \"ep0.1\"", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	if got := s.get(t, "settings"); string(got.Data) != `{"theme":"dark"}` || got.Revision != 1 {
		t.Errorf("Get(%q) = %s at %d; want {\"theme\":\"dark\"} at 1", "settings", got.Data, got.Revision)
	}
	if inv := <-invs; inv.SourceID != "w1" || inv.Revision != 1 {
		t.Errorf("invalidation = %+v; want revision 1 from w1", inv)
	}
	resp, _ = s.do(t, "PUT", "/v1/topics/settings", `null`)
	if resp.StatusCode != 200 || string(s.get(t, "settings").Data) != "null" {
		t.Errorf("PUT null = %d, data %s; want 200 and null", resp.StatusCode, s.get(t, "settings").Data)
	}
	if got := s.h.Stats().Writes; got != 2 {
		t.Errorf("Stats().Writes = %d; want 2", got)
	}
}

// If-Match makes a write compare-and-set: the revision (or ETag) must be the
// current one, else 412 with the current revision and epoch and nothing
// stored; a malformed If-Match is a 400 and stores nothing (B-TRANS-08).
func TestWriteIfMatch(t *testing.T) {
	for _, method := range []string{"PUT", "PATCH", "DELETE"} {
		t.Run(method, func(t *testing.T) {
			s := newTestServer(t, nil)
			s.put(t, "t", `{"n":1}`) // revision 1
			body := `{"n":2}`
			ok := []string{`"1"`, `"ep0.2"`, `*`, ` "4" `}
			for i, im := range ok {
				body := `{"n":` + strconv.Itoa(i+2) + `}` // a PATCH that changes nothing makes no revision
				resp, b := s.do(t, method, "/v1/topics/t", body, "If-Match", im)
				if resp.StatusCode != 200 {
					t.Fatalf("%s If-Match %s = %d %s; want 200", method, im, resp.StatusCode, b)
				}
				if got := s.get(t, "t").Revision; got != statesync.Revision(i+2) {
					t.Fatalf("revision after %s If-Match %s = %d; want %d", method, im, got, i+2)
				}
			}
			before := s.get(t, "t") // revision 5
			for _, im := range []string{`"4"`, `"6"`, `"0"`, `"other.5"`, `"ep0.4"`} {
				resp, b := s.do(t, method, "/v1/topics/t", body, "If-Match", im)
				if resp.StatusCode != http.StatusPreconditionFailed {
					t.Fatalf("%s If-Match %s = %d %s; want 412", method, im, resp.StatusCode, b)
				}
				e := decodeError(t, b)
				if e.Error.Code != "conflict" || e.Error.Revision != "5" || e.Error.Epoch != "ep0" {
					t.Errorf("412 body = %s; want code conflict, revision 5, epoch ep0", b)
				}
				if resp.Header.Get("ETag") != `"ep0.5"` {
					t.Errorf("412 ETag = %q; want \"ep0.5\"", resp.Header.Get("ETag"))
				}
			}
			for _, im := range []string{`5`, `"05"`, `W/"5"`, `"5", "6"`, `""`, `"ep0."`, `".5"`, `"5`, `"x y.5"`} {
				resp, b := s.do(t, method, "/v1/topics/t", body, "If-Match", im)
				if resp.StatusCode != http.StatusBadRequest || decodeError(t, b).Error.Code != "invalid_if_match" {
					t.Errorf("%s If-Match %s = %d %s; want 400 invalid_if_match", method, im, resp.StatusCode, b)
				}
			}
			if after := s.get(t, "t"); after.Revision != before.Revision || string(after.Data) != string(before.Data) {
				t.Errorf("after refused writes Get = %s at %d; want %s at %d", after.Data, after.Revision, before.Data, before.Revision)
			}
			if got := s.h.Stats().Conflicts; got != 5 {
				t.Errorf("Stats().Conflicts = %d; want 5", got)
			}
		})
	}
}

// PATCH applies a JSON merge patch atomically and answers the result.
func TestPatch(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "doc", `{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}`)
	patch := `{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}`
	want := `{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}`
	resp, body := s.do(t, "PATCH", "/v1/topics/doc", patch, "Content-Type", "application/merge-patch+json")
	var res writeResult
	mustJSON(t, body, &res)
	if resp.StatusCode != 200 || res.Revision != "2" || string(res.Data) != want {
		t.Fatalf("PATCH = %d %s; want 200 revision 2 data %s", resp.StatusCode, body, want)
	}
	if got := s.get(t, "doc"); string(got.Data) != want {
		t.Errorf("Get(%q) = %s; want %s", "doc", got.Data, want)
	}
	// A topic never written patches null.
	resp, body = s.do(t, "PATCH", "/v1/topics/fresh", `{"a":{"b":null,"c":1}}`, "Content-Type", "application/json")
	mustJSON(t, body, &res)
	if resp.StatusCode != 200 || string(res.Data) != `{"a":{"c":1}}` {
		t.Errorf("PATCH fresh = %d %s; want data {\"a\":{\"c\":1}}", resp.StatusCode, body)
	}
	// Concurrent patches of distinct members all land (compare-and-set retries).
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			resp, b := s.do(t, "PATCH", "/v1/topics/counter", `{"k`+string(rune('a'+i))+`":true}`, "Content-Type", "application/merge-patch+json")
			if resp.StatusCode != 200 {
				t.Errorf("PATCH = %d %s", resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	var members map[string]bool
	mustJSON(t, s.get(t, "counter").Data, &members)
	if len(members) != 20 {
		t.Errorf("after 20 concurrent patches: %d members; want 20", len(members))
	}
}

// DELETE makes the data null at a new revision.
func TestDelete(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "t", `{"a":1}`)
	resp, body := s.do(t, "DELETE", "/v1/topics/t", "")
	var res writeResult
	mustJSON(t, body, &res)
	if resp.StatusCode != 200 || res.Revision != "2" {
		t.Fatalf("DELETE = %d %s; want 200 revision 2", resp.StatusCode, body)
	}
	if got := s.get(t, "t"); got.Revision != 2 || string(got.Data) != "null" {
		t.Errorf("Get after DELETE = %s at %d; want null at 2", got.Data, got.Revision)
	}
}

// GET /v1/topics lists the written topics with revision and epoch.
func TestList(t *testing.T) {
	s := newTestServer(t, nil)
	resp, body := s.do(t, "GET", "/v1/topics", "")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"topics":[]}` {
		t.Fatalf("GET /v1/topics (empty) = %d %s; want {\"topics\":[]}", resp.StatusCode, body)
	}
	s.put(t, "b", `1`)
	s.put(t, "a", `1`)
	s.put(t, "a", `2`)
	_, body = s.do(t, "GET", "/v1/topics", "")
	if got, want := strings.TrimSpace(string(body)), `{"topics":[{"topic":"a","revision":"2","epoch":"ep0"},{"topic":"b","revision":"1","epoch":"ep0"}]}`; got != want {
		t.Errorf("GET /v1/topics = %s; want %s", got, want)
	}
}

// Every error status the API documents, with its JSON body and its count
// in Stats.
func TestErrorStatuses(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{MaxBody: 64})
	s.put(t, "t", `{"a":1}`)
	long := strings.Repeat("x", statesync.MaxTopicLen+1)
	cases := []struct {
		method, path, body string
		hdr                []string
		status             int
		code               string
	}{
		{"GET", "/v1/topics/bad%0Atopic", "", nil, 400, "invalid_topic"},
		{"GET", "/v1/topics/" + long, "", nil, 400, "invalid_topic"},
		{"GET", "/v1/topics/", "", nil, 400, "invalid_topic"},
		{"GET", "/v1/topics/%2E%2E", "", nil, 400, "invalid_topic"},
		{"GET", "/v1/topics/a%E2%80%AEb", "", nil, 400, "invalid_topic"},
		{"PUT", "/v1/topics/bad%FFtopic", `1`, nil, 400, "invalid_topic"},
		{"PUT", "/v1/topics/t", `{"a":`, nil, 400, "invalid_json"},
		{"PUT", "/v1/topics/t", ``, nil, 400, "invalid_json"},
		{"PATCH", "/v1/topics/t", `nope`, []string{"Content-Type", "application/merge-patch+json"}, 400, "invalid_json"},
		{"PUT", "/v1/topics/t", `1`, []string{"If-Match", "1"}, 400, "invalid_if_match"},
		{"PUT", "/v1/topics/t", `1`, []string{"X-Source-Id", strings.Repeat("s", 257)}, 400, "invalid_parameter"},
		{"GET", "/v1/events", "", nil, 400, "invalid_parameter"},
		{"GET", "/v1/events?topic=ok&inline=-1", "", nil, 400, "invalid_parameter"},
		{"GET", "/v1/events?topic=ok&inline=x", "", nil, 400, "invalid_parameter"},
		{"GET", "/", "", nil, 404, "not_found"},
		{"GET", "/v1", "", nil, 404, "not_found"},
		{"GET", "/v2/topics/t", "", nil, 404, "not_found"},
		{"GET", "/v1/topicsx", "", nil, 404, "not_found"},
		{"POST", "/v1/topics/t", `1`, nil, 405, "method_not_allowed"},
		{"PUT", "/v1/topics", `1`, nil, 405, "method_not_allowed"},
		{"POST", "/v1/events?topic=t", "", nil, 405, "method_not_allowed"},
		{"PUT", "/v1/topics/t", `2`, []string{"If-Match", `"7"`}, 412, "conflict"},
		{"PUT", "/v1/topics/t", `"` + strings.Repeat("y", 100) + `"`, nil, 413, "too_large"},
		{"PATCH", "/v1/topics/t", `{"b":"` + strings.Repeat("y", 100) + `"}`, []string{"Content-Type", "application/merge-patch+json"}, 413, "too_large"},
		{"PATCH", "/v1/topics/t", `[{"op":"add","path":"/b","value":1}]`, []string{"Content-Type", "application/json-patch+json"}, 415, "unsupported_media_type"},
	}
	want := map[int]uint64{}
	for _, tc := range cases {
		resp, body := s.do(t, tc.method, tc.path, tc.body, tc.hdr...)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s = %d %s; want %d", tc.method, tc.path, resp.StatusCode, body, tc.status)
			continue
		}
		want[tc.status]++
		if e := decodeError(t, body); e.Error.Code != tc.code {
			t.Errorf("%s %s: code %q; want %q", tc.method, tc.path, e.Error.Code, tc.code)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q; want application/json", tc.method, tc.path, ct)
		}
		if tc.status == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
	// Nothing was stored by any of them.
	if got := s.get(t, "t"); got.Revision != 1 || string(got.Data) != `{"a":1}` {
		t.Errorf("Get(%q) after refused writes = %s at %d; want {\"a\":1} at 1", "t", got.Data, got.Revision)
	}
	if got := s.h.Stats().Errors; !mapsEqual(got, want) {
		t.Errorf("Stats().Errors = %v; want %v", got, want)
	}

	// 503 once closed, for every route.
	s.h.Close()
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/topics/t"}, {"PUT", "/v1/topics/t"}, {"GET", "/v1/topics"}, {"GET", "/v1/events?topic=t"},
	} {
		resp, body := s.do(t, r.method, r.path, `1`)
		if resp.StatusCode != 503 || decodeError(t, body).Error.Code != "unavailable" {
			t.Errorf("%s %s after Close = %d %s; want 503 unavailable", r.method, r.path, resp.StatusCode, body)
		}
	}
	// 503 when the source is closed.
	s2 := newTestServer(t, nil)
	s2.src.Close()
	resp, body := s2.do(t, "GET", "/v1/topics/t", "")
	if resp.StatusCode != 503 {
		t.Errorf("GET with a closed source = %d %s; want 503", resp.StatusCode, body)
	}
}

// A 413 stores nothing, even for a body of exactly one byte over the limit
// that would be valid JSON up to the limit.
func TestTooLargeStoresNothing(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{MaxBody: 10})
	for _, body := range []string{`12345678901`, `"123456789"  `, `[1,2,3,4,5,6]`} {
		resp, b := s.do(t, "PUT", "/v1/topics/t", body)
		if resp.StatusCode != 413 {
			t.Fatalf("PUT %d bytes = %d %s; want 413", len(body), resp.StatusCode, b)
		}
	}
	if got := s.get(t, "t"); got.Revision != 0 {
		t.Errorf("Get after 413s = revision %d; want 0", got.Revision)
	}
	resp, _ := s.do(t, "PUT", "/v1/topics/t", `1234567890`)
	if resp.StatusCode != 200 {
		t.Errorf("PUT of exactly MaxBody bytes = %d; want 200", resp.StatusCode)
	}
	// The default limit is 1 MiB.
	d := newTestServer(t, nil)
	big := `"` + strings.Repeat("a", 1<<20) + `"`
	if resp, _ := d.do(t, "PUT", "/v1/topics/t", big); resp.StatusCode != 413 {
		t.Errorf("PUT of 1 MiB + 2 bytes = %d; want 413", resp.StatusCode)
	}
	if got := d.get(t, "t"); got.Revision != 0 {
		t.Errorf("Get after 413 = revision %d; want 0", got.Revision)
	}
}

// Writes through the handler are stored whole even under concurrency: a
// reader never sees a torn or partial value.
func TestConcurrentWritesAreWhole(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				v := strings.Repeat(string(rune('a'+w)), 100+i)
				if resp, b := s.do(t, "PUT", "/v1/topics/t", `{"v":"`+v+`"}`); resp.StatusCode != 200 {
					t.Errorf("PUT = %d %s", resp.StatusCode, b)
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			snap, _ := s.src.Snapshot(ctx, "t")
			var v struct{ V string }
			if snap.Revision > 0 && (json.Unmarshal(snap.Data, &v) != nil || strings.Trim(v.V, v.V[:1]) != "") {
				t.Errorf("torn value %s", snap.Data)
			}
		}
	})
	wg.Wait()
	if got := s.get(t, "t").Revision; got != 100 {
		t.Errorf("revision after 100 PUTs = %d; want 100", got)
	}
}

func mapsEqual(a, b map[int]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// failingStore is a MemoryStore whose reads fail on demand and whose
// conditional writes always lose.
type failingStore struct {
	*statesync.MemoryStore
	failGet  atomic.Bool
	conflict atomic.Bool
}

func (s *failingStore) Get(ctx context.Context, topic string) (statesync.Record, error) {
	if s.failGet.Load() {
		return statesync.Record{}, errors.New("disk on fire")
	}
	return s.MemoryStore.Get(ctx, topic)
}

func (s *failingStore) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	if s.conflict.Load() && w.Conditional {
		return statesync.Record{}, &statesync.ConflictError{Topic: w.Topic, Expected: w.IfRevision, Current: w.IfRevision + 1}
	}
	return s.MemoryStore.Write(ctx, w)
}

// A PATCH that keeps losing its compare-and-set is a 409 (contention); a
// store failure is a 500 that says nothing of the cause, logged; neither
// stores anything (B-TRANS-08).
func TestStoreFailures(t *testing.T) {
	store := &failingStore{MemoryStore: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1})}
	src, err := statesync.NewSource(store, &statesync.SourceOptions{MaxUpdateAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var logs strings.Builder
	var logMu sync.Mutex
	h := httpsync.NewHandler(src, &httpsync.HandlerOptions{Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer h.Close()
	s := &testServer{store: store.MemoryStore, src: src, h: h, ts: ts, hc: ts.Client()}
	s.put(t, "t", `{"a":1}`)

	store.conflict.Store(true)
	resp, body := s.do(t, "PATCH", "/v1/topics/t", `{"b":2}`, "Content-Type", "application/merge-patch+json")
	if resp.StatusCode != http.StatusConflict || decodeError(t, body).Error.Code != "contention" {
		t.Errorf("PATCH losing every compare-and-set = %d %s; want 409 contention", resp.StatusCode, body)
	}
	store.conflict.Store(false)
	store.failGet.Store(true)
	for _, r := range []struct{ method, path string }{{"GET", "/v1/topics/fresh"}, {"PATCH", "/v1/topics/t"}, {"GET", "/v1/events?topic=fresh"}} {
		resp, body = s.do(t, r.method, r.path, `{"b":2}`)
		if resp.StatusCode != 500 || decodeError(t, body).Error.Code != "internal" || strings.Contains(string(body), "fire") {
			t.Errorf("%s %s with a failing store = %d %s; want 500 internal, without the cause", r.method, r.path, resp.StatusCode, body)
		}
	}
	store.failGet.Store(false)
	if got := s.get(t, "t"); got.Revision != 1 || string(got.Data) != `{"a":1}` {
		t.Errorf("Get(%q) = %s at %d; want {\"a\":1} at 1", "t", got.Data, got.Revision)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("log %q does not record the store's error", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
