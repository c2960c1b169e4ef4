package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
)

// TestServeHelp: serve -h prints the flags with their STATESYNC_*
// variables and defaults on stderr, and exits 0.
func TestServeHelp(t *testing.T) {
	code, stdout, stderr := cli(t, nil, "", "serve", "-h")
	if code != 0 || stdout != "" {
		t.Errorf("Run(serve -h) = exit %d, stdout %q; want exit 0 and nothing on stdout", code, stdout)
	}
	for _, w := range []string{"usage: statesync serve", "-addr", "127.0.0.1:8765", "STATESYNC_ADDR", "-data", "./statesync-data",
		"-store", "STATESYNC_STORE", "-tokens", "-insecure", "-memory", "-max-body", "-heartbeat", "-shutdown-timeout", "-log-level", "-log-format"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("Run(serve -h) stderr lacks %q:\n%s", w, stderr)
		}
	}
}

// TestServeErrors: flag syntax errors exit 2 with the usage; values the
// daemon refuses exit 1 with the reason, read from flags and from the
// STATESYNC_* variables of Main.Getenv.
func TestServeErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	tests := []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{nil, []string{"serve", "--bogus"}, 2, "usage: statesync serve"},
		{nil, []string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{nil, []string{"serve", "--heartbeat", "soon"}, 2, "usage: statesync serve"},
		{nil, []string{"serve", "--heartbeat", "0s", "--data", dir}, 1, "heartbeat must be positive"},
		{nil, []string{"serve", "--addr", "0.0.0.0:0", "--data", dir}, 1, "refusing to listen on 0.0.0.0:0"},
		{[]string{"STATESYNC_ADDR", "0.0.0.0:0"}, []string{"serve", "--data", dir}, 1, "refusing to listen on 0.0.0.0:0"},
		{[]string{"STATESYNC_MAX_BODY", "lots"}, []string{"serve", "--data", dir}, 1, "STATESYNC_MAX_BODY"},
		{nil, []string{"serve", "--addr", busy.Addr().String(), "--data", dir}, 1, "address already in use"},
		{nil, []string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--tokens", filepath.Join(dir, "none.json")}, 1, "none.json"},
	}
	for _, tt := range tests {
		code, stdout, stderr := cli(t, tt.env, "", tt.args...)
		if code != tt.code || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("Run(%q) with env %q = exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, tt.env, code, stdout, stderr, tt.code, tt.want)
		}
	}
}

// TestServe: serve runs the daemon until its context ends (the signal in
// main), answering the API and the client commands; then it shuts down,
// logs that it stopped and exits 0, leaving its bbolt file in --data.
func TestServe(t *testing.T) {
	addr := freeAddr(t)
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr lockedbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: envOf("STATESYNC_LOG_FORMAT", "json", "STATESYNC_SHUTDOWN_TIMEOUT", "5s")}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"serve", "--addr", addr, "--data", dir}) }()

	server := "http://" + addr
	poll.UntilState(t, "serve answering /healthz", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before its context ended; stderr %q", err, stderr.String())
		default:
		}
		resp, err := http.Get(server + "/healthz")
		if err != nil {
			return false, fmt.Sprintf("%v; stderr %q", err, stderr.String())
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%s; stderr %q", resp.Status, stderr.String())
	})
	http.DefaultClient.CloseIdleConnections()

	env := []string{"STATESYNC_SERVER", server}
	w := oneLine(t, mustCLI(t, env, "", "put", "demo", `{"theme":"dark"}`), false)
	if g := oneLine(t, mustCLI(t, env, "", "get", "demo"), true); g.Revision != w.Revision || !jsonEqual(g.Data, []byte(`{"theme":"dark"}`)) {
		t.Errorf("get demo = %+v; want revision %v and the data put", g, w.Revision)
	}

	cancel()
	select {
	case err := <-done:
		if code := m.exitCode(err); code != 0 {
			t.Errorf("serve after its context ended = %v (exit %d); want exit 0", err, code)
		}
	case <-time.After(waitFor):
		t.Fatalf("serve did not return within %v of its context ending", waitFor)
	}
	if stdout.String() != "" {
		t.Errorf("serve stdout = %q; want nothing (logs go to stderr)", stdout.String())
	}
	// The logs are JSON lines (STATESYNC_LOG_FORMAT), from start to stop.
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("serve log line %q: %v; want JSON", l, err)
		}
		if rec.Msg == "statesync serving" && rec.URL != server+"/" {
			t.Errorf("serving log url = %q; want %q", rec.URL, server+"/")
		}
		msgs = append(msgs, rec.Msg)
	}
	if len(msgs) < 2 || msgs[0] != "statesync serving" || msgs[len(msgs)-1] != "statesync stopped" {
		t.Errorf("serve logged %q; want \"statesync serving\" first and \"statesync stopped\" last", msgs)
	}
	if _, err := os.Stat(filepath.Join(dir, "statesync.db")); err != nil {
		t.Errorf("Stat(statesync.db) = %v; want the bbolt file in --data", err)
	}
	if _, err := http.Get(server + "/healthz"); err == nil {
		t.Errorf("GET /healthz after serve returned succeeded; want the listener closed")
	}
	if err := m.Run(t.Context(), []string{"serve", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Run(serve -h) = %v; want flag.ErrHelp", err)
	}
}
