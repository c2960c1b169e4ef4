package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/poll"
)

// TestParseFlagsConflicts: flags that exclude each other are usage errors
// (FlagError: exit 2 in the CLI), printed with the reason and without the
// usage text, whether they come from flags or variables.
func TestParseFlagsConflicts(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--memory", "--data", "d"}, nil, "--memory or --data, not both"},
		{[]string{"--memory"}, []string{"STATESYNC_DATA", "d"}, "--memory or --data, not both"},
		{nil, []string{"STATESYNC_MEMORY", "true", "STATESYNC_DATA", "d"}, "--memory or --data, not both"},
		{[]string{"--store", "memory:", "--data", "d"}, nil, "--store or --data, not both"},
		{[]string{"--store", "memory:", "--memory"}, nil, "--store or --memory, not both"},
		{[]string{"--metrics-token", "a", "--metrics-token-file", "f"}, nil, "--metrics-token or --metrics-token-file"},
		{[]string{"--tls-cert", "c.pem", "--memory"}, nil, "--tls-cert and --tls-key together"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		_, err := daemon.ParseFlags(tt.args, env(tt.env...), &out)
		var fe daemon.FlagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFlags(%q) with env %q = %v; want a FlagError containing %q", tt.args, tt.env, err, tt.want)
			continue
		}
		if got := out.String(); !strings.Contains(got, tt.want) || strings.Contains(got, "usage:") {
			t.Errorf("ParseFlags(%q) printed %q; want the reason without the usage", tt.args, got)
		}
	}
	// The default data directory does not conflict with --memory.
	if _, err := daemon.ParseFlags([]string{"--memory"}, env(), io.Discard); err != nil {
		t.Errorf("ParseFlags(--memory) = %v; want nil", err)
	}
	cfg, err := daemon.ParseFlags([]string{"--memory", "--access-log", "-", "--metrics-token-file", "m"},
		env("STATESYNC_METRICS_TOKEN_FILE", "x", "STATESYNC_ACCESS_LOG", "a.log"), io.Discard)
	if err != nil || cfg.AccessLog != "-" || cfg.MetricsTokenFile != "m" {
		t.Errorf("ParseFlags(--access-log -, --metrics-token-file m) = %+v, %v", cfg, err)
	}
	cfg, err = daemon.ParseFlags([]string{"--memory"}, env("STATESYNC_METRICS_TOKEN", "tok", "STATESYNC_ACCESS_LOG", "a.log"), io.Discard)
	if err != nil || cfg.AccessLog != "a.log" || cfg.MetricsToken != "tok" {
		t.Errorf("STATESYNC_METRICS_TOKEN, STATESYNC_ACCESS_LOG: ParseFlags = %+v, %v", cfg, err)
	}
}

// flakyStore is a MemoryStore whose reads fail while down is set, with an
// error that names a secret, and that counts its reads.
type flakyStore struct {
	*statesync.MemoryStore
	down  atomic.Bool
	reads atomic.Int64
}

func (s *flakyStore) Get(ctx context.Context, topic string) (statesync.Record, error) {
	s.reads.Add(1)
	if s.down.Load() {
		return statesync.Record{}, errors.New("dial tcp db.internal:5432: password authentication failed for user admin")
	}
	return s.MemoryStore.Get(ctx, topic)
}

func (s *flakyStore) Close() error { return nil }

// TestLiveReady: /livez answers 200 whatever the store does; /readyz
// answers 503 store_unreachable while the store fails reads, without its
// error, and reads the store at most once a second however many probes
// come; /healthz stays as it was (the feed only). All three need no token
// and pass the Host check.
func TestLiveReady(t *testing.T) {
	fs := &flakyStore{MemoryStore: statesync.NewMemoryStore(nil)}
	daemon.SetStoreOpener(t, "flaky", func(context.Context, string, *slog.Logger) (statesync.Store, io.Closer, error) {
		return fs, fs, nil
	})
	cfg := testConfig(t)
	cfg.Data, cfg.Store = "", "flaky://db"
	cfg.Tokens = tokenFile(t, t.TempDir())
	d := startDaemon(t, cfg)
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		resp, b := d.do(t, "GET", path, "", "Host", "rebound.example")
		if resp.StatusCode != http.StatusOK || !jsonEqual(b, []byte(`{"status":"ok"}`)) {
			t.Errorf("GET %s = %d %s; want 200 {\"status\":\"ok\"}", path, resp.StatusCode, b)
		}
	}
	fs.down.Store(true)
	poll.UntilState(t, "/readyz sees the store down", func() (bool, string) {
		resp, b := d.do(t, "GET", "/readyz", "")
		return resp.StatusCode == http.StatusServiceUnavailable, string(b)
	})
	resp, b := d.do(t, "GET", "/readyz", "")
	if !jsonEqual(b, []byte(`{"status":"store_unreachable"}`)) || bytes.Contains(b, []byte("password")) {
		t.Errorf("GET /readyz with the store down = %d %s; want 503 {\"status\":\"store_unreachable\"} and no store error", resp.StatusCode, b)
	}
	before := fs.reads.Load()
	start := time.Now()
	for range 50 {
		d.do(t, "GET", "/readyz", "")
	}
	if n, most := fs.reads.Load()-before, int64(time.Since(start)/time.Second)+1; n > most {
		t.Errorf("50 probes of /readyz in %v read the store %d times; want at most %d (once a second)", time.Since(start), n, most)
	}
	for _, path := range []string{"/livez", "/healthz"} {
		if resp, b := d.do(t, "GET", path, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the store down = %d %s; want 200 (it does not read the store)", path, resp.StatusCode, b)
		}
	}
	// Without tokens, the health endpoints still answer any Host name.
	open := startDaemon(t, testConfig(t))
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		if resp, b := open.do(t, "GET", path, "", "Host", "rebound.example"); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with Host rebound.example without tokens = %d %s; want 200", path, resp.StatusCode, b)
		}
	}
	open.expect(t, http.StatusForbidden, "GET", "/metrics", "", "Host", "rebound.example")

	fs.down.Store(false)
	poll.Until(t, "/readyz sees the store back", func() bool {
		resp, _ := d.do(t, "GET", "/readyz", "")
		return resp.StatusCode == http.StatusOK
	})
}

// TestMetricsToken: with a metrics token, /metrics answers 401 to a
// request without it or with another one (API tokens included) and 200
// with it; the token may come from a file.
func TestMetricsToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "metrics-token")
	if err := os.WriteFile(file, []byte("m3trics-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, set := range map[string]func(*daemon.Config){
		"flag": func(c *daemon.Config) { c.MetricsToken = "m3trics-secret" },
		"file": func(c *daemon.Config) { c.MetricsTokenFile = file },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Tokens = tokenFile(t, t.TempDir())
			set(&cfg)
			d := startDaemon(t, cfg)
			for _, hdr := range [][]string{nil, {"Authorization", "Bearer admin-secret"}, {"Authorization", "Bearer m3trics-secre"},
				{"Authorization", "Bearer m3trics-secret2"}, {"Authorization", "Basic m3trics-secret"}, {"Authorization", "Bearer"}} {
				resp, b := d.do(t, "GET", "/metrics", "", hdr...)
				if resp.StatusCode != http.StatusUnauthorized || bytes.Contains(b, []byte("statesync_")) || resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("GET /metrics with %q = %d %.60s; want 401 with WWW-Authenticate and no metrics", hdr, resp.StatusCode, b)
				}
			}
			b := d.expect(t, http.StatusOK, "GET", "/metrics", "", "Authorization", "Bearer m3trics-secret")
			if !bytes.Contains(b, []byte("statesync_streams_open")) {
				t.Errorf("GET /metrics with the token: no statesync_streams_open in %.200s", b)
			}
		})
	}
	cfg := testConfig(t)
	for _, content := range []string{"", "\n\n", "  \n"} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.MetricsTokenFile = file
		if s, err := daemon.Start(cfg, nil); err == nil {
			_ = s.Shutdown(t.Context())
			t.Errorf("Start with metrics token file %q: no error", content)
		}
	}
	cfg.MetricsTokenFile = ""
	cfg.MetricsToken = "two words"
	if s, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "white space") {
		if s != nil {
			_ = s.Shutdown(t.Context())
		}
		t.Errorf("Start with a metrics token holding a space = %v; want an error", err)
	}
	cfg.MetricsToken = ""
	cfg.MetricsTokenFile = filepath.Join(dir, "missing")
	if _, err := daemon.Start(cfg, nil); err == nil {
		t.Errorf("Start with a missing metrics token file: no error")
	}
}

// accessRecord is a line of the access log in JSON.
type accessRecord struct {
	Msg      string `json:"msg"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Status   int    `json:"status"`
	Bytes    *int64 `json:"bytes"`
	Duration int64  `json:"duration"`
	Remote   string `json:"remote"`
	Token    string `json:"token"`
}

// readAccessLog returns the records of the access log at path; every line
// must be one JSON record.
func readAccessLog(t testing.TB, path string) []accessRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []accessRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r accessRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Msg != "access" {
			t.Fatalf("access log line %q: %v; want a JSON access record", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestAccessLog: --access-log writes one line per request with the
// token's name, never its secret nor the query (where an event stream's
// token may be); an event stream's line comes when it ends; a hostile
// path or header cannot forge a line.
func TestAccessLog(t *testing.T) {
	cfg := testConfig(t)
	cfg.Tokens = tokenFile(t, t.TempDir())
	cfg.LogFormat = "json"
	cfg.AccessLog = filepath.Join(t.TempDir(), "access.log")
	d := startDaemon(t, cfg)
	bearer := []string{"Authorization", "Bearer writer-secret"}
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/pub:a", `{"v":1}`, bearer...)
	d.expect(t, http.StatusUnauthorized, "GET", "/v1/topics/pub:a", "", "Authorization", "Bearer wrong-secret")
	// An encoded line break in the path.
	d.do(t, "GET", "/v1/topics/x%0A%7B%22msg%22:%22access%22%7D", "")
	s := d.openStream(t, "/v1/events?topic=pub:a&access_token=reader-secret")
	s.next(t)
	recs := readAccessLog(t, cfg.AccessLog)
	if len(recs) != 3 {
		t.Fatalf("access log before the stream ends: %d lines %+v; want 3", len(recs), recs)
	}
	put, unauth, hostile := recs[0], recs[1], recs[2]
	if put.Method != "PUT" || put.Path != "/v1/topics/pub:a" || put.Status != 200 || put.Token != "writer" || put.Bytes == nil || *put.Bytes == 0 ||
		!strings.HasPrefix(put.Remote, "127.0.0.1:") {
		t.Errorf("PUT line = %+v; want PUT /v1/topics/pub:a 200 by writer with its bytes and remote", put)
	}
	if unauth.Status != http.StatusUnauthorized || unauth.Token != "" {
		t.Errorf("401 line = %+v; want status 401 and no token", unauth)
	}
	if hostile.Path != "/v1/topics/x\n{\"msg\":\"access\"}" || hostile.Status != http.StatusUnauthorized {
		t.Errorf("hostile line = %+v; want the decoded path, kept inside its record", hostile)
	}

	s.close()
	poll.Until(t, "the stream's line is logged when it ends", func() bool {
		return len(readAccessLog(t, cfg.AccessLog)) == 4
	})
	st := readAccessLog(t, cfg.AccessLog)[3]
	if st.Path != "/v1/events" || st.Status != 200 || st.Token != "reader" {
		t.Errorf("stream line = %+v; want GET /v1/events 200 by reader", st)
	}
	b, _ := os.ReadFile(cfg.AccessLog)
	for _, secret := range []string{"secret", "access_token", "topic="} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the access log holds %q:\n%s", secret, b)
		}
	}
}

// writeTokens writes a token file.
func writeTokens(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadTokens: ReloadTokens (SIGHUP) applies a new token file to new
// requests at once; an open stream whose token is still there with grants
// covering its topics stays open and keeps receiving, one whose token was
// removed or whose grants no longer cover a topic is closed, and the
// client reconnecting is refused. A file that does not parse or holds no
// token keeps the previous tokens; at start it is an error.
func TestReloadTokens(t *testing.T) {
	cfg := testConfig(t)
	cfg.Tokens = filepath.Join(t.TempDir(), "tokens.json")
	writeTokens(t, cfg.Tokens, `{"tokens":[]}`)
	if _, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "no tokens") {
		t.Errorf("Start with a token file without tokens = %v; want a \"no tokens\" error", err)
	}
	writeTokens(t, cfg.Tokens, `{"tokens":[
		{"name":"admin","token":"admin-secret","read":["*"],"write":["*"]},
		{"name":"reader","token":"reader-secret","read":["pub:*"]},
		{"name":"gone","token":"gone-secret","read":["pub:*"]}]}`)
	d := startDaemon(t, cfg)
	admin := []string{"Authorization", "Bearer admin-secret"}

	kept := d.openStream(t, "/v1/events?topic=pub:a&access_token=reader-secret")
	narrowed := d.openStream(t, "/v1/events?topic=pub:a&topic=pub:b&access_token=reader-secret")
	removed := d.openStream(t, "/v1/events?topic=pub:a&access_token=gone-secret")
	for _, s := range []*sseStream{kept, narrowed, narrowed, removed} {
		s.next(t)
	}

	// reader loses pub:b; gone is removed; new is added.
	writeTokens(t, cfg.Tokens, `{"tokens":[
		{"name":"admin","token":"admin-secret","read":["*"],"write":["*"]},
		{"name":"reader","token":"reader-secret","read":["pub:a"]},
		{"name":"new","token":"new-secret","read":["pub:*"]}]}`)
	if err := d.s.ReloadTokens(); err != nil {
		t.Fatalf("ReloadTokens = %v", err)
	}
	for _, s := range []*sseStream{removed, narrowed} {
		s.ended(t, waitFor) // fails the test if the stream stays open
	}
	w := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/pub:a", `1`, admin...))
	if inv := kept.next(t).inv(t); inv.Revision != w.Revision {
		t.Errorf("kept stream after the reload got %+v; want pub:a at %v", inv, w.Revision)
	}
	if m := d.metrics(t); m["statesync_streams_revoked_total"] != 2 || m["statesync_tokens_last_reload_successful"] != 1 {
		t.Errorf("metrics after the reload: revoked %v, last reload %v; want 2 and 1",
			m["statesync_streams_revoked_total"], m["statesync_tokens_last_reload_successful"])
	}
	d.expect(t, http.StatusUnauthorized, "GET", "/v1/topics/pub:a", "", "Authorization", "Bearer gone-secret")
	d.expect(t, http.StatusForbidden, "GET", "/v1/topics/pub:b", "", "Authorization", "Bearer reader-secret")
	d.expect(t, http.StatusOK, "GET", "/v1/topics/pub:b", "", "Authorization", "Bearer new-secret")
	// The narrowed stream's client reconnects: pub:b is refused, pub:a followed.
	again := d.openStream(t, "/v1/events?topic=pub:a&topic=pub:b&access_token=reader-secret")
	if ev := again.next(t); ev.Type != "refused" || !strings.Contains(ev.Data, `"topic":"pub:b"`) {
		t.Errorf("reconnected stream's first frame = %+v; want pub:b refused", ev)
	}

	// Broken files keep the tokens in service.
	for _, broken := range []string{`{"tokens":[]}`, `{"tokens":[{"token":"x","read":["a**"]}]}`, `not json`, ``} {
		writeTokens(t, cfg.Tokens, broken)
		if err := d.s.ReloadTokens(); err == nil {
			t.Errorf("ReloadTokens of %q: no error", broken)
		}
		d.expect(t, http.StatusOK, "GET", "/v1/topics/pub:a", "", "Authorization", "Bearer new-secret")
	}
	if m := d.metrics(t); m["statesync_tokens_last_reload_successful"] != 0 {
		t.Errorf("statesync_tokens_last_reload_successful after a broken file = %v; want 0", m["statesync_tokens_last_reload_successful"])
	}
	w = decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/pub:a", `2`, admin...))
	if inv := kept.next(t).inv(t); inv.Revision != w.Revision {
		t.Errorf("kept stream after failed reloads got %+v; want pub:a at %v", inv, w.Revision)
	}
}
