package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/poll"
)

// get makes a GET of url with the Host header host (if not empty) and
// returns the status and the body.
func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestPprof: with --pprof, net/http/pprof answers on its own loopback
// listener, and not on the main one; a request naming another host (DNS
// rebinding) is refused; shutdown closes the listener.
func TestPprof(t *testing.T) {
	cfg := testConfig(t)
	cfg.Pprof = "127.0.0.1:0"
	d := startDaemon(t, cfg)
	addr := d.s.PprofAddr()
	if addr == nil {
		t.Fatal("PprofAddr() = nil with --pprof")
	}
	pp := "http://" + addr.String()
	if addr.String() == strings.TrimPrefix(d.url, "http://") {
		t.Fatalf("pprof on the main address %s; want a listener of its own", addr)
	}

	if status, body := get(t, pp+"/debug/pprof/", ""); status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ on --pprof = %d %.200q; want 200 listing the profiles", status, body)
	}
	if status, body := get(t, pp+"/debug/pprof/goroutine?debug=1", ""); status != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("GET /debug/pprof/goroutine?debug=1 = %d %.200q; want 200 and the profile", status, body)
	}
	if status, body := get(t, pp+"/debug/pprof/", "evil.example"); status != http.StatusForbidden || strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ with Host evil.example = %d %.200q; want 403", status, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		if status, body := get(t, d.url+path, ""); status == http.StatusOK || strings.Contains(body, "goroutine") {
			t.Errorf("GET %s on the main listener = %d %.200q; want no profile there", path, status, body)
		}
	}

	// A CPU profile of a day in progress does not hold up the shutdown.
	long := make(chan error, 1)
	go func() {
		resp, err := http.Get(pp + "/debug/pprof/profile?seconds=86400")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		long <- err
	}()
	poll.UntilState(t, "a CPU profile in progress", func() (bool, string) {
		select {
		case err := <-long:
			t.Fatalf("GET /debug/pprof/profile?seconds=86400 ended before Shutdown: %v", err)
		default:
		}
		status, body := get(t, pp+"/debug/pprof/goroutine?debug=1", "")
		return status == http.StatusOK && strings.Contains(body, "net/http/pprof.Profile"), fmt.Sprintf("%d", status)
	})
	if err := d.shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-long:
	case <-time.After(waitFor):
		t.Fatalf("a CPU profile request still running %v after Shutdown", waitFor)
	}
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Errorf("pprof listener %s still accepts connections after Shutdown", addr)
	}
}

// TestPprofOff: without --pprof (the default) there is no pprof listener
// and the main listener serves no profile.
func TestPprofOff(t *testing.T) {
	if p := daemon.DefaultConfig().Pprof; p != "" {
		t.Errorf("DefaultConfig().Pprof = %q; want off", p)
	}
	d := startDaemon(t, testConfig(t))
	if a := d.s.PprofAddr(); a != nil {
		t.Errorf("PprofAddr() = %v without --pprof; want nil", a)
	}
	if status, body := get(t, d.url+"/debug/pprof/", ""); status == http.StatusOK || strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ = %d %.200q; want no profile", status, body)
	}
}

// TestPprofFlag: --pprof and STATESYNC_PPROF take a loopback host:port
// (the flag wins); any other address is refused with an error that says
// so, before anything listens.
func TestPprofFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", ""},
		{[]string{"--pprof", "127.0.0.1:0"}, "", "127.0.0.1:0"},
		{[]string{"--pprof", "[::1]:0"}, "", "[::1]:0"},
		{[]string{"--pprof", "localhost:0"}, "", "localhost:0"},
		{nil, "127.0.0.2:0", "127.0.0.2:0"},
		{[]string{"--pprof", "[::1]:0"}, "127.0.0.1:0", "[::1]:0"},
	} {
		cfg, err := daemon.ParseFlags(tc.args, env("STATESYNC_PPROF", tc.env), io.Discard)
		if err != nil || cfg.Pprof != tc.want {
			t.Errorf("ParseFlags(%q) with STATESYNC_PPROF=%q = Pprof %q, %v; want %q", tc.args, tc.env, cfg.Pprof, err, tc.want)
		}
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.com:0", "app.localhost:0", "127.0.0.1.example:0"} {
		_, err := daemon.ParseFlags([]string{"--pprof", addr}, env(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("ParseFlags(--pprof %s) = %v; want an error saying pprof is loopback only", addr, err)
		}
		_, err = daemon.ParseFlags(nil, env("STATESYNC_PPROF", addr), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("ParseFlags with STATESYNC_PPROF=%s = %v; want an error saying pprof is loopback only", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1", "6060", "[::1", "127.0.0.1:0:0"} {
		if _, err := daemon.ParseFlags([]string{"--pprof", addr}, env(), io.Discard); err == nil || !strings.Contains(err.Error(), "--pprof") {
			t.Errorf("ParseFlags(--pprof %q) = %v; want an error naming --pprof", addr, err)
		}
	}
}

// TestPprofListenFails: a --pprof address already in use fails Start,
// which then releases what it had opened: the same data directory opens
// again at once (the bbolt file is not left locked).
func TestPprofListenFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.Pprof = busy.Addr().String()
	if s, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "--pprof") {
		if err == nil {
			_ = s.Shutdown(context.Background())
		}
		t.Fatalf("Start with --pprof %s in use = %v; want an error naming --pprof", cfg.Pprof, err)
	}
	cfg.Pprof = ""
	startDaemon(t, cfg)
}
