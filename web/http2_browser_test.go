package web_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/testcert"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key to
// dir and returns their paths.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	p, err := testcert.New(1)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err = p.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// metric scrapes the daemon's /metrics with hc and returns the value of
// the sample named name (without labels).
func metric(t *testing.T, hc *http.Client, base, name string) float64 {
	t.Helper()
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", name, v, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics (%v)", name, sc.Err())
	return 0
}

// TestHTTP2Tabs: ten tabs of one origin, the daemon's over TLS, each
// follow a topic with statesync.js: over HTTP/2 their ten event streams
// share the browser's connection (over HTTP/1.1, Chromium opens at most
// six connections per origin and the seventh tab's stream would wait), and
// all ten see a write from Go and another tab's write live.
func TestHTTP2Tabs(t *testing.T) {
	const tabs = 10
	browser := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	cfg := daemon.DefaultConfig()
	cfg.Addr, cfg.Memory, cfg.Data = "127.0.0.1:0", true, ""
	cfg.TLSCert, cfg.TLSKey = selfSigned(t, t.TempDir())
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("daemon.Start: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	t.Cleanup(func() {
		hc.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("daemon Shutdown: %v", err)
		}
	})
	base := "https://" + s.Addr().String()

	var all []*tab
	for i := range tabs {
		// A page of the daemon's origin; the test imports the module into it.
		tb := newTab(t, browser, base+"/healthz")
		var proto string
		tb.eval(t, `window.ss = await import("/statesync.js");
			window.c = ss.connect({}); window.applied = [];
			window.stop = await c.follow("live", (s) => { window.applied.push(s) });
			return performance.getEntriesByType("resource").find((e) => e.name.endsWith("/statesync.js"))?.nextHopProtocol ?? "?"`, &proto)
		if proto != "h2" {
			t.Fatalf("tab %d loaded statesync.js over %q; want h2", i, proto)
		}
		all = append(all, tb)
	}
	poll.UntilState(t, "ten event streams open", func() (bool, string) {
		n := metric(t, hc, base, "statesync_streams_open")
		return n == tabs, fmt.Sprint(n, " streams")
	})
	// The browser's connection (and maybe a second one, as Chromium may
	// open for a preconnect) and the test's own.
	if n := metric(t, hc, base, "statesync_connections_open"); n > 3 {
		t.Errorf("%v connections open for %d tabs over HTTP/2; want the streams to share the browser's connection", n, tabs)
	}

	req, _ := http.NewRequest("PUT", base+"/v1/topics/live", strings.NewReader(`{"n":1}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("PUT from Go = %d over %s; want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	for i, tb := range all {
		waitFor(t, tb, fmt.Sprintf("tab %d sees the write from Go", i), `JSON.stringify(window.applied.at(-1)?.data ?? null)`,
			func(s string) bool { return s == `{"n":1}` })
	}
	all[3].eval(t, `await c.put("live", {n: 2}, {ifRevision: window.applied.at(-1).revision}); return null`, nil)
	for i, tb := range all {
		waitFor(t, tb, fmt.Sprintf("tab %d sees tab 3's write", i), `JSON.stringify(window.applied.at(-1)?.data ?? null)`,
			func(s string) bool { return s == `{"n":2}` })
	}
}
