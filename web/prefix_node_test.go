package web_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
)

// fetchEventSource is a minimal EventSource over fetch for Node 20, which
// has none: the events the client listens to, onopen, onerror (readyState
// 2 on an HTTP error, as browsers do), close.
const fetchEventSource = `class FetchEventSource {
  constructor(url) {
    this.readyState = 0;
    this.listeners = {};
    this.ctl = new AbortController();
    this.read(url).catch(() => { if (this.readyState !== 2) { this.readyState = 2; this.onerror?.(); } });
  }
  addEventListener(type, fn) { (this.listeners[type] ??= []).push(fn); }
  close() { this.readyState = 2; this.ctl.abort(); }
  async read(url) {
    const res = await fetch(url, { headers: { Accept: "text/event-stream" }, signal: this.ctl.signal });
    if (!res.ok) { this.readyState = 2; this.onerror?.(); return; }
    this.readyState = 1;
    this.onopen?.();
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let type = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length > 0) for (const fn of this.listeners[type] ?? []) fn({ data: data.join("\n") });
      }
    }
  }
}
`

// startTokenDaemon starts an in-memory daemon with the tokens of
// tokensJSON and returns its URL.
func startTokenDaemon(t *testing.T, tokensJSON string) string {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(tokensJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Memory = true
	cfg.Data = ""
	cfg.Tokens = tokens
	cfg.ShutdownTimeout = 5 * time.Second
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("daemon.Start = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

// TestNodeWatchPrefix runs statesync.js's watchPrefix in Node against a
// real daemon: a watch opened before a topic exists receives its first
// write, with the data inline; a token that may read "cart:alice*" never
// hears of cart:bob:…; a malformed prefix is rejected with the server's
// 400; close ends the watch.
func TestNodeWatchPrefix(t *testing.T) {
	url := startTokenDaemon(t, `{"tokens": [
  {"name": "admin", "token": "tok-admin", "read": ["*"], "write": ["*"]},
  {"name": "alice", "token": "tok-alice", "read": ["cart:alice*"]}]}`)
	script := `import { connect, StateSyncError } from "./statesync.mjs";
` + fetchEventSource + `
const url = "` + url + `";
const admin = connect({ url, token: "tok-admin", EventSourceImpl: FetchEventSource });
const alice = connect({ url, token: "tok-alice", inline: 1000, EventSourceImpl: FetchEventSource });
await admin.put("cart:alice:old", { items: 0 });
await admin.put("cart:bob:old", { items: 0 });
const seen = [], revs = [];
let wake = () => {};
const stop = await alice.watchPrefix("cart:", (ev, snap) => {
  seen.push(ev.topic + "=" + JSON.stringify(snap?.data));
  revs.push(ev.revision);
  wake();
});
const until = (n) => new Promise((resolve) => {
  wake = () => { if (seen.length >= n) resolve(); };
  wake();
});
await until(1);
await admin.put("cart:bob:new", { items: 1 });
const w = await admin.put("cart:alice:new", { items: 2 });
await until(2);
console.log("seen:", seen.join(" "));
console.log("first write:", revs[1] === w.revision);
try {
  await alice.watchPrefix("bad\nprefix", () => {});
  console.log("bad prefix: accepted");
} catch (e) {
  console.log("bad prefix:", e instanceof StateSyncError, e.status, e.code);
}
stop();
await admin.put("cart:alice:after", 1);
// Another watch sees the write: the stopped one, whose frames are
// ignored from stop on, did not.
const other = [];
let gotOther;
const otherSeen = new Promise((r) => { gotOther = r; });
const stopOther = await admin.watchPrefix("cart:alice:after", (ev) => { other.push(ev.topic); gotOther(); });
await otherSeen;
stopOther();
console.log("after stop:", seen.length, other.join(" "));
const pending = alice.watchPrefix("x:", () => {});
alice.close();
try { await pending; console.log("close: resolved"); } catch (e) { console.log("close:", e.code); }
admin.close();
`
	got := runNode(t, script)
	want := `seen: cart:alice:old={"items":0} cart:alice:new={"items":2}
first write: true
bad prefix: true 400 invalid_parameter
after stop: 2 cart:alice:after
close: closed
`
	if got != want {
		t.Errorf("node printed:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "bob") {
		t.Errorf("alice's watch saw a topic of bob's: %s", got)
	}
}
