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
)

// startWatch starts m.Run(watch args…) and returns its stdout, a function that waits
// until watch printed topic at rev, and one that ends watch and returns
// its exit code.
func startWatch(t *testing.T, env []string, args ...string) (stdout *lockedbuf.Buffer, waitLine func(topic string, rev statesync.Revision), end func() int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	var out, errOut lockedbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: envOf(env...)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, append([]string{"watch"}, args...)) }()
	waitLine = func(topic string, rev statesync.Revision) {
		t.Helper()
		poll.UntilState(t, fmt.Sprintf("watch printing %s at %v", topic, rev), func() (bool, string) {
			for _, l := range watchLines(t, &out) {
				if l.Topic == topic && l.Revision == rev {
					return true, ""
				}
			}
			select {
			case err := <-done:
				t.Fatalf("watch returned %v early; stdout %q, stderr %q", err, out.String(), errOut.String())
			default:
			}
			return false, fmt.Sprintf("stdout %q, stderr %q", out.String(), errOut.String())
		})
	}
	end = func() int {
		cancel()
		select {
		case err := <-done:
			if s := errOut.String(); s != "" {
				t.Errorf("watch stderr = %q; want nothing", s)
			}
			return m.exitCode(err)
		case <-time.After(waitFor):
			t.Fatalf("watch did not return within %v of its context ending", waitFor)
		}
		return -1
	}
	t.Cleanup(cancel)
	return &out, waitLine, end
}

// TestWatchPrefix: watch --prefix prints the current snapshot of every
// topic under the prefix, then every write to one, a topic created after
// watch started included (its first write), alongside the named topics;
// topics outside the prefix are never printed.
func TestWatchPrefix(t *testing.T) {
	server := startTestDaemon(t, nil)
	env := []string{"STATESYNC_SERVER", server}
	old := httpPut(t, server, "cart:1", `{"items":1}`)
	httpPut(t, server, "other", `1`)
	stdout, waitLine, end := startWatch(t, env, "--prefix", "cart:", "settings")
	waitLine("cart:1", old.Revision)
	waitLine("settings", 0)
	httpPut(t, server, "other", `2`)
	first := httpPut(t, server, "cart:2", `{"items":2}`)
	waitLine("cart:2", first.Revision)
	later := httpPut(t, server, "cart:1", `{"items":3}`)
	waitLine("cart:1", later.Revision)
	set := httpPut(t, server, "settings", `{}`)
	waitLine("settings", set.Revision)
	if code := end(); code != 0 {
		t.Errorf("watch after cancel: exit %d; want 0", code)
	}
	for _, l := range watchLines(t, stdout) {
		if l.Topic == "other" {
			t.Errorf("watch printed %+v, outside the prefix", l)
		}
		if l.Topic == "cart:2" && string(l.Data) != `{"items":2}` {
			t.Errorf("watch printed %+v; want cart:2's data", l)
		}
	}
}

// TestWatchPrefixGrants: with a token that may read "cart:alice*", watch
// --prefix cart: prints alice's carts only, and a refused or malformed
// request exits 1 with the server's reason.
func TestWatchPrefixGrants(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	err := os.WriteFile(tokens, []byte(`{"tokens":[
		{"name":"admin","token":"a-secret","read":["*"],"write":["*"]},
		{"name":"alice","token":"alice-secret","read":["cart:alice*"]}]}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	server := startTestDaemon(t, func(c *daemon.Config) { c.Tokens = tokens })
	admin := []string{"STATESYNC_SERVER", server, "STATESYNC_TOKEN", "a-secret"}
	mustCLI(t, admin, "", "put", "cart:bob:1", "1")
	stdout, waitLine, end := startWatch(t, []string{"STATESYNC_SERVER", server, "STATESYNC_TOKEN", "alice-secret"}, "--prefix", "cart:")
	mustCLI(t, admin, "", "put", "cart:bob:2", "2")
	mustCLI(t, admin, "", "put", "cart:alice:1", `"mine"`)
	waitLine("cart:alice:1", 1)
	if code := end(); code != 0 {
		t.Errorf("watch after cancel: exit %d; want 0", code)
	}
	for _, l := range watchLines(t, stdout) {
		if !strings.HasPrefix(l.Topic, "cart:alice") {
			t.Errorf("watch printed %+v, outside alice's grants", l)
		}
	}
	code, _, stderr := cli(t, []string{"STATESYNC_SERVER", server}, "", "watch", "--prefix", "cart:")
	if code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("watch --prefix without a token: exit %d, stderr %q; want exit 1 with 401", code, stderr)
	}
}

// TestWatchPrefixInvalid: a prefix that no valid topic name starts with
// exits 1 with a message naming it, before any request.
func TestWatchPrefixInvalid(t *testing.T) {
	for _, prefix := range []string{"bad\n", "a\x00", strings.Repeat("a", 257)} {
		code, stdout, stderr := cli(t, []string{"STATESYNC_SERVER", "http://127.0.0.1:1"}, "", "watch", "--prefix", prefix)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "prefix") || strings.Contains(stderr, "connection refused") {
			t.Errorf("watch --prefix %.20q = exit %d, stdout %q, stderr %q; want exit 1 and an error naming the prefix", prefix, code, stdout, stderr)
		}
	}
}
