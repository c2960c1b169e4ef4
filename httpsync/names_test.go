package httpsync_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// namesServer is a Source behind a Handler mounted at "/v1/" of an
// http.ServeMux, as the daemon mounts it (the mux cleans paths: what the
// client escapes must survive it), with bearer tokens that a test may
// replace.
type namesServer struct {
	src    *statesync.Source
	h      *httpsync.Handler
	ts     *httptest.Server
	tokens atomic.Pointer[httpsync.Tokens]
}

func newNamesServer(t testing.TB) *namesServer {
	t.Helper()
	store := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: testEpoch, FirstRevision: 1})
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &namesServer{src: src}
	s.setTokens(t, nil)
	s.h = httpsync.NewHandler(src, hijackOpts(&httpsync.HandlerOptions{Auth: authFunc(func(r *http.Request) (httpsync.Grants, error) {
		return s.tokens.Load().Authenticate(r)
	})}))
	mux := http.NewServeMux()
	mux.Handle("/v1/", s.h)
	s.ts = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.h.Close()
		s.ts.Close()
		src.Close()
	})
	return s
}

// setTokens makes the tokens "all" (reads and writes every topic) and
// "one" (reads the topics of the patterns onePatterns).
func (s *namesServer) setTokens(t testing.TB, onePatterns []string) {
	t.Helper()
	toks, err := httpsync.NewTokens([]httpsync.TokenSpec{
		{Name: "all", Token: "all", Read: []string{"*"}, Write: []string{"*"}},
		{Name: "one", Token: "one", Read: onePatterns},
	})
	if err != nil {
		t.Fatalf("NewTokens(one reads %q): %v", onePatterns, err)
	}
	s.tokens.Store(toks)
}

// grantPattern is the token-file pattern of exactly topic ('*' and '\'
// escaped), or of every topic starting with it if prefix.
func grantPattern(topic string, prefix bool) string {
	p := strings.NewReplacer(`\`, `\\`, `*`, `\*`).Replace(topic)
	if prefix {
		p += "*"
	}
	return p
}

// invRecorder records the invalidations a Client delivers.
type invRecorder struct {
	mu   sync.Mutex // protects invs and raw
	invs []statesync.Invalidation
	raw  [][]byte
	sig  chan struct{}
}

func newInvRecorder() *invRecorder { return &invRecorder{sig: make(chan struct{}, 1)} }

func (r *invRecorder) Invalidate(inv statesync.Invalidation) {
	r.mu.Lock()
	r.invs = append(r.invs, inv)
	r.mu.Unlock()
	select {
	case r.sig <- struct{}{}:
	default:
	}
}

func (r *invRecorder) InvalidateRaw(p []byte) {
	inv, err := statesync.DecodeInvalidation(p)
	if err != nil {
		r.mu.Lock()
		r.raw = append(r.raw, p)
		r.mu.Unlock()
		return
	}
	r.Invalidate(inv)
}

// waitFor waits for an invalidation of topic at rev.
func (r *invRecorder) waitFor(t testing.TB, topic string, rev statesync.Revision) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		found := slices.ContainsFunc(r.invs, func(inv statesync.Invalidation) bool { return inv.Topic == topic && inv.Revision == rev })
		invs, raw := slices.Clone(r.invs), len(r.raw)
		r.mu.Unlock()
		if found {
			return
		}
		select {
		case <-r.sig:
		case <-deadline:
			t.Fatalf("no invalidation of %q at %d; got %+v and %d malformed payloads", topic, rev, invs, raw)
		}
	}
}

// checkName sends name through every part of the HTTP transport: a PUT
// and a GET of the Go client, the Source (what the handler stored), a
// raw event stream (?topic= escaped by url.Values), the list, the grants of
// a token reading exactly that name or names starting with it.
func checkName(t testing.TB, s *namesServer, c *httpsync.Client, name string) {
	t.Helper()
	ctx := context.Background()
	data, _ := json.Marshal(map[string]string{"name": name})
	put, err := c.Put(ctx, name, data)
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	if got, err := s.src.Snapshot(ctx, name); err != nil || got.Revision != put.Revision {
		t.Fatalf("Source.Snapshot(%q) = %+v, %v; want the client's write at %d (the handler stored another name?)", name, got, err, put.Revision)
	}
	// A second client, so that the snapshot is not the first one's cache.
	c2 := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "all"})
	if got, err := c2.Snapshot(ctx, name); err != nil || got.Revision != put.Revision || string(got.Data) != string(data) {
		t.Fatalf("Snapshot(%q) = %+v, %v; want %s at %d", name, got, err, data, put.Revision)
	}
	// The event stream's first frame for the topic names it exactly.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.ts.URL+"/v1/events?"+url.Values{"topic": {name}}.Encode(), nil)
	req.Header.Set("Authorization", "Bearer all")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	st := &sseStream{resp: resp, br: bufio.NewReader(resp.Body)}
	f := st.nextEvent(t)
	resp.Body.Close()
	var inv statesync.Invalidation
	if err := json.Unmarshal([]byte(f.data), &inv); err != nil || inv.Topic != name || inv.Revision != put.Revision || f.event != "invalidation" {
		t.Fatalf("first frame of the stream of %q = %s %s (%v); want an invalidation of it at %d", name, f.event, f.data, err, put.Revision)
	}
	list, err := c.Topics(ctx)
	if err != nil || !slices.ContainsFunc(list, func(ti statesync.TopicInfo) bool { return ti.Topic == name && ti.Revision == put.Revision }) {
		t.Fatalf("Topics() = %+v, %v; want %q at %d among them", list, err, name, put.Revision)
	}
	// Grants: exactly the name, and names starting with it.
	for _, prefix := range []bool{false, true} {
		s.setTokens(t, []string{grantPattern(name, prefix)})
		one := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "one"})
		if got, err := one.Snapshot(ctx, name); err != nil || got.Revision != put.Revision {
			t.Fatalf("Snapshot(%q) with a grant %q = %+v, %v; want it at %d", name, grantPattern(name, prefix), got, err, put.Revision)
		}
		if list, err := one.Topics(ctx); err != nil || !slices.ContainsFunc(list, func(ti statesync.TopicInfo) bool { return ti.Topic == name }) {
			t.Fatalf("Topics() with a grant %q = %+v, %v; want %q among them", grantPattern(name, prefix), list, err, name)
		} else if i := slices.IndexFunc(list, func(ti statesync.TopicInfo) bool {
			return ti.Topic != name && (!prefix || !strings.HasPrefix(ti.Topic, name))
		}); i >= 0 {
			t.Fatalf("Topics() with a grant %q lists %q, outside the grant", grantPattern(name, prefix), list[i].Topic)
		}
		if len(name) < statesync.MaxTopicLen {
			other := name + "x"
			_, err := one.Snapshot(ctx, other)
			if allowed := err == nil; allowed != prefix {
				t.Fatalf("Snapshot(%q) with a grant %q: error %v; want allowed = %v", other, grantPattern(name, prefix), err, prefix)
			}
		}
	}
}

// Topic names users write (issue 13 item 4; docs/PROTOCOL.md "Topic
// names"): names holding the URL's and the grants' special characters,
// non-ASCII, "." and ".." inside, and the longest, round-trip through the
// Go client, the handler behind a ServeMux, the event stream, the list and
// the grants; and the Go client's Subscribe hears each under its name.
func TestTopicNamesRoundTrip(t *testing.T) {
	s := newNamesServer(t)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "all"})
	names := []string{
		"settings/ui", "my topic", "café", "cafe\u0301", "日本語/設定", "🙂", "a+b", "a b+c", "100%", "%2F", "%25", "a%2F..%2Fb",
		"a?b=c&d", "#frag", "a#b", "?", "/", "//", "/leading", "trailing/", "a/../b", "a/./b", "../x", "x/..", "x/.", "...",
		".a", "a.", "*", "a*", `a\*`, `\`, `a\\b`, "[x]", "{tag}", "<script>alert(1)</script>", `"quoted"`, "'", "a;b", "a,b",
		"\ufeffbom", "zw\u200dj", "\U0010FFFF", "~user", "@at", "a:b", "a=b", "\u00a0x",
		strings.Repeat("/", statesync.MaxTopicLen), strings.Repeat("é", statesync.MaxTopicLen/2), strings.Repeat("%", statesync.MaxTopicLen),
	}
	rec := newInvRecorder()
	for _, name := range names {
		stop, err := c.Subscribe(context.Background(), name, rec)
		if err != nil {
			t.Fatalf("Subscribe(%q): %v", name, err)
		}
		t.Cleanup(stop)
	}
	for _, name := range names {
		t.Run(name[:min(len(name), 40)], func(t *testing.T) { checkName(t, s, c, name) })
	}
	for _, name := range names {
		snap, err := s.src.Snapshot(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, name, snap.Revision)
	}
	if len(rec.raw) != 0 {
		t.Errorf("Subscribe delivered %d malformed payloads: %q", len(rec.raw), rec.raw)
	}
}

// Hostile paths: what a client sends unescaped or half-escaped names
// exactly the topic its decoded path says, never another route or a file;
// invalid names are refused with 400 invalid_topic and store nothing.
func TestTopicNamesHostilePaths(t *testing.T) {
	s := newNamesServer(t)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, s.ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer all")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading body: %v", method, path, err)
		}
		return resp, b
	}
	for _, tt := range []struct{ path, topic string }{
		{"/v1/topics/a%2F..%2Fb", "a/../b"}, // escaped: one segment, no dot segment
		{"/v1/topics/%2E%2E%2Fetc", "../etc"},
		{"/v1/topics/a%252F", "a%2F"},
		{"/v1/topics/settings/ui", "settings/ui"}, // an unescaped '/' is taken as part of the name
		{"/v1/topics/a+b", "a+b"},                 // '+' is not a space in a path
		{"/v1/topics/caf%C3%A9", "café"},
		{"/v1/topics/%2A", "*"},
	} {
		resp, body := do("PUT", tt.path, `1`)
		if resp.StatusCode != 200 {
			t.Errorf("PUT %s = %d %s; want 200", tt.path, resp.StatusCode, body)
			continue
		}
		if got, _ := s.src.Snapshot(context.Background(), tt.topic); got.Revision == 0 {
			t.Errorf("PUT %s did not write topic %q", tt.path, tt.topic)
		}
	}
	for _, path := range []string{
		"/v1/topics/%2E%2E", "/v1/topics/%2e", "/v1/topics/%00", "/v1/topics/a%0Ab", "/v1/topics/%FF", "/v1/topics/%E2%80%A8",
		"/v1/topics/%20", "/v1/topics/" + strings.Repeat("a", statesync.MaxTopicLen+1),
	} {
		resp, body := do("PUT", path, `1`)
		if resp.StatusCode != 400 || decodeError(t, body).Error.Code != httpsync.CodeInvalidTopic {
			t.Errorf("PUT %s = %d %s; want 400 invalid_topic", path, resp.StatusCode, body)
		}
	}
	// Unescaped dot segments are removed by the ServeMux (a redirect to
	// the cleaned path), never written under another name.
	for _, path := range []string{"/v1/topics/a/../b", "/v1/topics/..", "/v1/topics/./x"} {
		resp, body := do("PUT", path, `1`)
		if resp.StatusCode == 200 {
			t.Errorf("PUT %s = 200 %s; want it refused or redirected", path, body)
		}
	}
	list, _ := s.src.List(context.Background())
	for _, ti := range list {
		if !slices.Contains([]string{"a/../b", "../etc", "a%2F", "settings/ui", "a+b", "café", "*"}, ti.Topic) {
			t.Errorf("topic %q was written; want only the valid paths' topics", ti.Topic)
		}
	}
	// A bad name in the event stream's query fails that name only.
	st := openNamesStream(t, s, url.Values{"topic": {"ok name", "bad\nname", "café"}})
	seen := map[string]bool{}
	for len(seen) < 3 {
		f := st.nextEvent(t)
		var v struct {
			Topic string `json:"topic"`
		}
		mustJSON(t, []byte(f.data), &v)
		seen[f.event+" "+v.Topic] = true
	}
	for _, want := range []string{"invalidation ok name", "invalidation café"} {
		if !seen[want] {
			t.Errorf("stream frames %v; want %q", seen, want)
		}
	}
}

func openNamesStream(t testing.TB, s *namesServer, q url.Values) *sseStream {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.ts.URL+"/v1/events?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer all")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/events?%s = %d", q.Encode(), resp.StatusCode)
	}
	return &sseStream{resp: resp, br: bufio.NewReader(resp.Body)}
}

// FuzzTopicRoundTrip: any valid name goes through the Go client's PUT and
// GET, the handler behind a ServeMux, the event stream, the list and the
// grants unchanged; any invalid one is refused by the client.
func FuzzTopicRoundTrip(f *testing.F) {
	for _, s := range []string{"settings", "settings/ui", "my topic", "café", "a%2F..%2Fb", "..", ".", "a*", `\*`, "?#", "+ +", "\x00", "\u2028"} {
		f.Add(s)
	}
	s := newNamesServer(f)
	c := newClient(f, s.ts.URL, &httpsync.ClientOptions{Token: "all"})
	f.Fuzz(func(t *testing.T, name string) {
		if statesync.CheckTopic(name) != nil {
			if _, err := c.Put(context.Background(), name, json.RawMessage(`1`)); err == nil {
				t.Fatalf("Put(%q) succeeded; want the invalid name refused", name)
			}
			return
		}
		checkName(t, s, c, name)
	})
}
