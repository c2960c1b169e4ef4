package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/internal/daemon"
)

// startDaemon starts the real daemon (internal/daemon, as `statesync
// serve`) in memory on a free loopback port, with the token "tok-app" that
// may read and write every topic, and CORS for origins (comma-separated,
// "" for none). It returns its URL.
func startDaemon(t *testing.T, origins string) string {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(`{"tokens":[{"name":"app","token":"tok-app","read":["*"],"write":["*"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.Addr, cfg.Memory, cfg.Data, cfg.Tokens, cfg.CORSOrigins = "127.0.0.1:0", true, "", tokens, origins
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("daemon.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("daemon Shutdown: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

// appServer serves, on an origin of its own (another port), a page that
// imports statesync.js from the daemon at ?daemon=URL with a dynamic
// import (a CORS request, as a static cross-origin import) and sets
// window.loaded to "ok" or to the error.
func appServer(t *testing.T) *httptest.Server {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := json.Marshal(r.URL.Query().Get("daemon"))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>app</title>
<script type="module">
window.daemon = %s;
try {
  window.ss = await import(window.daemon + "/statesync.js");
  window.loaded = "ok";
} catch (e) {
  window.loaded = "refused: " + e;
}
</script>`, d)
	}))
	t.Cleanup(app.Close)
	return app
}

// TestCrossOrigin: a page of another origin imports statesync.js from a
// daemon started with --cors-origins naming that origin, follows a topic
// with a token (the preflights of Authorization and If-Match pass), writes
// with compare-and-set and sees another tab's write; a daemon without that
// origin refuses the module, the GET and the write.
func TestCrossOrigin(t *testing.T) {
	browser := newBrowser(t)
	app := appServer(t)
	d := startDaemon(t, app.URL)

	open := func(daemonURL string) *tab {
		tb := newTab(t, browser, app.URL+"/?daemon="+daemonURL)
		waitFor(t, tb, "the page tries its import", `window.loaded ?? ""`, func(s string) bool { return s != "" })
		return tb
	}
	a, b := open(d), open(d)
	for _, tb := range []*tab{a, b} {
		var loaded string
		tb.eval(t, `return window.loaded`, &loaded)
		if loaded != "ok" {
			t.Fatalf("importing %s/statesync.js from %s: %s; want ok", d, app.URL, loaded)
		}
		tb.eval(t, `window.c = ss.connect({url: window.daemon, token: "tok-app"}); window.applied = [];
			window.stop = await c.follow("cart", (s) => { window.applied.push(s); });
			return null`, nil)
	}
	var first struct{ Revision, Epoch string }
	a.eval(t, `return await c.put("cart", {items: 1}, {ifRevision: "0"})`, &first)
	var conflict struct {
		Status          int
		CurrentRevision string
	}
	a.eval(t, `try { await c.put("cart", {items: 99}, {ifRevision: "0"}); return {status: 0} }
		catch (e) { return {status: e.status, currentRevision: e.currentRevision} }`, &conflict)
	if conflict.Status != http.StatusPreconditionFailed || conflict.CurrentRevision != first.Revision {
		t.Errorf("a stale compare-and-set from the other origin: %+v; want status 412 and current revision %s", conflict, first.Revision)
	}
	// The other tab writes at the revision it was shown; the first sees it.
	waitFor(t, b, "tab b follows the first write", `JSON.stringify(window.applied.at(-1)?.data ?? null)`,
		func(s string) bool { return s == `{"items":1}` })
	var second struct{ Revision string }
	b.eval(t, `return await c.put("cart", {items: 2}, {ifRevision: window.applied.at(-1).revision})`, &second)
	got := waitFor(t, a, "tab a sees tab b's write", `window.applied.at(-1)`, func(s jsSnap) bool { return string(s.Data) == `{"items":2}` })
	if got.Revision != second.Revision {
		t.Errorf("tab a applied %v; want revision %s of tab b's write", got, second.Revision)
	}

	t.Run("Refused", func(t *testing.T) {
		other := startDaemon(t, "http://elsewhere.localhost:1")
		none := startDaemon(t, "")
		for _, dURL := range []string{other, none} {
			tb := open(dURL)
			var loaded string
			tb.eval(t, `return window.loaded`, &loaded)
			if !strings.HasPrefix(loaded, "refused") {
				t.Errorf("importing %s/statesync.js from %s: %q; want refused", dURL, app.URL, loaded)
			}
			var res struct{ Get, Put, Stream string }
			tb.eval(t, `const h = {Authorization: "Bearer tok-app"};
				const r = {};
				try { r.get = "status " + (await fetch(window.daemon + "/v1/topics/cart", {headers: h})).status } catch (e) { r.get = "refused" }
				try { r.put = "status " + (await fetch(window.daemon + "/v1/topics/cart", {method: "PUT", headers: {...h, "Content-Type": "application/json", "If-Match": '"0"'}, body: "{}"})).status } catch (e) { r.put = "refused" }
				r.stream = await new Promise((resolve) => {
				  const es = new EventSource(window.daemon + "/v1/events?topic=cart&access_token=tok-app");
				  es.onopen = () => { es.close(); resolve("open") };
				  es.onerror = () => { es.close(); resolve("refused") };
				});
				return r`, &res)
			if res.Get != "refused" || res.Put != "refused" || res.Stream != "refused" {
				t.Errorf("from %s to %s: GET %s, PUT %s, event stream %s; want all refused", app.URL, dURL, res.Get, res.Put, res.Stream)
			}
		}
		// The refused preflight kept the PUT from being sent at all.
		for _, dURL := range []string{other, none} {
			req, _ := http.NewRequest("GET", dURL+"/v1/topics/cart", nil)
			req.Header.Set("Authorization", "Bearer tok-app")
			hc := &http.Client{Transport: &http.Transport{}}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var snap struct{ Revision string }
			err = json.NewDecoder(resp.Body).Decode(&snap)
			resp.Body.Close()
			hc.CloseIdleConnections()
			if err != nil || snap.Revision != "0" {
				t.Errorf("GET %s/v1/topics/cart after the refused PUT = revision %q, %v; want \"0\" (never written)", dURL, snap.Revision, err)
			}
		}
	})
}
