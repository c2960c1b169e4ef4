//go:build unix

package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/poll"
)

// TestServeProcessSIGHUP: a `statesync serve` process, sent SIGHUP as
// systemd's ExecReload does, loads its token file again without exiting:
// the event stream of a removed token ends, that token gets 401, the
// others work, and a token file broken afterwards keeps them. The binary's
// --version is its version subcommand.
func TestServeProcessSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildStatesync(t)
	out, err := exec.Command(bin, "--version").Output()
	ver, err2 := exec.Command(bin, "version").Output()
	if err != nil || err2 != nil || string(out) != string(ver) || !strings.HasPrefix(string(out), "statesync ") {
		t.Errorf("statesync --version = %q, %v; version = %q, %v; want the same line", out, err, ver, err2)
	}

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(tokens, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"tokens":[{"name":"a","token":"a-secret","read":["*"],"write":["*"]},{"name":"b","token":"b-secret","read":["*"]}]}`)
	p := startProcArgs(t, bin, "--memory", "--tokens", tokens)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/v1/events?topic=x&access_token=b-secret", nil)
	resp, err := p.hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream of b = %v, %v; want 200", resp, err)
	}
	defer resp.Body.Close()
	ended := make(chan string, 1)
	go func() {
		var last string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				last = sc.Text()
			}
		}
		ended <- last
	}()
	status := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, p.url+"/v1/topics/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := p.hc.Do(req)
		if err != nil {
			t.Fatalf("GET /v1/topics/x: %v\n%s", err, p.stderr.String())
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	write(`{"tokens":[{"name":"a","token":"a-secret","read":["*"],"write":["*"]}]}`)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case last := <-ended:
		if !strings.Contains(last, "grants changed") {
			t.Errorf("b's stream ended with %q; want the comment saying the grants changed", last)
		}
	case <-time.After(waitFor):
		t.Fatalf("b's stream still open %v after SIGHUP\n%s", waitFor, p.stderr.String())
	}
	if got := status("b-secret"); got != http.StatusUnauthorized {
		t.Errorf("b after SIGHUP = %d; want 401", got)
	}
	if got := status("a-secret"); got != http.StatusOK {
		t.Errorf("a after SIGHUP = %d; want 200", got)
	}

	write(`{"tokens":[]}`)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll.UntilState(t, "the broken token file logged", func() (bool, string) {
		s := p.stderr.String()
		return strings.Contains(s, "token file not reloaded"), s
	})
	if got := status("a-secret"); got != http.StatusOK {
		t.Errorf("a after a broken token file and SIGHUP = %d; want 200 (the previous tokens stay)", got)
	}
	select {
	case <-p.exited:
		t.Fatalf("statesync serve exited on SIGHUP: %v\n%s", p.err, p.stderr.String())
	default:
	}
}
