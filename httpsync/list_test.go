package httpsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
	"github.com/statesync-go/statesync/httpsync"
)

// listTokens are the tokens of the list tests.
const listTokens = `{"tokens": [
	{"token": "all", "read": ["*"]},
	{"token": "one", "read": ["settings"]},
	{"token": "none", "write": ["settings"]},
	{"token": "mixed", "read": ["cache:*", "cache:a*", "settings", "never", "cache:b", "gone"]}
]}`

// listNames returns the topics of GET /v1/topics as tok, and their
// revisions.
func listNames(t testing.TB, h http.Handler, tok string) string {
	t.Helper()
	r := httptest.NewRequest("GET", "/v1/topics", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var list struct {
		Topics []statesync.TopicInfo `json:"topics"`
	}
	if w.Code != 200 {
		t.Fatalf("GET /v1/topics as %s = %d %s", tok, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range list.Topics {
		names = append(names, fmt.Sprintf("%s@%v", ti.Topic, ti.Revision))
	}
	return strings.Join(names, " ")
}

// TestListByGrants pins issue 9 item 6: GET /v1/topics reads only the
// topics a token's read grants name, and the ranges of its prefixes; the
// list is the same as the whole list filtered, on a store that lists
// prefixes (boltstore) and on one that does not (MemoryStore).
func TestListByGrants(t *testing.T) {
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	memory := &countingStore{Store: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1})}
	stores := map[string]*countingStore{"boltstore": {Store: bolt}, "memory": memory}
	toks, err := httpsync.ParseTokens(strings.NewReader(listTokens))
	if err != nil {
		t.Fatal(err)
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			var st statesync.Store = store
			if _, ok := store.Store.(statesync.PrefixLister); ok {
				st = prefixStore{store}
			}
			src, err := statesync.NewSource(st, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			h := httpsync.NewHandler(src, &httpsync.HandlerOptions{Auth: toks})
			defer h.Close()
			ctx := context.Background()
			for _, topic := range []string{"cache:a", "cache:ab", "cache:b", "cachex", "cach", "settings", "secret", "gone", "cache:b"} {
				if _, err := src.Put(ctx, topic, json.RawMessage(`1`)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := src.Delete(ctx, "gone"); err != nil { // listed: written, now null
				t.Fatal(err)
			}
			// Scans of the whole list expected per token.
			scans := map[string]int32{"all": 1, "one": 0, "none": 0, "mixed": 0}
			if store == memory {
				scans["mixed"] = 1 // prefixes, and no PrefixLister
			}
			rev := func(topic string) string { return fmt.Sprintf("%s@%v", topic, mustGet(t, src, topic).Revision) }
			for tok, want := range map[string]string{
				"all":   strings.Join([]string{rev("cach"), rev("cache:a"), rev("cache:ab"), rev("cache:b"), rev("cachex"), rev("gone"), rev("secret"), rev("settings")}, " "),
				"one":   rev("settings"),
				"none":  "",
				"mixed": strings.Join([]string{rev("cache:a"), rev("cache:ab"), rev("cache:b"), rev("gone"), rev("settings")}, " "),
			} {
				before := store.lists.Load()
				if got := listNames(t, h, tok); got != want {
					t.Errorf("GET /v1/topics as %s = %q; want %q", tok, got, want)
				}
				if n := store.lists.Load() - before; n != scans[tok] {
					t.Errorf("GET /v1/topics as %s listed every topic %d times; want %d", tok, n, scans[tok])
				}
			}
		})
	}
}

// countingStore counts the calls of List.
type countingStore struct {
	statesync.Store
	lists atomic.Int32
}

func (s *countingStore) List(ctx context.Context) ([]statesync.Record, error) {
	s.lists.Add(1)
	return s.Store.List(ctx)
}

// prefixStore is a countingStore of a PrefixLister, and one itself.
type prefixStore struct{ *countingStore }

func (s prefixStore) ListPrefix(ctx context.Context, prefix string) ([]statesync.Record, error) {
	return s.Store.(statesync.PrefixLister).ListPrefix(ctx, prefix)
}

func mustGet(t testing.TB, src *statesync.Source, topic string) statesync.Snapshot {
	t.Helper()
	snap, err := src.Snapshot(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// BenchmarkListOneGrant measures GET /v1/topics on a bbolt store of 50,000
// topics for a token that reads one of them, and one that reads a prefix
// of 100, against one that reads every topic (issue 9 item 6).
func BenchmarkListOneGrant(b *testing.B) {
	const topics = 50000
	bolt, err := boltstore.Open(filepath.Join(b.TempDir(), "db"), &boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer bolt.Close()
	src, err := statesync.NewSource(bolt, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	for i := range topics {
		if _, err := src.Put(ctx, fmt.Sprintf("t:%05d", i), json.RawMessage(`{"v":1}`)); err != nil {
			b.Fatal(err)
		}
	}
	toks, err := httpsync.ParseTokens(strings.NewReader(`{"tokens": [
		{"token": "all", "read": ["*"]},
		{"token": "one", "read": ["t:04242"]},
		{"token": "prefix", "read": ["t:042*"]}
	]}`))
	if err != nil {
		b.Fatal(err)
	}
	h := httpsync.NewHandler(src, &httpsync.HandlerOptions{Auth: toks})
	defer h.Close()
	for _, tok := range []string{"one", "prefix", "all"} {
		b.Run(tok, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/v1/topics", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("GET /v1/topics = %d", w.Code)
				}
			}
		})
	}
}

// listCounter is a Store and PrefixLister that counts its listings.
type listCounter struct {
	*statesync.MemoryStore
	lists, prefixLists atomic.Int32
}

func (s *listCounter) List(ctx context.Context) ([]statesync.Record, error) {
	s.lists.Add(1)
	return s.MemoryStore.List(ctx)
}

func (s *listCounter) ListPrefix(ctx context.Context, prefix string) ([]statesync.Record, error) {
	s.prefixLists.Add(1)
	recs, err := s.MemoryStore.List(ctx) // a scan, as natsstore's is
	var out []statesync.Record
	for _, r := range recs {
		if strings.HasPrefix(r.Topic, prefix) {
			out = append(out, r)
		}
	}
	return out, err
}

// A request never makes more than 8 listings and reads of the store: a
// token with many grants (GET /v1/topics), or a stream with many prefixes,
// lists every topic once instead, with the same result. On a store whose
// prefix listing is a scan (natsstore), 64 prefixes would otherwise scan
// the store 64 times per request.
func TestListingsCapped(t *testing.T) {
	store := &listCounter{MemoryStore: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1})}
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var many, few []string
	for i := range 12 {
		many = append(many, fmt.Sprintf(`"p%d:*"`, i))
	}
	few = many[:3]
	toks, err := httpsync.ParseTokens(strings.NewReader(`{"tokens": [
		{"token": "many", "read": [` + strings.Join(many, ",") + `]},
		{"token": "eight", "read": [` + strings.Join(many[:8], ",") + `]},
		{"token": "mixed", "read": [` + strings.Join(many[:5], ",") + `, "p5:x", "p6:x", "p7:x", "p8:x"]},
		{"token": "few", "read": [` + strings.Join(few, ",") + `, "p5:x"]},
		{"token": "all", "read": ["*"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// 24 topics is what the stream of 12 prefixes below follows: a cap
	// reached is not a cap passed.
	h := httpsync.NewHandler(src, &httpsync.HandlerOptions{Auth: toks, MaxPrefixTopics: 24})
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer h.Close()
	s := &testServer{store: store.MemoryStore, src: src, h: h, ts: ts, hc: ts.Client()}
	for i := range 14 {
		for _, suffix := range []string{"x", "y"} {
			if _, err := src.Put(context.Background(), fmt.Sprintf("p%d:%s", i, suffix), json.RawMessage(`1`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts := func() (int32, int32) { return store.lists.Swap(0), store.prefixLists.Swap(0) }
	counts()

	under := func(n int) []string { // the topics of p0: … p<n-1>:, sorted
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("p%d:x", i), fmt.Sprintf("p%d:y", i))
		}
		slices.Sort(out)
		return out
	}
	want := under(12)
	names := func(tok string) string {
		got := listNames(t, h, tok)
		var out []string
		for f := range strings.FieldsSeq(got) {
			out = append(out, f[:strings.IndexByte(f, '@')])
		}
		return strings.Join(out, " ")
	}
	if got := names("many"); got != strings.Join(want, " ") {
		t.Errorf("GET /v1/topics as many = %q; want %q", got, strings.Join(want, " "))
	}
	if l, pl := counts(); l != 1 || pl != 0 {
		t.Errorf("GET /v1/topics with 12 prefix grants: %d listings of every topic, %d of a prefix; want 1 and 0", l, pl)
	}
	if got, w := names("few"), "p0:x p0:y p1:x p1:y p2:x p2:y p5:x"; got != w {
		t.Errorf("GET /v1/topics as few = %q; want %q", got, w)
	}
	if l, pl := counts(); l != 0 || pl != 3 {
		t.Errorf("GET /v1/topics with 3 prefix grants: %d listings of every topic, %d of a prefix; want 0 and 3", l, pl)
	}
	// The cap counts prefix grants and exact names together, and 8 is
	// within it.
	if got := names("eight"); got != strings.Join(under(8), " ") {
		t.Errorf("GET /v1/topics as eight = %q; want %q", got, strings.Join(under(8), " "))
	}
	if l, pl := counts(); l != 0 || pl != 8 {
		t.Errorf("GET /v1/topics with 8 prefix grants: %d listings of every topic, %d of a prefix; want 0 and 8", l, pl)
	}
	if got, w := names("mixed"), strings.Join(under(5), " ")+" p5:x p6:x p7:x p8:x"; got != w {
		t.Errorf("GET /v1/topics as mixed = %q; want %q", got, w)
	}
	if l, pl := counts(); l != 1 || pl != 0 {
		t.Errorf("GET /v1/topics with 5 prefix grants and 4 names: %d listings of every topic, %d of a prefix; want 1 and 0", l, pl)
	}

	// Streams: the first frames of each, and the store listings they
	// took (one of every topic, and of a prefix).
	prefixes := func(order ...int) string {
		var q []string
		for _, i := range order {
			q = append(q, fmt.Sprintf("prefix=p%d:", i))
		}
		return strings.Join(q, "&")
	}
	upTo := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	for _, c := range []struct {
		tok, query string
		want       []string
		l, pl      int32
	}{
		{"many", prefixes(upTo(12)...), want, 1, 0},
		{"all", prefixes(upTo(3)...), under(3), 0, 3},
		// One stream prefix, listed through the token's grants under it:
		// 3 ranges and a name for few, 8 ranges for eight (within the
		// cap), past the cap for many.
		{"few", "prefix=p", append(under(3), "p5:x"), 0, 3},
		{"eight", "prefix=p", under(8), 0, 8},
		{"many", "prefix=p", want, 1, 0},
		// Prefixes given in reverse order: the first frames still come
		// sorted.
		{"all", prefixes(2, 1, 0), under(3), 0, 3},
		{"all", prefixes(upTo(9)...), under(9), 1, 0},
	} {
		st := s.openStream(t, "/v1/events?"+c.query, bearer(c.tok)...)
		var got []string
		for len(got) < len(c.want) {
			got = append(got, decodeInv(t, st.nextEvent(t)).Topic)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("stream of %s as %s: %q; want %q", c.query, c.tok, got, c.want)
		}
		if l, pl := counts(); l != c.l || pl != c.pl {
			t.Errorf("stream of %s as %s: %d listings of every topic, %d of a prefix; want %d and %d", c.query, c.tok, l, pl, c.l, c.pl)
		}
	}
}
