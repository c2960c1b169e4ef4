package redisstore

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/internal/storetest"
)

func TestConnectTimeout(t *testing.T) {
	for probe, want := range map[time.Duration]time.Duration{
		time.Second:      10 * time.Second,
		5 * time.Second:  10 * time.Second,
		6 * time.Second:  12 * time.Second,
		30 * time.Second: 60 * time.Second,
	} {
		if got := (&Store{probe: probe}).connectTimeout(); got != want {
			t.Errorf("connectTimeout() with probe %v = %v; want %v", probe, got, want)
		}
	}
}

// Open's settings of the go-redis clients: no retries, a feed of one
// connection with its name, a read timeout that outlasts WAIT; and the
// boundaries of the options.
func TestOpenClientOptions(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	open := func(t *testing.T, url string, o *Options) *Store {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := Open(ctx, url, o)
		if err != nil {
			t.Fatalf("Open(%+v): %v", o, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	s := open(t, u, nil)
	ro, fo := s.rdb.Options(), s.feedc.Options()
	// go-redis turns MaxRetries -1 into 0: none (its default is 3).
	if ro.MaxRetries != 0 || fo.MaxRetries != 0 || !ro.ContextTimeoutEnabled || !fo.ContextTimeoutEnabled {
		t.Errorf("MaxRetries %d, %d, ContextTimeoutEnabled %v, %v; want 0 (no retry) and true", ro.MaxRetries, fo.MaxRetries, ro.ContextTimeoutEnabled, fo.ContextTimeoutEnabled)
	}
	if fo.PoolSize != 1 || fo.ClientName != FeedClientName || fo.PipelinePoolSize >= 0 || ro.PipelinePoolSize < 0 {
		t.Errorf("feed client PoolSize %d, ClientName %q, PipelinePoolSize %d (store's %d); want 1, %q, none (the store's default)",
			fo.PoolSize, fo.ClientName, fo.PipelinePoolSize, ro.PipelinePoolSize, FeedClientName)
	}
	if s.probe != DefaultProbeInterval || s.maxLen != DefaultStreamMaxLen || s.wait != 0 || s.waitTimeout != DefaultWaitTimeout {
		t.Errorf("defaults: probe %v, maxLen %d, wait %d, waitTimeout %v", s.probe, s.maxLen, s.wait, s.waitTimeout)
	}
	// WAIT must be able to take its whole timeout.
	for _, q := range []string{"&wait=1&wait_timeout=2s&read_timeout=2s", "&wait=1&wait_timeout=10s"} {
		if s, err := Open(context.Background(), u+q, nil); err == nil {
			_ = s.Close()
			t.Errorf("Open with %q succeeded; want an error: the read timeout cuts WAIT short", q)
		}
	}
	for _, q := range []string{"&wait=1&wait_timeout=2s&read_timeout=2001ms", "&wait=1&wait_timeout=5s&read_timeout=-1", "&wait_timeout=9s"} {
		open(t, u+q, nil)
	}
	// The boundaries are accepted.
	s = open(t, u, &Options{ProbeInterval: minProbeInterval, StreamMaxLen: minStreamMaxLen, WaitReplicas: maxWaitReplicas, WaitTimeout: time.Millisecond})
	if s.probe != minProbeInterval || s.maxLen != minStreamMaxLen || s.wait != maxWaitReplicas || s.waitTimeout != time.Millisecond {
		t.Errorf("boundary options: probe %v, maxLen %d, wait %d, waitTimeout %v", s.probe, s.maxLen, s.wait, s.waitTimeout)
	}
	s = open(t, u+"&feed_probe=1s&stream_maxlen=500&wait=2&wait_timeout=20ms", nil)
	if s.probe != time.Second || s.maxLen != 500 || s.wait != 2 || s.waitTimeout != 20*time.Millisecond {
		t.Errorf("URL options: probe %v, maxLen %d, wait %d, waitTimeout %v", s.probe, s.maxLen, s.wait, s.waitTimeout)
	}
}

// A feed connection that died while idle, between two reads, is redialed by
// the client's pool without an error; the feed counts the new connection,
// reports the loss (a reconnect in FeedStatus, a Resync to the watchers,
// "redialed" in the log) and goes on reading. Here the redial is
// simulated by counting one more connection.
func TestFeedRedialed(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	s, err := Open(t.Context(), u+"&feed_probe=300ms", &Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.feedConns.Load() == 0 {
		t.Fatal("the feed's first connection was not counted")
	}
	w := storetest.Watch(t, s)
	topic := storetest.NewTopic("redial")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})) // the feed reads
	s.feedConns.Add(1)
	poll.Until(t, "a Resync after the redial", func() bool { return w.Resyncs() >= 1 })
	poll.Until(t, "the reconnect counted", func() bool { st := s.FeedStatus(); return st.Connected && st.Reconnects >= 1 })
	mu.Lock()
	got := logs.String()
	mu.Unlock()
	if !strings.Contains(got, "redialed") {
		t.Errorf("the log does not name the redial:\n%s", got)
	}
	storetest.WaitSeen(t, w, storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)}))
}

// lockedWriter serialises writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
