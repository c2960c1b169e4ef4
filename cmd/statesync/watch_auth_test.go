package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/lockedbuf"
)

// TestWatchRefused: a missing or refused credential is not transient, so
// watch exits 1 at once with the server's reason instead of retrying
// forever, and logs nothing else without -v (issue 9, item 12).
func TestWatchRefused(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	err := os.WriteFile(tokens, []byte(`{"tokens":[{"name":"reader","token":"r-secret","read":["open"]}]}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	server := startTestDaemon(t, func(c *daemon.Config) { c.Tokens = tokens })
	tests := []struct {
		name  string
		token string
		args  []string
		want  string // in stderr
	}{
		{"no token", "", []string{"watch", "open"}, "401"},
		{"unknown token", "wrong", []string{"watch", "open"}, "401"},
		{"topic outside the grants", "r-secret", []string{"watch", "closed"}, "403"},
		{"one of two topics outside the grants", "r-secret", []string{"watch", "open", "closed"}, "403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{"STATESYNC_SERVER", server}
			if tt.token != "" {
				env = append(env, "STATESYNC_TOKEN", tt.token)
			}
			start := time.Now()
			code, stdout, stderr := cli(t, env, "", tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("Run(%q) = exit %d, stdout %q, stderr %q; want exit 1 with %s", tt.args, code, stdout, stderr, tt.want)
			}
			t.Logf("stderr: %s", stderr)
			// One line: the reason, no retry logs.
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "statesync: watch ") {
				t.Errorf("Run(%q) stderr = %q; want one line, the reason", tt.args, stderr)
			}
			if strings.Contains(stderr, "statesync: statesync:") || strings.Contains(stderr, "httpsync: httpsync:") {
				t.Errorf("Run(%q) stderr = %q; a prefix is doubled", tt.args, stderr)
			}
			if d := time.Since(start); d > waitFor {
				t.Errorf("Run(%q) took %v", tt.args, d)
			}
		})
	}
}

// TestWatchInterruptedIsSuccess: a watch whose context ends exits 0.
func TestWatchInterruptedIsSuccess(t *testing.T) {
	server := startTestDaemon(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var stdout, stderr lockedbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: envOf("STATESYNC_SERVER", server)}
	if err := m.Run(ctx, []string{"watch", "a"}); err != nil {
		t.Errorf("watch until its context ends = %v; want nil", err)
	}
}

// TestErrorPrefixOnce: an error of the root package, which starts with
// "statesync: " already, is printed with the prefix once (issue 9, item 13).
func TestErrorPrefixOnce(t *testing.T) {
	code, _, stderr := cli(t, []string{"STATESYNC_SERVER", "http://127.0.0.1:1"}, "", "get", "bad\ttopic")
	if code != 1 || !strings.HasPrefix(stderr, "statesync: invalid topic") {
		t.Errorf("get of a bad topic: exit %d, stderr %q; want exit 1 and %q first", code, stderr, "statesync: invalid topic")
	}
}
