package httpsync_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
)

// prefixTokens: alice reads her carts and settings, bob reads only
// settings, admin reads everything.
const prefixTokens = `{"tokens": [
  {"name": "admin", "token": "admin-secret", "read": ["*"], "write": ["*"]},
  {"name": "alice", "token": "alice-secret", "read": ["cart:alice*", "settings"]},
  {"name": "bob", "token": "bob-secret", "read": ["settings"]}
]}`

func newPrefixServer(t *testing.T, opts *httpsync.HandlerOptions) *testServer {
	t.Helper()
	return newPrefixServerOn(t, nil, opts)
}

func newPrefixServerOn(t *testing.T, ln net.Listener, opts *httpsync.HandlerOptions) *testServer {
	t.Helper()
	toks, err := httpsync.ParseTokens(strings.NewReader(prefixTokens))
	if err != nil {
		t.Fatal(err)
	}
	var o httpsync.HandlerOptions
	if opts != nil {
		o = *opts
	}
	o.Auth = toks
	return newTestServerOn(t, ln, testEpoch, &o)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// A prefix stream sends the current revision of each topic under its
// prefix, then every write to one, a topic created after the stream
// opened included; topics outside the prefix are never sent.
func TestEventsPrefixFirstWrite(t *testing.T) {
	s := newTestServer(t, nil)
	old := s.put(t, "cart:1", `{"n":1}`)
	s.put(t, "cartx", `1`)    // "cart" is a prefix, not "cart:"
	s.put(t, "settings", `1`) // elsewhere
	st := s.openStream(t, "/v1/events?prefix=cart:")
	if f := st.next(t); f.retry == "" {
		t.Fatalf("first frame = %+v; want the retry hint", f)
	}
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "cart:1" || inv.Revision != old.Revision {
		t.Fatalf("initial frame %+v; want cart:1 at %d", inv, old.Revision)
	}
	// The stream opened before cart:2 existed: it gets its first write.
	s.put(t, "settings", `2`)
	s.put(t, "cartx", `2`)
	first := s.put(t, "cart:2", `{"n":2}`)
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "cart:2" || inv.Revision != first.Revision {
		t.Fatalf("frame after the first write of cart:2 = %+v; want cart:2 at %d", inv, first.Revision)
	}
	// And its later ones, and those of the topics it had.
	for i := range 4 {
		topic := []string{"cart:2", "cart:1"}[i%2]
		s.put(t, "settings", `3`)
		want := s.put(t, topic, strconv.Itoa(i))
		if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != topic || inv.Revision != want.Revision {
			t.Fatalf("frame %d = %+v; want %s at %d", i, inv, topic, want.Revision)
		}
	}
}

// A write on another process sharing the store (here another Source on
// the same store, whose writes reach this one through the store's feed)
// to a topic created after the stream opened reaches the stream too.
func TestEventsPrefixSharedStoreFeed(t *testing.T) {
	s := newTestServer(t, nil)
	other, err := statesync.NewSource(s.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	st := s.openStream(t, "/v1/events?prefix=jobs:")
	want, err := other.Put(t.Context(), "jobs:new", []byte(`{"state":"queued"}`))
	if err != nil {
		t.Fatal(err)
	}
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "jobs:new" || inv.Revision != want.Revision {
		t.Fatalf("frame = %+v; want jobs:new at %d", inv, want.Revision)
	}
}

// Grants apply per topic: a token that may read "cart:alice*" watching
// "cart:" gets alice's carts only; a token without a grant under the
// prefix is not refused, and never sees a topic of it, not even its
// name, in the initial frames or later.
func TestEventsPrefixGrants(t *testing.T) {
	s := newPrefixServer(t, nil)
	for _, topic := range []string{"cart:alice:1", "cart:bob:1", "settings"} {
		s.put(t, topic, `1`)
	}
	alice := s.openStream(t, "/v1/events?prefix=cart:&topic=settings", bearer("alice-secret")...)
	bob := s.openStream(t, "/v1/events?prefix=cart:&topic=settings", bearer("bob-secret")...)
	initial := func(st *sseStream, n int) []string {
		var got []string
		for range n {
			got = append(got, decodeInv(t, st.nextEvent(t)).Topic)
		}
		return got
	}
	if got := initial(alice, 2); strings.Join(got, ",") != "settings,cart:alice:1" {
		t.Fatalf("alice's initial frames: %v; want settings, cart:alice:1", got)
	}
	if got := initial(bob, 1); strings.Join(got, ",") != "settings" {
		t.Fatalf("bob's initial frames: %v; want settings", got)
	}
	// Topics created after the streams opened: bob's, then alice's, then
	// one nobody but admin reads, then settings, which both read.
	s.put(t, "cart:bob:2", `1`)
	s.put(t, "cart:carol:1", `1`)
	a2 := s.put(t, "cart:alice:2", `1`)
	s.put(t, "cart:zed", `1`)
	set := s.put(t, "settings", `2`)
	for _, tc := range []struct {
		name string
		st   *sseStream
		want []statesync.Snapshot
	}{
		{"alice", alice, []statesync.Snapshot{a2, set}},
		{"bob", bob, []statesync.Snapshot{set}},
	} {
		for _, w := range tc.want {
			f := tc.st.nextEvent(t)
			if strings.Contains(f.data, "bob") && tc.name == "alice" || strings.Contains(f.data, "cart:") && tc.name == "bob" || strings.Contains(f.data, "carol") || strings.Contains(f.data, "zed") {
				t.Fatalf("%s got %+v: a topic outside its grants", tc.name, f)
			}
			if inv := decodeInv(t, f); inv.Revision != w.Revision {
				t.Fatalf("%s got %+v; want revision %d", tc.name, inv, w.Revision)
			}
		}
	}
}

// The empty prefix follows every topic the token may read.
func TestEventsPrefixEmpty(t *testing.T) {
	s := newPrefixServer(t, nil)
	s.put(t, "cart:alice:1", `1`)
	s.put(t, "cart:bob:1", `1`)
	st := s.openStream(t, "/v1/events?prefix=", bearer("alice-secret")...)
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "cart:alice:1" {
		t.Fatalf("initial frame %+v; want cart:alice:1 only", inv)
	}
	s.put(t, "cart:bob:2", `1`)
	want := s.put(t, "settings", `1`)
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "settings" || inv.Revision != want.Revision {
		t.Fatalf("frame %+v; want settings at %d", inv, want.Revision)
	}
}

// A topic named and under a prefix, and overlapping prefixes, are
// followed once: one frame per write.
func TestEventsPrefixOverlap(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "a:b:1", `1`)
	st := s.openStream(t, "/v1/events?prefix=a:&prefix=a:b:&topic=a:b:1&prefix=a:")
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "a:b:1" {
		t.Fatalf("initial frame %+v", inv)
	}
	for i := range 3 {
		topic := "a:b:" + strconv.Itoa(i+1)
		want := s.put(t, topic, `2`)
		if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != topic || inv.Revision != want.Revision {
			t.Fatalf("frame %+v; want %s at %d (once)", inv, topic, want.Revision)
		}
	}
}

// Inline snapshots work on prefix streams as on topic streams: the
// initial frame and the first write of a new topic carry the data.
func TestEventsPrefixInline(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "cart:1", `{"n":1}`)
	st := s.openStream(t, "/v1/events?prefix=cart:&inline=1024")
	f := st.nextEvent(t)
	if f.event != "snapshot" || !strings.Contains(f.data, `"data":{"n":1}`) {
		t.Fatalf("initial frame %+v; want an inline snapshot of cart:1", f)
	}
	s.put(t, "cart:2", `{"n":2}`)
	f = st.nextEvent(t)
	if f.event != "snapshot" || !strings.Contains(f.data, `"topic":"cart:2"`) || !strings.Contains(f.data, `"data":{"n":2}`) {
		t.Fatalf("frame %+v; want an inline snapshot of cart:2", f)
	}
}

// A prefix matching more topics than MaxPrefixTopics (among those the
// token may read) is refused with 400 too_many_topics; a stream whose
// prefix comes to match more, as topics are created, ends with a refused
// frame naming the prefix.
func TestEventsPrefixTooManyTopics(t *testing.T) {
	s := newPrefixServer(t, &httpsync.HandlerOptions{MaxPrefixTopics: 3})
	for i := range 4 {
		s.put(t, "cart:bob:"+strconv.Itoa(i), `1`)
	}
	s.put(t, "cart:alice:0", `1`)
	resp, body := s.do(t, "GET", "/v1/events?prefix=cart:", "", bearer("admin-secret")...)
	if e := decodeError(t, body); resp.StatusCode != 400 || e.Error.Code != httpsync.CodeTooManyTopics {
		t.Fatalf("4 topics over a cap of 3: %d %s; want 400 %s", resp.StatusCode, body, httpsync.CodeTooManyTopics)
	}
	// Alice may read one of them: her stream is within the cap.
	st := s.openStream(t, "/v1/events?prefix=cart:", bearer("alice-secret")...)
	st.nextEvent(t) // cart:alice:0
	for i := 1; i <= 2; i++ {
		s.put(t, "cart:bob:x"+strconv.Itoa(i), `1`) // not hers: not counted
		s.put(t, "cart:alice:"+strconv.Itoa(i), `1`)
		if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "cart:alice:"+strconv.Itoa(i) {
			t.Fatalf("frame %+v", inv)
		}
	}
	s.put(t, "cart:alice:3", `1`) // the fourth
	f := st.nextEvent(t)
	var r struct{ Prefix, Code, Message string }
	mustJSON(t, []byte(f.data), &r)
	if f.event != "refused" || r.Prefix != "cart:" || r.Code != httpsync.CodeTooManyTopics || !strings.Contains(r.Message, "3") {
		t.Fatalf("frame %+v; want a refused frame for prefix cart:, code %s", f, httpsync.CodeTooManyTopics)
	}
	if _, err := st.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the refused frame: %v; want the end of the stream", err)
	}
}

// The cap counts the topics a stream names with those its prefixes bring:
// one named and three listed is four, over a cap of 3; one named and two
// listed is within it.
func TestEventsPrefixCapCountsNamed(t *testing.T) {
	s := newPrefixServer(t, &httpsync.HandlerOptions{MaxPrefixTopics: 3})
	for i := range 3 {
		s.put(t, "cart:bob:"+strconv.Itoa(i), `1`)
	}
	resp, body := s.do(t, "GET", "/v1/events?topic=other&prefix=cart:bob:", "", bearer("admin-secret")...)
	if e := decodeError(t, body); resp.StatusCode != 400 || e.Error.Code != httpsync.CodeTooManyTopics {
		t.Fatalf("1 named and 3 listed topics over a cap of 3: %d %s; want 400 %s", resp.StatusCode, body, httpsync.CodeTooManyTopics)
	}
	for _, c := range []struct{ q, want string }{
		{"topic=other&prefix=cart:bob:1&prefix=cart:bob:2", "cart:bob:1 cart:bob:2 other"},
		{"prefix=cart:bob:", "cart:bob:0 cart:bob:1 cart:bob:2"}, // the cap reached, not passed
	} {
		st := s.openStream(t, "/v1/events?"+c.q, bearer("admin-secret")...)
		var got []string
		for range 3 {
			got = append(got, decodeInv(t, st.nextEvent(t)).Topic)
		}
		slices.Sort(got)
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("%s: first frames %q; want %q", c.q, g, c.want)
		}
	}
}

// Hostile prefixes get a clear 400 and cost nothing: a 100 KB prefix,
// control characters, invalid UTF-8, more than the allowed number of
// distinct prefixes, thousands of copies of one.
func TestEventsPrefixHostile(t *testing.T) {
	s := newTestServer(t, nil)
	many := url.Values{}
	for i := range 65 {
		many.Add("prefix", "p"+strconv.Itoa(i))
	}
	for _, q := range []string{
		"prefix=" + strings.Repeat("a", 100<<10),
		"prefix=a%0Ab",
		"prefix=a%00",
		"prefix=%FF",
		many.Encode(),
	} {
		resp, body := s.do(t, "GET", "/v1/events?"+q, "")
		if e := decodeError(t, body); resp.StatusCode != http.StatusBadRequest || e.Error.Code != httpsync.CodeInvalidParameter {
			t.Errorf("GET /v1/events?%.40s…: %d %s; want 400 %s", q, resp.StatusCode, body, httpsync.CodeInvalidParameter)
		}
	}
	// Thousands of copies of one prefix are one prefix.
	same := url.Values{}
	for range 5000 {
		same.Add("prefix", "a:")
	}
	st := s.openStream(t, "/v1/events?"+same.Encode())
	want := s.put(t, "a:1", `1`)
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "a:1" || inv.Revision != want.Revision {
		t.Fatalf("frame %+v; want a:1 at %d", inv, want.Revision)
	}
}

// The Go client's SubscribePrefix: the current revision of each topic
// under the prefix the token may read, then the first write of a topic
// created after it returned; never a topic outside the grants. With
// Inline, Snapshot answers from the stream. It reconnects after the
// server ends the stream, and the handler gets the current revisions
// again.
func TestClientSubscribePrefix(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &connTracker{Listener: inner}
	s := newPrefixServerOn(t, ln, nil)
	s.put(t, "cart:alice:1", `{"n":1}`)
	s.put(t, "cart:bob:1", `1`)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "alice-secret", Inline: 1024})
	got := make(chan statesync.Invalidation, 100)
	var stop func()
	stop, err = c.SubscribePrefix(t.Context(), "cart:", handlerFunc(func(inv statesync.Invalidation) { got <- inv }))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	next := func() statesync.Invalidation {
		t.Helper()
		select {
		case inv := <-got:
			if !strings.HasPrefix(inv.Topic, "cart:alice:") {
				t.Fatalf("got %+v: outside alice's grants", inv)
			}
			return inv
		case <-time.After(20 * time.Second):
			t.Fatal("no invalidation within 20 s")
		}
		return statesync.Invalidation{}
	}
	if inv := next(); inv.Topic != "cart:alice:1" {
		t.Fatalf("first invalidation %+v; want cart:alice:1", inv)
	}
	s.put(t, "cart:bob:2", `1`)
	want := s.put(t, "cart:alice:2", `{"n":2}`)
	if inv := next(); inv.Topic != "cart:alice:2" || inv.Revision != want.Revision {
		t.Fatalf("invalidation %+v; want cart:alice:2 at %d", inv, want.Revision)
	}
	if snap, ok := c.PeekSnapshot("cart:alice:2"); !ok || string(snap.Data) != `{"n":2}` {
		t.Fatalf("PeekSnapshot = %+v, %v; want the inline snapshot", snap, ok)
	}
	// The server closes every stream (a restart): the client reconnects
	// and gets the current revisions again.
	ln.closeAll() // hijacked streams too
	seen := map[string]bool{}
	for len(seen) < 2 {
		seen[next().Topic] = true
	}
	stop()
	stop() // idempotent
}

// SubscribePrefix fails at once for a prefix that breaks the topic rules,
// and with the server's refusal for one over MaxPrefixTopics.
func TestClientSubscribePrefixRefused(t *testing.T) {
	s := newPrefixServer(t, &httpsync.HandlerOptions{MaxPrefixTopics: 1})
	s.put(t, "a:1", `1`)
	s.put(t, "a:2", `1`)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "admin-secret"})
	h := handlerFunc(func(statesync.Invalidation) {})
	if _, err := c.SubscribePrefix(t.Context(), "a\n", h); !errors.Is(err, statesync.ErrInvalidTopic) {
		t.Errorf("SubscribePrefix(a\\n) = %v; want ErrInvalidTopic", err)
	}
	var se *httpsync.StatusError
	if _, err := c.SubscribePrefix(t.Context(), "a:", h); !errors.As(err, &se) || se.StatusCode != 400 || se.Code != httpsync.CodeTooManyTopics {
		t.Errorf("SubscribePrefix(a:) over the cap = %v; want a 400 %s", err, httpsync.CodeTooManyTopics)
	}
	c.Close()
	if _, err := c.SubscribePrefix(t.Context(), "a:", h); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("SubscribePrefix after Close = %v; want ErrClosed", err)
	}
}

// A prefix stream on a store with many topics: a prefix matching more
// than MaxPrefixTopics (10,000 by default) is refused at once with 400,
// the daemon untouched; a narrower one sends its topics' revisions, then
// follows them and new ones.
func TestEventsPrefixManyTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 30,000 topics")
	}
	s := newTestServer(t, nil)
	for i := range 30000 {
		if _, err := s.src.Put(t.Context(), "t:"+strconv.Itoa(i), []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	resp, body := s.do(t, "GET", "/v1/events?prefix=t:1", "") // 11,111 topics
	if e := decodeError(t, body); resp.StatusCode != http.StatusBadRequest || e.Error.Code != httpsync.CodeTooManyTopics {
		t.Fatalf("prefix of 11,111 topics: %d %s; want 400 %s", resp.StatusCode, body, httpsync.CodeTooManyTopics)
	}
	t.Logf("refused a prefix of 11,111 of 30,000 topics in %v", time.Since(start))
	start = time.Now()
	st := s.openStream(t, "/v1/events?prefix=t:29") // 1,111 topics
	seen := map[string]bool{}
	for len(seen) < 1111 {
		inv := decodeInv(t, st.nextEvent(t))
		if !strings.HasPrefix(inv.Topic, "t:29") || seen[inv.Topic] {
			t.Fatalf("initial frame %+v: outside the prefix, or twice", inv)
		}
		seen[inv.Topic] = true
	}
	t.Logf("initial frames of 1,111 of 30,000 topics in %v", time.Since(start))
	for _, topic := range []string{"t:29999", "t:29new"} {
		s.put(t, "t:1", `2`)
		want := s.put(t, topic, `2`)
		if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != topic || inv.Revision != want.Revision {
			t.Fatalf("frame %+v; want %s at %d", inv, topic, want.Revision)
		}
	}
}

// A prefix stream that new topics take over MaxPrefixTopics ends with a
// refused frame: the Go client logs it, and its reconnection is refused
// with 400 too_many_topics, logged too, until the topics are gone.
func TestClientSubscribePrefixOverflow(t *testing.T) {
	s := newPrefixServer(t, &httpsync.HandlerOptions{MaxPrefixTopics: 2})
	var logs lockedbuf.Buffer
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "admin-secret", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	got := make(chan statesync.Invalidation, 10)
	stop, err := c.SubscribePrefix(t.Context(), "a:", handlerFunc(func(inv statesync.Invalidation) { got <- inv }))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, topic := range []string{"a:1", "a:2"} {
		s.put(t, topic, `1`)
		if inv := <-got; inv.Topic != topic {
			t.Fatalf("got %+v; want %s", inv, topic)
		}
	}
	s.put(t, "a:3", `1`)
	poll.Until(t, "the end of the stream and the refused reconnection logged", func() bool {
		l := logs.String()
		return strings.Contains(l, "the server ended a prefix event stream") && strings.Contains(l, "code="+httpsync.CodeTooManyTopics) &&
			strings.Contains(l, "prefix event stream failed")
	})
	select {
	case inv := <-got:
		t.Errorf("got %+v; want nothing from a stream over its cap", inv)
	default:
	}
}

// listHookStore runs hook once, in List, after it read the list: as if
// a write landed between the listing of a prefix stream and its first
// frames.
type listHookStore struct {
	*statesync.MemoryStore
	hook atomic.Pointer[func()]
}

func (s *listHookStore) List(ctx context.Context) ([]statesync.Record, error) {
	recs, err := s.MemoryStore.List(ctx)
	if h := s.hook.Swap(nil); h != nil {
		(*h)()
	}
	return recs, err
}

// A write that lands while a prefix stream lists its topics (after the
// listing read the store, before the first frames are sent), to a topic
// the listing did not see and to one it saw at an older revision, is not
// missed: the stream is registered before it lists (as B-LIFE-06 has the
// engine's handler registered before its first refresh).
func TestEventsPrefixWriteDuringListing(t *testing.T) {
	store := &listHookStore{MemoryStore: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1})}
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := httpsync.NewHandler(src, hijackOpts(nil))
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer h.Close()
	s := &testServer{store: store.MemoryStore, src: src, h: h, ts: ts, hc: ts.Client()}
	old := s.put(t, "p:old", `1`)
	var during [2]statesync.Snapshot
	hook := func() {
		during[0], _ = src.Put(context.Background(), "p:new", []byte(`2`))
		during[1], _ = src.Put(context.Background(), "p:old", []byte(`3`))
	}
	store.hook.Store(&hook)
	st := s.openStream(t, "/v1/events?prefix=p:")
	got := map[string]statesync.Revision{}
	for got["p:new"] != during[0].Revision || got["p:old"] != during[1].Revision {
		inv := decodeInv(t, st.nextEvent(t))
		if prev, ok := got[inv.Topic]; ok && inv.Revision <= prev {
			t.Fatalf("frame %+v after revision %d of its topic", inv, prev)
		}
		got[inv.Topic] = inv.Revision
	}
	if during[0].Revision == 0 || during[1].Revision <= old.Revision {
		t.Fatalf("the writes during the listing: %+v", during)
	}
}
