package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/redistest"
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
