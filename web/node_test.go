package web_test

import (
	"context"
	"github.com/statesync-go/statesync/internal/svc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/web"
)

// TestNodeNoEventSource runs statesync.js in Node, which (in version 20)
// has no global EventSource: connect throws a clear error at once instead of
// a TypeError when the first topic is followed (issue 9, item 13), and
// connects with EventSourceImpl. It is skipped when node is not on PATH.
func TestNodeNoEventSource(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		svc.Missing(t, "node not on PATH: statesync.js not run in Node")
	}
	dir := t.TempDir()
	// The .mjs name makes Node load it as an ES module.
	if err := os.WriteFile(filepath.Join(dir, "statesync.mjs"), web.Module(), 0o644); err != nil {
		t.Fatal(err)
	}
	const script = `import { connect } from "./statesync.mjs";
delete globalThis.EventSource; // Node 22 and later have one
try {
  connect({ url: "http://127.0.0.1:1" });
  console.log("connect did not throw");
} catch (e) {
  console.log("error: " + e.message);
}
class FakeEventSource { addEventListener() {} close() {} }
const c = connect({ url: "http://127.0.0.1:1", EventSourceImpl: FakeEventSource });
console.log("with EventSourceImpl: " + typeof c.subscriber);
`
	if err := os.WriteFile(filepath.Join(dir, "check.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.mjs")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, out)
	}
	want := `error: statesync: no EventSource: pass EventSourceImpl (e.g. from the "eventsource" package) in Node
with EventSourceImpl: function
`
	if got := strings.ReplaceAll(string(out), "\r\n", "\n"); got != want {
		t.Errorf("node check.mjs printed:\n%s\nwant:\n%s", got, want)
	}
}

// runNode runs script in Node next to statesync.mjs and returns what it
// printed; it skips the test when node is not on PATH.
func runNode(t *testing.T, script string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		svc.Missing(t, "node not on PATH: statesync.js not run in Node")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "statesync.mjs"), web.Module(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "check.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.mjs")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, out)
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n")
}

// TestNodeStreamLifecycle drives the client's event stream with a fake
// EventSource: refused frames cost one reopen, not one per topic; a stream
// of refused topics only is replaced once it ends; an EventSource that
// cannot be made fails the waiting subscriptions instead of leaving them
// pending; a frame of a stream already replaced is ignored; close drops
// the inline snapshots.
func TestNodeStreamLifecycle(t *testing.T) {
	const script = `import { connect } from "./statesync.mjs";
const streams = [];
class FakeES {
  constructor(url) {
    if (url.includes("topic=boom")) throw new TypeError("bad URL");
    this.url = url; this.l = {}; this.closed = false; this.readyState = 0;
    streams.push(this);
  }
  addEventListener(type, fn) { this.l[type] = fn; }
  close() { this.closed = true; this.readyState = 2; }
  emit(type, data) { this.l[type]({ data: JSON.stringify(data) }); }
}
const tick = () => new Promise((r) => setTimeout(r, 0));
const topics = (es) => new URL(es.url, "http://x").searchParams.getAll("topic").join(",");
const c = connect({ url: "http://127.0.0.1:1", inline: 1000, EventSourceImpl: FakeES });
const results = {};
for (const t of ["a", "b", "c", "u"]) {
  c.subscriber(t).subscribe(() => {}).then(() => (results[t] = "ok"), (e) => (results[t] = e.status));
}
await tick();
const s0 = streams[0];
// A browser dispatches each frame as a task of its own: microtasks run between them.
for (const t of ["a", "b", "c"]) { s0.emit("refused", { topic: t, code: "forbidden", message: "no" }); await tick(); }
s0.emit("snapshot", { topic: "u", revision: "1", data: { v: 1 } });
await tick(); await tick();
console.log("streams:", streams.map(topics).join(" | "));
console.log("results:", JSON.stringify(results));
// A frame of the replaced stream changes nothing.
const seen = [];
const subU = c.subscriber("u").subscribe((ev) => seen.push(ev.revision));
await tick();
streams[1].emit("invalidation", { topic: "u", revision: "2" });
await subU;
seen.length = 0;
s0.emit("invalidation", { topic: "u", revision: "9" });
console.log("old stream frame delivered:", seen.length);
// A stream whose topics are all refused is replaced once it ends.
const d = connect({ url: "http://127.0.0.1:1", EventSourceImpl: FakeES });
const r2 = {};
d.subscriber("x").subscribe(() => {}).then(() => (r2.x = "ok"), (e) => (r2.x = e.status));
await tick();
const sx = streams[streams.length - 1];
sx.emit("refused", { topic: "x", code: "forbidden", message: "no" });
sx.onerror();
await tick(); await tick();
console.log("all refused:", JSON.stringify(r2), "old closed:", sx.closed, "new streams:", streams.length - streams.indexOf(sx) - 1);
// An EventSource that cannot be made.
const e = connect({ url: "http://127.0.0.1:1", EventSourceImpl: FakeES });
const orig = console.error; console.error = () => {};
const boom = await e.subscriber("boom").subscribe(() => {}).then(() => "resolved", (err) => "rejected: " + err.message);
console.error = orig;
console.log("boom:", boom);
// close drops the inline snapshots the stream carried.
c.close();
console.log("inline kept after close:", c.inlineCache.size);
`
	want := `streams: a,b,c,u | u
results: {"a":403,"b":403,"c":403,"u":"ok"}
old stream frame delivered: 0
all refused: {"x":403} old closed: true new streams: 0
boom: rejected: bad URL
inline kept after close: 0
`
	if got := runNode(t, script); got != want {
		t.Errorf("node printed:\n%s\nwant:\n%s", got, want)
	}
}

// TestNodeMinRevision: the GET of a snapshot asks for at least the newest
// revision the client was told of (minRevision and epoch, issue 11): the
// invalidation the fetch acts on, then the client's own write; a topic
// the client knows nothing of is fetched without them, and the ETag of the
// last 200 is still sent.
func TestNodeMinRevision(t *testing.T) {
	const script = `import { connect } from "./statesync.mjs";
const streams = [];
class FakeES {
  constructor(url) { this.url = url; this.l = {}; this.readyState = 0; streams.push(this); }
  addEventListener(type, fn) { this.l[type] = fn; }
  close() { this.readyState = 2; }
  emit(type, data) { this.l[type]({ data: JSON.stringify(data) }); }
}
const gets = [];
let rev = "5";
globalThis.fetch = async (url, init = {}) => {
  const u = new URL(url);
  const method = init.method ?? "GET";
  if (method === "GET") {
    gets.push(u.pathname + u.search + " inm=" + (init.headers?.["If-None-Match"] ?? ""));
    return new Response(JSON.stringify({ revision: rev, epoch: "e/1", data: { rev } }), { status: 200, headers: { ETag: '"e/1.' + rev + '"' } });
  }
  rev = "9";
  return new Response(JSON.stringify({ revision: "9", epoch: "e/1" }), { status: 200 });
};
const tick = () => new Promise((r) => setTimeout(r, 0));
const c = connect({ url: "http://127.0.0.1:1", EventSourceImpl: FakeES });
await c.getSnapshot("t");
const f = c.follow("t", () => {});
await tick();
streams[0].emit("invalidation", { topic: "t", revision: "5", epoch: "e/1" });
await f; // the first frame and follow's first refresh: two GETs
streams[0].emit("invalidation", { topic: "t", revision: "7", epoch: "e/1" });
await tick(); await tick();
await c.put("t", { v: 9 });
await c.getSnapshot("t");
await c.getSnapshot("a b");
for (const g of gets) console.log(g);
`
	want := `/v1/topics/t inm=
/v1/topics/t?minRevision=5&epoch=e%2F1 inm="e/1.5"
/v1/topics/t?minRevision=5&epoch=e%2F1 inm="e/1.5"
/v1/topics/t?minRevision=7&epoch=e%2F1 inm="e/1.5"
/v1/topics/t?minRevision=9&epoch=e%2F1 inm="e/1.5"
/v1/topics/a%20b inm=
`
	if got := runNode(t, script); got != want {
		t.Errorf("node printed:\n%s\nwant:\n%s", got, want)
	}
}
