package web_test

// Real-browser tests of what statesync.js caches and hands out: inline
// snapshots carried by the event stream (issue 9, item 7), the data every
// getSnapshot returns (item 8), the data of topics without any (item 10),
// and connect without an EventSource. They reuse the server, browser and
// page helpers of browser_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

// TestModuleCache drives the caches of statesync.js in pages of one
// browser, each subtest against a server of its own.
func TestModuleCache(t *testing.T) {
	browser := newBrowser(t)
	t.Run("InlineStaleFollow", func(t *testing.T) { testInlineStale(t, browser, false, false) })
	t.Run("InlineStaleCore", func(t *testing.T) { testInlineStale(t, browser, true, false) })
	t.Run("InlineStaleFollowRestart", func(t *testing.T) { testInlineStale(t, browser, false, true) })
	t.Run("InlineStaleCoreRestart", func(t *testing.T) { testInlineStale(t, browser, true, true) })
	t.Run("OwnedData", func(t *testing.T) { testOwnedData(t, browser) })
	t.Run("EmptyData", func(t *testing.T) { testEmptyData(t, browser) })
	t.Run("NoEventSource", func(t *testing.T) { testNoEventSource(t, browser) })
}

// newAdapterPage opens a tab on testdata/adapter.html: module.html plus the
// adapter-contract harness (testdata/adapter.js) as window.A.
func newAdapterPage(t *testing.T, browser context.Context, s *server) *tab {
	t.Helper()
	tb := newTab(t, browser, s.ts.URL+"/test/adapter.html")
	waitFor(t, tb, "the test page loads", `typeof window.A === "object" && typeof window.T === "object"`, func(ok bool) bool { return ok })
	return tb
}

// bigJSON returns a JSON object of more than n bytes, tagged with tag.
func bigJSON(tag string, n int) string {
	return fmt.Sprintf(`{"tag":%q,"pad":%q}`, tag, strings.Repeat("x", n))
}

// following starts, in client c, a follower of topic named name: with
// follow() or, if core, with the @statesync/core-style flow of adapter.js
// (subscriber + provider). It returns the JavaScript expression of the
// follower's applied revision.
func following(t *testing.T, p *tab, core bool, name, topic string) string {
	t.Helper()
	if core {
		var r struct {
			OK    bool
			Error string
		}
		p.eval(t, fmt.Sprintf(`return await A.start(%s, "c", %s);`, js(name), js(topic)), &r)
		if !r.OK {
			t.Fatalf("start of %s on %s: %s", name, topic, r.Error)
		}
		return fmt.Sprintf(`A.syncs[%s].revision()`, js(name))
	}
	p.eval(t, fmt.Sprintf(`await T.follow(%s, "c", %s);`, js(name), js(topic)), nil)
	return fmt.Sprintf(`T.followers[%s].revision()`, js(name))
}

// testInlineStale is item 7 of issue 9: with connect({inline: 100}), follow
// topic a (small), then topic b, which reopens the stream, whose first frame
// carries a's snapshot inline; then a write of a too large to ride inline is
// announced without data. The follower of a must reach that write: the
// carried snapshot is older than the announced revision, so getSnapshot
// fetches. With core, the followers are the @statesync/core-style flow of
// adapter.js over client.subscriber and client.provider. With restart, the
// large write is made by a restarted server (a new source with another
// epoch, whose revisions are higher, as a restarted store's default first
// revision is: the core-style gate does not look at epochs), whose stream's
// first frame announces it.
func testInlineStale(t *testing.T, browser context.Context, core, restart bool) {
	s := newServer(t, nil)
	w1 := s.put(t, "a", `{"v":1}`)
	s.put(t, "b", `{"v":1}`)
	p := newAdapterPage(t, browser, s)

	p.eval(t, `T.client("c", {inline: 100}); await T.subscribe("a-ev", "c", "a");`, nil)
	revA := following(t, p, core, "fa", "a")
	s.waitStreams(t, 1)
	// The first stream's first frame for a; no later frame comes from it.
	waitFor(t, p, "the first stream announces a", `T.events["a-ev"].length`, func(n int) bool { return n >= 1 })
	var n0 int
	p.eval(t, `return T.events["a-ev"].length;`, &n0)

	following(t, p, core, "fb", "b")
	evs := waitFor(t, p, "the reopened stream replays a", `T.events["a-ev"].slice(`+fmt.Sprint(n0)+`)`, func(evs []jsEvent) bool { return len(evs) > 0 })
	if evs[0].Revision != w1.Revision.String() {
		t.Fatalf("replayed event of a = %+v; want revision %v", evs[0], w1.Revision)
	}

	big := bigJSON("second", 200)
	var w2 statesync.Snapshot
	if restart {
		src2 := newSource(t, &statesync.MemoryStoreOptions{Epoch: "second-epoch"})
		var err error
		if w2, err = src2.Put(context.Background(), "a", json.RawMessage(big)); err != nil {
			t.Fatal(err)
		}
		s.serve(src2, nil)
	} else {
		w2 = s.put(t, "a", big)
	}
	waitFor(t, p, "the follower of a reaches the large write "+w2.Revision.String(), revA, func(r string) bool { return r == w2.Revision.String() })
	var data json.RawMessage
	if core {
		p.eval(t, `return A.stores.fa.state;`, &data)
	} else {
		p.eval(t, `return T.applied.fa.at(-1).data;`, &data)
		var epoch string
		p.eval(t, `return T.followers.fa.epoch();`, &epoch)
		if epoch != w2.Epoch {
			t.Errorf("follower's epoch = %q; want %q", epoch, w2.Epoch)
		}
	}
	if string(data) != big {
		t.Errorf("applied data of a = %s; want %s", data, big)
	}
	// A small write after it still rides inline and is applied.
	w3 := s.put(t, "a", `{"v":3}`)
	waitFor(t, p, "the follower of a reaches "+w3.Revision.String(), revA, func(r string) bool { return r == w3.Revision.String() })
}

// testOwnedData is item 8 of issue 9: a caller that edits the data
// getSnapshot returned, in place, as a Pinia store does, does not change
// what the next getSnapshot returns: after a 304, and from a snapshot that
// rode inline.
func testOwnedData(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	const want = `{"ui":{"theme":"light"}}`
	s.put(t, "p", want)
	p := newAdapterPage(t, browser, s)

	const editTwice = `const c = T.clients.c, out = [];
		for (let i = 0; i < 3; i++) {
			const snap = await %s;
			out.push(JSON.stringify(snap.data));
			snap.data.ui.theme = "LOCAL-EDIT";
			snap.data.added = i;
		}
		return out;`
	var got []string
	p.eval(t, `T.client("c");`+fmt.Sprintf(editTwice, `c.getSnapshot("p")`), &got)
	if st := s.handler().Stats(); st.NotModified < 2 {
		t.Errorf("NotModified = %d; want at least 2 (the later GETs are conditional)", st.NotModified)
	}
	for i, g := range got {
		if g != want {
			t.Errorf("getSnapshot #%d after editing the previous one's data in place = %s; want %s", i+1, g, want)
		}
	}
	got = nil
	p.eval(t, fmt.Sprintf(editTwice, `c.provider("p").getSnapshot()`), &got)
	for i, g := range got {
		if g != want {
			t.Errorf("provider getSnapshot #%d after an in-place edit = %s; want %s", i+1, g, want)
		}
	}

	// Inline: the snapshot rides the stream's first frame; every
	// getSnapshot answers from it, each with data of its own, and no GET.
	p.eval(t, `T.client("ci", {inline: 1000}); await T.subscribe("p-ev", "ci", "p");`, nil)
	waitFor(t, p, "the stream carries p", `T.events["p-ev"].length`, func(n int) bool { return n >= 1 })
	gets0 := s.gets()
	got = nil
	p.eval(t, strings.Replace(fmt.Sprintf(editTwice, `c.getSnapshot("p")`), "T.clients.c,", "T.clients.ci,", 1), &got)
	for i, g := range got {
		if g != want {
			t.Errorf("inline getSnapshot #%d after an in-place edit = %s; want %s", i+1, g, want)
		}
	}
	if n := s.gets() - gets0; n != 0 {
		t.Errorf("snapshot GETs while a fresh inline snapshot was at hand = %d; want 0", n)
	}
}

// testEmptyData is item 10 of issue 9, against the contract of the
// @statesync/* adapters (adapter.js: a strict applier that throws unless the
// data is a plain object): without emptyData, a topic never written fails
// to start (data null); with connect({emptyData: () => ({})}) it starts with
// {}, follows writes, and a DELETE applies {} without an apply error; the
// provider's own emptyData does the same, and follow() applies connect's.
// Each snapshot gets a fresh value.
func testEmptyData(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	p := newAdapterPage(t, browser, s)

	type started struct {
		OK    bool
		Error string
	}
	var plain started
	p.eval(t, `T.client("plain"); return await A.start("plain", "plain", "fresh");`, &plain)
	if plain.OK || !strings.Contains(plain.Error, "not a plain object") {
		t.Errorf("start on a topic never written, no emptyData = %+v; want the strict applier's rejection (data null)", plain)
	}

	var res struct{ Client, Provider started }
	p.eval(t, `T.client("c", {emptyData: () => ({})}); T.client("c2");
		return {Client: await A.start("fresh", "c", "fresh"),
			Provider: await A.start("prov", "c2", "fresh", {emptyData: () => ({})})};`, &res)
	if !res.Client.OK || !res.Provider.OK {
		t.Fatalf("start on a topic never written with emptyData: connect's %+v, provider's %+v; want both to start", res.Client, res.Provider)
	}
	type store struct {
		State    json.RawMessage
		Revision string
		Errors   []map[string]string
	}
	check := func(desc, want, rev string) {
		t.Helper()
		for _, name := range []string{"fresh", "prov"} {
			st := waitFor(t, p, name+": "+desc, fmt.Sprintf(`({State: A.stores[%[1]s].state, Revision: A.stores[%[1]s].revision, Errors: A.errors[%[1]s]})`, js(name)),
				func(st store) bool { return st.Revision == rev })
			if string(st.State) != want || len(st.Errors) != 0 {
				t.Errorf("%s: %s: store %s at %s, errors %v; want %s, no errors", name, desc, st.State, st.Revision, st.Errors, want)
			}
		}
	}
	check("a topic never written starts empty", `{}`, "0")
	w := s.put(t, "fresh", `{"x":1}`)
	check("a write is applied", `{"x":1}`, w.Revision.String())
	d, err := s.source().Delete(context.Background(), "fresh")
	if err != nil {
		t.Fatal(err)
	}
	check("a DELETE applies the empty value", `{}`, d.Revision.String())

	var followed json.RawMessage
	p.eval(t, `T.client("cf", {emptyData: () => ({})}); await T.follow("ff", "cf", "never"); return T.applied.ff.at(-1).data;`, &followed)
	if string(followed) != `{}` {
		t.Errorf("follow of a topic never written with connect's emptyData applied %s; want {}", followed)
	}

	var fresh struct{ Distinct, ConnectNull, ProviderNull bool }
	p.eval(t, `const a = await T.clients.c.getSnapshot("fresh"), b = await T.clients.c.getSnapshot("fresh");
		return {Distinct: a.data !== b.data,
			ConnectNull: (await T.clients.c2.getSnapshot("fresh")).data === null,
			ProviderNull: (await T.clients.c2.provider("fresh").getSnapshot()).data === null};`, &fresh)
	if !fresh.Distinct || !fresh.ConnectNull || !fresh.ProviderNull {
		t.Errorf("%+v; want distinct empty values per snapshot, and null where no emptyData applies", fresh)
	}
}

// testNoEventSource: connect without an EventSource (as in Node 20, which has
// no global one) throws a clear error at once, not a TypeError later; with
// EventSourceImpl it connects.
func testNoEventSource(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	p := newAdapterPage(t, browser, s)
	var got struct {
		Message  string
		WithImpl bool
	}
	p.eval(t, `const saved = globalThis.EventSource;
		let message = "";
		try {
			delete globalThis.EventSource;
			try { ss.connect({}); } catch (e) { message = e.message; }
			return {Message: message, WithImpl: typeof ss.connect({EventSourceImpl: saved}).subscriber === "function"};
		} finally {
			globalThis.EventSource = saved;
		}`, &got)
	const want = `statesync: no EventSource: pass EventSourceImpl (e.g. from the "eventsource" package) in Node`
	if got.Message != want || !got.WithImpl {
		t.Errorf("connect without an EventSource: %+v; want the error %q, and a client with EventSourceImpl", got, want)
	}
}
