package httpsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
