package web_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

// awkwardNames are topic names users write (issue 13 item 4; docs/PROTOCOL.md
// "Topic names"): URL and grant special characters, non-ASCII in two
// normalisations, markup, and the longest names.
var awkwardNames = []string{
	"settings/ui", "my topic", "café", "cafe\u0301", "日本語/設定", "🙂", "a+b", "100%", "%2F", "a%2F..%2Fb", "a?b=c&d",
	"#frag", "/", "a/../b", "...", "*", `a\*`, "[x]", "{tag}", `"q"`, "<img src=x onerror=window.pwned=1>", "\u00a0x",
	strings.Repeat("/", statesync.MaxTopicLen), strings.Repeat("é", statesync.MaxTopicLen/2),
}

// TestTopicNamesBrowser: in Chromium, statesync.js writes, reads, lists
// and follows each awkward name under exactly its name (the Go source sees
// the same bytes), and the dashboard shows a name holding markup as text.
func TestTopicNamesBrowser(t *testing.T) {
	browser := newBrowser(t)
	s := newServer(t, nil)
	p := newPage(t, browser, s)
	names, _ := json.Marshal(awkwardNames)
	var res []struct {
		Put, Got string
		Data     map[string]string
		Listed   bool
	}
	p.eval(t, `const c = ss.connect({});
		const out = [];
		const list = [];
		for (const name of `+string(names)+`) {
			const put = await c.put(name, {name});
			const snap = await c.getSnapshot(name);
			out.push({Put: put.revision, Got: snap.revision, Data: snap.data});
		}
		const topics = (await c.topics()).map((t) => t.topic);
		for (const [i, name] of `+string(names)+`.entries()) out[i].Listed = topics.includes(name);
		return out;`, &res)
	if len(res) != len(awkwardNames) {
		t.Fatalf("the page returned %d results; want %d", len(res), len(awkwardNames))
	}
	for i, name := range awkwardNames {
		r := res[i]
		src := s.get(t, name)
		if r.Put == "" || r.Got != r.Put || r.Data["name"] != name || !r.Listed || src.Revision.String() != r.Put {
			t.Errorf("%q: put at %s, read %s %v, listed %v; the source has it at %d; want one revision, the data, listed",
				name, r.Put, r.Got, r.Data, r.Listed, src.Revision)
		}
	}

	// Each name's stream frames reach its subscriber under its name.
	p.eval(t, `window.seen = {};
		const c = ss.connect({});
		for (const name of `+string(names)+`) {
			await c.subscriber(name).subscribe((ev) => { (window.seen[ev.topic] ??= []).push(ev.revision); });
		}`, nil)
	s.waitStreams(t, 1)
	want := map[string]string{}
	for _, name := range awkwardNames {
		want[name] = s.put(t, name, `{"again":true}`).Revision.String()
	}
	waitFor(t, p, "every subscriber hears its topic's write", "window.seen", func(seen map[string][]string) bool {
		for name, rev := range want {
			if !slices.Contains(seen[name], rev) {
				return false
			}
		}
		return len(seen) == len(want)
	})

	// The dashboard shows a name with markup as text, and runs none of it.
	evil := "<img src=x onerror=window.pwned=1>"
	d := newTab(t, browser, s.ts.URL+"/?topic="+url.QueryEscape(evil))
	waitFor(t, d, "the dashboard shows the topic's name", `document.getElementById("t-name").textContent`, func(s string) bool { return s == evil })
	waitFor(t, d, "the dashboard lists the topic as text",
		`[...document.querySelectorAll("#topics li")].map((li) => li.textContent).join("\n")`,
		func(s string) bool { return strings.Contains(s, evil) })
	var pwned, imgs int
	d.eval(t, `return window.pwned ?? 0`, &pwned)
	d.eval(t, `return document.querySelectorAll("img").length`, &imgs)
	if pwned != 0 || imgs != 0 {
		t.Errorf("the dashboard ran markup of a topic name: window.pwned = %d, %d img elements", pwned, imgs)
	}
}

// TestNodeTopicNames: statesync.js in Node escapes each name as one path
// segment (encodeURIComponent) and as a form value of the stream's query,
// so that a server reads back the exact name.
func TestNodeTopicNames(t *testing.T) {
	names, _ := json.Marshal(awkwardNames)
	script := `import { connect } from "./statesync.mjs";
const urls = [];
globalThis.fetch = async (u) => {
  urls.push(String(u));
  return new Response(JSON.stringify({ revision: "0", data: null }), { status: 200 });
};
class FakeES {
  constructor(url) { urls.push(String(url)); }
  addEventListener() {} close() {}
}
const c = connect({ url: "http://127.0.0.1:1", EventSourceImpl: FakeES });
for (const name of ` + string(names) + `) {
  urls.length = 0;
  await c.getSnapshot(name);
  c.subscriber(name).subscribe(() => {});
  await new Promise((r) => setTimeout(r, 0));
  const path = new URL(urls[0]).pathname;
  const seg = path.slice("/v1/topics/".length);
  const streamTopics = new URL(urls.at(-1)).searchParams.getAll("topic");
  console.log(JSON.stringify({ name, oneSegment: !seg.includes("/"), path: decodeURIComponent(seg) === name, query: streamTopics.includes(name) }));
}
`
	out := runNode(t, script)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(awkwardNames) {
		t.Fatalf("node printed %d lines; want %d:\n%s", len(lines), len(awkwardNames), out)
	}
	for i, line := range lines {
		var r struct {
			Name                    string
			OneSegment, Path, Query bool
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if r.Name != awkwardNames[i] || !r.OneSegment || !r.Path || !r.Query {
			t.Errorf("%q: %+v; want one path segment decoding to the name, and the name in the stream's query", awkwardNames[i], r)
		}
	}
}
