package httpsync_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/httpsync"
)

const tokenFile = `{
  "tokens": [
    {"name": "admin", "token": "admin-secret", "read": ["*"], "write": ["*"]},
    {"name": "worker", "token": "worker-secret", "read": ["settings", "cache:*"], "write": ["settings"]},
    {"name": "writer", "token": "write-only", "write": ["inbox"]}
  ]
}`

func newAuthServer(t *testing.T) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, []byte(tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := httpsync.LoadTokens(path)
	if err != nil {
		t.Fatalf("LoadTokens: %v", err)
	}
	if toks.Len() != 3 {
		t.Fatalf("Len() = %d; want 3", toks.Len())
	}
	s := newTestServer(t, &httpsync.HandlerOptions{Auth: toks})
	for _, topic := range []string{"settings", "cache:a", "cache:b", "secret", "inbox"} {
		s.put(t, topic, `1`)
	}
	return s
}

// Every endpoint refuses a request without a token or with an unknown one
// (401), and a topic outside the token's grants (403; an event stream
// refuses such a topic alone, in a refused frame); tokens come from the
// Authorization header or the access_token parameter.
func TestAuthEveryEndpoint(t *testing.T) {
	s := newAuthServer(t)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	type req struct{ method, path, body string }
	routes := []req{
		{"GET", "/v1/topics/settings", ""},
		{"HEAD", "/v1/topics/settings", ""},
		{"PUT", "/v1/topics/settings", "2"},
		{"PATCH", "/v1/topics/settings", "{}"},
		{"DELETE", "/v1/topics/settings", ""},
		{"GET", "/v1/topics", ""},
		{"GET", "/v1/events?topic=settings", ""},
	}
	for _, r := range routes {
		for _, hdr := range [][]string{nil, bearer("wrong"), bearer(""), {"Authorization", "Basic YWRtaW46eA=="}, {"Authorization", "admin-secret"}} {
			resp, body := s.do(t, r.method, r.path, r.body, hdr...)
			if resp.StatusCode != 401 {
				t.Errorf("%s %s with %q = %d; want 401", r.method, r.path, hdr, resp.StatusCode)
				continue
			}
			if r.method != "HEAD" && decodeError(t, body).Error.Code != "unauthorized" {
				t.Errorf("%s %s: body %s; want code unauthorized", r.method, r.path, body)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: WWW-Authenticate %q; want Bearer", r.method, r.path, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	cases := []struct {
		tok    string
		r      req
		status int
	}{
		{"worker-secret", req{"GET", "/v1/topics/settings", ""}, 200},
		{"worker-secret", req{"GET", "/v1/topics/cache:zz", ""}, 200},
		{"worker-secret", req{"GET", "/v1/topics/secret", ""}, 403},
		{"worker-secret", req{"GET", "/v1/topics/cache", ""}, 403},
		{"worker-secret", req{"PUT", "/v1/topics/settings", "2"}, 200},
		{"worker-secret", req{"PUT", "/v1/topics/cache:a", "2"}, 403},
		{"worker-secret", req{"PATCH", "/v1/topics/cache:a", "{}"}, 403},
		{"worker-secret", req{"DELETE", "/v1/topics/secret", ""}, 403},
		{"worker-secret", req{"GET", "/v1/events?topic=settings&topic=cache:a", ""}, 200},
		{"worker-secret", req{"GET", "/v1/events?topic=settings&topic=secret", ""}, 200}, // secret refused alone
		{"write-only", req{"PUT", "/v1/topics/inbox", "2"}, 200},
		{"write-only", req{"GET", "/v1/topics/inbox", ""}, 403},
		{"write-only", req{"GET", "/v1/events?topic=inbox", ""}, 200}, // refused frame, then the end
		{"admin-secret", req{"DELETE", "/v1/topics/secret", ""}, 200},
		{"admin-secret", req{"GET", "/v1/topics/bad%0Atopic", ""}, 400}, // topic checked before grants
	}
	for _, tc := range cases {
		var resp *http.Response
		if strings.HasPrefix(tc.r.path, "/v1/events") && tc.status == 200 {
			st := s.openStream(t, tc.r.path, bearer(tc.tok)...)
			resp = st.resp
		} else {
			var body []byte
			resp, body = s.do(t, tc.r.method, tc.r.path, tc.r.body, bearer(tc.tok)...)
			if tc.status == 403 && decodeError(t, body).Error.Code != "forbidden" {
				t.Errorf("%s %s: body %s; want code forbidden", tc.r.method, tc.r.path, body)
			}
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s as %s = %d; want %d", tc.r.method, tc.r.path, tc.tok, resp.StatusCode, tc.status)
		}
	}
	// The access_token parameter, for EventSource.
	st := s.openStream(t, "/v1/events?topic=settings&access_token=worker-secret")
	if f := decodeInv(t, st.nextEvent(t)); f.Topic != "settings" {
		t.Errorf("stream with access_token: frame %+v; want settings", f)
	}
	if resp, _ := s.do(t, "GET", "/v1/topics/settings?access_token=nope", ""); resp.StatusCode != 401 {
		t.Errorf("GET with a bad access_token = %d; want 401", resp.StatusCode)
	}
	if got := s.h.Stats().Errors[401]; got != uint64(len(routes)*5+1) {
		t.Errorf("Stats().Errors[401] = %d; want %d", got, len(routes)*5+1)
	}
}

// Lists and streams never carry topics outside the read grants.
func TestAuthFiltersListAndStream(t *testing.T) {
	s := newAuthServer(t)
	_, body := s.do(t, "GET", "/v1/topics", "", "Authorization", "Bearer worker-secret")
	want := `{"topics":[{"topic":"cache:a","revision":"1","epoch":"ep0"},{"topic":"cache:b","revision":"1","epoch":"ep0"},{"topic":"settings","revision":"1","epoch":"ep0"}]}`
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("GET /v1/topics as worker = %s; want %s", got, want)
	}
	_, body = s.do(t, "GET", "/v1/topics", "", "Authorization", "Bearer write-only")
	if got := strings.TrimSpace(string(body)); got != `{"topics":[]}` {
		t.Errorf("GET /v1/topics as write-only = %s; want none", got)
	}

	st := s.openStream(t, "/v1/events?topic=cache:a", "Authorization", "Bearer worker-secret")
	st.nextEvent(t)
	s.put(t, "secret", `2`)
	s.put(t, "cache:b", `2`)
	s.put(t, "cache:a", `2`)
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "cache:a" {
		t.Errorf("frame = %+v; want only cache:a", inv)
	}
}

// A custom Authenticator's error is a 401 with its message.
func TestAuthenticatorError(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{Auth: authFunc(func(r *http.Request) (httpsync.Grants, error) {
		return nil, errors.New("session expired")
	})})
	resp, body := s.do(t, "GET", "/v1/topics/a", "")
	if resp.StatusCode != 401 || decodeError(t, body).Error.Message != "session expired" {
		t.Errorf("GET = %d %s; want 401 session expired", resp.StatusCode, body)
	}
}

type authFunc func(r *http.Request) (httpsync.Grants, error)

func (f authFunc) Authenticate(r *http.Request) (httpsync.Grants, error) { return f(r) }

func TestParseTokens(t *testing.T) {
	bad := map[string]string{
		"unknown field": `{"tokens":[{"token":"a","reads":["x"]}]}`,
		"empty token":   `{"tokens":[{"token":"","read":["x"]}]}`,
		"repeated":      `{"tokens":[{"token":"a"},{"token":"a"}]}`,
		"space":         `{"tokens":[{"token":"a b"}]}`,
		"inner star":    `{"tokens":[{"token":"a","read":["a*b"]}]}`,
		"double star":   `{"tokens":[{"token":"a","read":["a**"]}]}`,
		"leading star":  `{"tokens":[{"token":"a","read":["*a"]}]}`,
		"bad topic":     `{"tokens":[{"token":"a","write":["bad\ttopic"]}]}`,
		"dot dot":       `{"tokens":[{"token":"a","write":[".."]}]}`,
		"lone \\":       `{"tokens":[{"token":"a","read":["a\\"]}]}`,
		"\\x":           `{"tokens":[{"token":"a","read":["a\\x"]}]}`,
		"escaped end":   `{"tokens":[{"token":"a","read":["a\\**b"]}]}`,
		"bad prefix":    `{"tokens":[{"token":"a","read":["a\n*"]}]}`,
		"empty pattern": `{"tokens":[{"token":"a","write":[""]}]}`,
		"not JSON":      `tokens: a`,
		"trailing":      `{"tokens":[]} {}`,
		"wrong type":    `{"tokens":{"token":"a"}}`,
	}
	for name, file := range bad {
		if _, err := httpsync.ParseTokens(strings.NewReader(file)); err == nil {
			t.Errorf("ParseTokens(%s: %s) = nil error; want an error", name, file)
		}
	}
	if _, err := httpsync.LoadTokens(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadTokens(missing file) = nil error")
	}

	toks, err := httpsync.ParseTokens(strings.NewReader(tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/topics", nil)
	r.Header.Set("Authorization", "bearer  worker-secret ")
	g, err := toks.Authenticate(r)
	if err != nil {
		t.Fatalf("Authenticate(worker) = %v", err)
	}
	if tg, ok := g.(*httpsync.TokenGrants); !ok || tg.Name != "worker" {
		t.Errorf("grants = %#v; want *TokenGrants named worker", g)
	}
	for topic, want := range map[string][2]bool{
		"settings": {true, true}, "settings2": {false, false}, "cache:": {true, false}, "cache:x": {true, false},
		"cache:x:y": {true, false}, "cache": {false, false}, "Settings": {false, false},
	} {
		if got := [2]bool{g.CanRead(topic), g.CanWrite(topic)}; got != want {
			t.Errorf("worker CanRead/CanWrite(%q) = %v; want %v", topic, got, want)
		}
	}
	for hdr, want := range map[string]error{"": httpsync.ErrNoToken, "Bearer nope": httpsync.ErrBadToken, "Basic x": httpsync.ErrNoToken} {
		r := httptest.NewRequest("GET", "/", nil)
		if hdr != "" {
			r.Header.Set("Authorization", hdr)
		}
		if _, err := toks.Authenticate(r); !errors.Is(err, want) {
			t.Errorf("Authenticate(Authorization %q) = %v; want %v", hdr, err, want)
		}
	}
}

// Grant patterns and topic names that hold '*' or '\' (docs/PROTOCOL.md
// "Topic names"): `\*` and `\\` in a pattern stand for the characters,
// an unescaped final '*' for any continuation; names are bytes, so a grant
// of "café" in NFC does not grant it in NFD.
func TestGrantPatterns(t *testing.T) {
	file := `{"tokens":[{"token":"t","read":["a*", "lit\\*", "pre\\**", "back\\\\slash", "caf\u00e9", "my topic/*", "\\\\*"]}]}`
	toks, err := httpsync.ParseTokens(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/topics", nil)
	r.Header.Set("Authorization", "Bearer t")
	g, err := toks.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{
		"a": true, "a*": true, "ab": true, "a*b": true, // a*: a prefix
		"lit*": true, "lit": false, "lit*x": false, "litx": false, // lit\*: the name "lit*"
		"pre*": true, "pre*x": true, "pre": false, "prex": false, // pre\**: names starting with "pre*"
		`back\slash`: true, "backslash": false, // back\\slash: one backslash
		"café": true, "cafe\u0301": false, "CAFÉ": false, // bytes, no normalisation or case folding
		"my topic/": true, "my topic/ui": true, "my topic": false,
		`\`: true, `\x`: true, "x": false, // \\*: names starting with a backslash
	} {
		if got := g.CanRead(topic); got != want {
			t.Errorf("CanRead(%q) = %v; want %v", topic, got, want)
		}
	}
}
