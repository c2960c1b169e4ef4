package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/persist"
)

// runWatchCache runs `statesync watch --cache dir args...` against server
// until ctx ends, and returns its output buffers and result channel.
func runWatchCache(ctx context.Context, server, dir string, args ...string) (*lockedbuf.Buffer, *lockedbuf.Buffer, <-chan error) {
	var stdout, stderr lockedbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: envOf("STATESYNC_SERVER", server)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, append([]string{"watch", "--cache", dir}, args...)) }()
	return &stdout, &stderr, done
}

// waitWatchLine waits up to within for a printed line of topic at rev
// and epoch, and returns it.
func waitWatchLine(t *testing.T, out *lockedbuf.Buffer, done <-chan error, topic string, rev statesync.Revision, epoch string, within time.Duration) cliLine {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range watchLines(t, out) {
			if l.Topic == topic && l.Revision == rev && l.Epoch == epoch {
				return l
			}
		}
		select {
		case err := <-done:
			t.Fatalf("watch returned %v early; stdout %q", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch printed no line for %s at %v within %v; stdout %q", topic, rev, within, out.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func stopWatch(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch after cancel = %v; want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("watch did not return within %v of its context ending", waitFor)
	}
}

// TestWatchCache: watch --cache keeps the last snapshot of each topic;
// with the daemon stopped, a new watch prints it within a second, and it
// carries on when the daemon comes back (B-BOOT-01, B-BOOT-07).
func TestWatchCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	server := startTestDaemon(t, nil)
	w := httpPut(t, server, "demo", `{"theme":"dark","lang":"Українська 😀"}`)

	// 1. With the daemon up: watch prints and caches the snapshot.
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	out, _, done := runWatchCache(ctx, server, dir, "demo")
	waitWatchLine(t, out, done, "demo", w.Revision, w.Epoch, waitFor)
	stopWatch(t, cancel, done)
	if _, err := os.Stat(filepath.Join(dir, "demo.rec")); err != nil {
		t.Fatalf("cache file: %v", err)
	}

	// 2. With no daemon: the cached snapshot is printed at once.
	addr := freeAddr(t)
	ctx, cancel = context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()
	start := time.Now()
	out, _, done = runWatchCache(ctx, "http://"+addr, dir, "demo")
	l := waitWatchLine(t, out, done, "demo", w.Revision, w.Epoch, time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("cached snapshot printed after %v; want within 1s", d)
	}
	if !jsonEqual(l.Data, []byte(`{"theme":"dark","lang":"Українська 😀"}`)) || l.Epoch != w.Epoch {
		t.Errorf("cached line = %+v; want the snapshot written (data, epoch %q)", l, w.Epoch)
	}

	// 3. The daemon comes back (a new one: another epoch): watch follows it.
	server2 := startTestDaemon(t, func(c *daemon.Config) { c.Addr = addr })
	w2 := httpPut(t, server2, "demo", `{"theme":"light"}`)
	l2 := waitWatchLine(t, out, done, "demo", w2.Revision, w2.Epoch, waitFor)
	if !jsonEqual(l2.Data, []byte(`{"theme":"light"}`)) {
		t.Errorf("line after the daemon came back = %+v; want the new data", l2)
	}
	stopWatch(t, cancel, done)

	// The cache now holds the new snapshot.
	store, _ := persist.NewFileStorage(dir, "demo", nil)
	snap, _, err := persist.Load(context.Background(), store, nil, &persist.LoadOptions{Topic: "demo", VerifyHash: true})
	if w2.Epoch == w.Epoch {
		t.Fatalf("both daemons have epoch %q; the test needs the second to differ", w.Epoch)
	}
	if err != nil || snap.Revision != w2.Revision || snap.Epoch != w2.Epoch || !jsonEqual(snap.Data, []byte(`{"theme":"light"}`)) {
		t.Errorf("cache after the second run = %s at %v, %v; want the new snapshot at %v", snap.Data, snap.Revision, err, w2.Revision)
	}
}

// A corrupt cache is ignored (reported with -v), never printed.
func TestWatchCacheCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo.rec"), []byte("statesync-persist 1 00000000\n{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	out, stderr, done := runWatchCache(ctx, "http://"+freeAddr(t), dir, "-v", "demo")
	poll.UntilState(t, "watch reporting the corrupt cache", func() (bool, string) {
		return strings.Contains(stderr.String(), "corrupt"), fmt.Sprintf("stderr %q", stderr.String())
	})
	stopWatch(t, cancel, done)
	if s := out.String(); s != "" {
		t.Errorf("watch printed %q from a corrupt cache; want nothing", s)
	}
}
