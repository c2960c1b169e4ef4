package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/poll"
)

// feedStore is a MemoryStore that is a statesync.FeedReporter whose
// status the test sets, and an io.Closer that records its closing.
type feedStore struct {
	*statesync.MemoryStore
	mu     sync.Mutex
	status statesync.FeedStatus
	url    string
	closed bool
}

func (s *feedStore) FeedStatus() statesync.FeedStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *feedStore) setStatus(fs statesync.FeedStatus) {
	s.mu.Lock()
	s.status = fs
	s.mu.Unlock()
}

func (s *feedStore) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// useFeedStore makes --store fake://… open fs.
func useFeedStore(t *testing.T, fs *feedStore) {
	daemon.SetStoreOpener(t, "fake", func(_ context.Context, raw string, _ *slog.Logger) (statesync.Store, io.Closer, error) {
		fs.mu.Lock()
		fs.url = raw
		fs.mu.Unlock()
		return fs, fs, nil
	})
}

// TestStoreFlag: --store and STATESYNC_STORE name the store; with --data
// or --memory it is an error; an unknown scheme is an error listing the
// supported ones, which never repeats the URL (it may hold a password).
func TestStoreFlag(t *testing.T) {
	const pg = "postgres://u:secret@db.example/statesync?sslmode=require"
	cfg, err := daemon.ParseFlags([]string{"--store", "memory:"}, env("STATESYNC_STORE", "bbolt:/x"), io.Discard)
	if err != nil || cfg.Store != "memory:" {
		t.Errorf("--store memory: over STATESYNC_STORE = %q, %v; want memory:", cfg.Store, err)
	}
	cfg, err = daemon.ParseFlags(nil, env("STATESYNC_STORE", "bbolt:/x"), io.Discard)
	if err != nil || cfg.Store != "bbolt:/x" {
		t.Errorf("STATESYNC_STORE=bbolt:/x = %q, %v", cfg.Store, err)
	}
	for _, tt := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--store", "memory:", "--data", "d"}, nil, "not both"},
		{[]string{"--store", "memory:"}, []string{"STATESYNC_DATA", "d"}, "not both"},
		{nil, []string{"STATESYNC_STORE", "memory:", "STATESYNC_DATA", "d"}, "not both"},
		{[]string{"--store", "memory:", "--memory"}, nil, "not both"},
		{[]string{"--store", "mysql://u:secret@h/db"}, nil, `unknown scheme "mysql" (supported: bbolt:DIR, memory:`},
		{[]string{"--store", "host=h password=secret"}, nil, "must be a URL"},
		{[]string{"--store", "postgres://u:secret@h:port/db"}, nil, "must be a URL"},
	} {
		_, err := daemon.ParseFlags(tt.args, env(tt.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFlags(%q) with %q = %v; want an error holding %q", tt.args, tt.env, err, tt.want)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseFlags(%q): error %q shows the password", tt.args, err)
		}
	}
	for in, want := range map[string]string{
		pg: "postgres://u:xxxxx@db.example/statesync?sslmode=require",
		"postgres://db.example/x?password=secret&sslmode=disable": "postgres://db.example/x?password=xxxxx&sslmode=disable",
		"postgres://db.example/x?sslpassword=secret":              "postgres://db.example/x?sslpassword=xxxxx",
		"bbolt:/var/lib/statesync":                                "bbolt:/var/lib/statesync",
		"postgres://pgbouncer.example/x?feed_url=postgres%3A%2F%2Fu%3Asecret%40db.example%2Fx%3Fpassword%3Dsecret": "postgres://pgbouncer.example/x?feed_url=postgres%3A%2F%2Fu%3Axxxxx%40db.example%2Fx%3Fpassword%3Dxxxxx",
		"postgres://u:secret@h:bad/db":                                                   "(a malformed URL)",
		"redis://:secret@cache:6379/0?prefix=app":                                        "redis://:xxxxx@cache:6379/0?prefix=app",
		"rediss://u:secret@cache/0?feed_url=redis%3A%2F%2F%3Asecret%40direct%3A6379%2F0": "rediss://u:xxxxx@cache/0?feed_url=redis%3A%2F%2F%3Axxxxx%40direct%3A6379%2F0",
		"nats://u:secret@h1:4222,u:secret@h2:4222?bucket=b&token=secret":                 "nats://u:xxxxx@h1:4222,u:xxxxx@h2:4222?bucket=b&token=xxxxx",
		"tls://secret@h1:4222,h2?feed_url=nats%3A%2F%2Fsecret%40p%3A1":                   "tls://xxxxx@h1:4222,h2?feed_url=nats%3A%2F%2Fxxxxx%40p%3A1",
		"nats://h:4222":              "nats://h:4222",
		"NATS://h?creds=%2Fa%2Fb":    "NATS://h?creds=%2Fa%2Fb",
		"nats://h?token=secret&a=%z": "nats://h?(a malformed query)",
	} {
		if got := daemon.RedactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestStoreURLs: --store bbolt:DIR and memory: open those stores; a
// store's URL reaches its opener whole, and is logged without its
// password.
func TestStoreURLs(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Join(cfg.Data, "bolt dir")
	cfg.Data = ""
	cfg.Store = "bbolt:" + strings.ReplaceAll(dir, " ", "%20")
	d := startDaemon(t, cfg)
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/b", `1`)
	if _, err := os.Stat(filepath.Join(dir, "statesync.db")); err != nil {
		t.Errorf("--store bbolt:DIR made no %s: %v", filepath.Join(dir, "statesync.db"), err)
	}

	cfg = testConfig(t)
	cfg.Store = "memory:"
	startDaemon(t, cfg).expect(t, http.StatusOK, "PUT", "/v1/topics/m", `1`)

	fs := &feedStore{MemoryStore: statesync.NewMemoryStore(nil), status: statesync.FeedStatus{Connected: true}}
	useFeedStore(t, fs)
	cfg = testConfig(t)
	cfg.Store = "fake://u:secret@db.example/x?sslmode=disable"
	var logs bytes.Buffer
	s, err := daemon.Start(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	fs.mu.Lock()
	url, closed := fs.url, fs.closed
	fs.mu.Unlock()
	if url != cfg.Store || !closed {
		t.Errorf("the opener got %q (closed %v); want %q, closed at shutdown", url, closed, cfg.Store)
	}
	if out := logs.String(); strings.Contains(out, "secret") || !strings.Contains(out, "fake://u:xxxxx@db.example/x?sslmode=disable") {
		t.Errorf("logs %q; want the store URL with its password redacted", out)
	}

	// A store that fails to open: its error, with the redacted URL.
	daemon.SetStoreOpener(t, "broken", func(context.Context, string, *slog.Logger) (statesync.Store, io.Closer, error) {
		return nil, nil, errors.New("connection refused")
	})
	cfg = testConfig(t)
	cfg.Store = "broken://u:secret@h/db"
	if _, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "secret") {
		t.Errorf("Start on a store that fails = %v; want its error, without the password", err)
	}
}

// TestFeedHealthAndMetrics: on a store that reports its change feed,
// /healthz answers 200 while the feed is up and 503 with the reason while
// it is down; /metrics exports the feed's state and the Source's counters.
func TestFeedHealthAndMetrics(t *testing.T) {
	fs := &feedStore{MemoryStore: statesync.NewMemoryStore(nil),
		status: statesync.FeedStatus{Connected: true, Since: time.Now(), Reconnects: 2, Resyncs: 3}}
	useFeedStore(t, fs)
	cfg := testConfig(t)
	cfg.Data = ""
	cfg.Store = "fake://db"
	d := startDaemon(t, cfg)

	resp, b := d.do(t, "GET", "/healthz", "")
	if resp.StatusCode != http.StatusOK || !jsonEqual(b, []byte(`{"status":"ok"}`)) {
		t.Errorf("GET /healthz with the feed up = %d %s; want 200 {\"status\":\"ok\"}", resp.StatusCode, b)
	}
	m := d.metrics(t)
	for name, want := range map[string]float64{
		"statesync_store_feed_connected":               1,
		"statesync_store_feed_reconnects_total":        2,
		"statesync_store_feed_resyncs_total":           3,
		"statesync_source_store_reads_total":           0,
		"statesync_source_resyncs_total":               0,
		"statesync_source_resync_topics_changed_total": 0,
		"statesync_feed_lag_seconds_count":             0,
	} {
		if v, ok := m[name]; !ok || v != want {
			t.Errorf("metric %s = %v (present %v); want %v", name, v, ok, want)
		}
	}

	d.expect(t, http.StatusOK, "PUT", "/v1/topics/a", `1`)
	poll.Until(t, "statesync_feed_lag_seconds counts the write's invalidation", func() bool {
		return d.metrics(t)["statesync_feed_lag_seconds_count"] == 1
	})
	if m := d.metrics(t); m["statesync_feed_lag_seconds_sum"] < 0 || m["statesync_feed_lag_seconds_sum"] > 10 {
		t.Errorf("statesync_feed_lag_seconds_sum = %v; want the lag of one local write", m["statesync_feed_lag_seconds_sum"])
	}

	down := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fs.setStatus(statesync.FeedStatus{Connected: false, Since: down, Reconnects: 2, Resyncs: 3, Err: errors.New("failed to connect to `user=app database=app`: 10.1.2.3:5432")})
	resp, b = d.do(t, "GET", "/healthz", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" ||
		!jsonEqual(b, []byte(`{"status":"feed_down","feed":{"connected":false,"since":"2026-12-01T10:00:00Z","error":"the store's change feed is down (the daemon's log has why)"}}`)) {
		t.Errorf("GET /healthz with the feed down = %d %q %s; want 503 without the store's error", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if v := d.metrics(t)["statesync_store_feed_connected"]; v != 0 {
		t.Errorf("statesync_store_feed_connected = %v with the feed down; want 0", v)
	}
	fs.setStatus(statesync.FeedStatus{Connected: true, Since: time.Now(), Reconnects: 3, Resyncs: 4})
	if resp, _ := d.do(t, "GET", "/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz after the feed came back = %d; want 200", resp.StatusCode)
	}
}

// TestNoFeedMetricsWithoutFeed: a store that does not report a feed (bbolt)
// has no statesync_store_feed_* metrics, and the Source's are there.
func TestNoFeedMetricsWithoutFeed(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	d.expect(t, http.StatusOK, "GET", "/v1/topics/x", "")
	m := d.metrics(t)
	for name := range m {
		if strings.HasPrefix(name, "statesync_store_feed_") {
			t.Errorf("metric %s on a store without a feed", name)
		}
	}
	if v, ok := m["statesync_source_store_reads_total"]; !ok || v < 1 {
		t.Errorf("statesync_source_store_reads_total = %v (present %v) after a GET; want >= 1", v, ok)
	}
}
