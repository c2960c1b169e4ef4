package httpsync_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/poll"
)

// laggingStore is a MemoryStore whose change feed delivers nothing while
// held: the Source over it keeps its older memory of the topics written
// meanwhile, as a daemon does whose feed from a shared store lags.
type laggingStore struct {
	*statesync.MemoryStore
	mu   sync.Mutex
	held bool
}

func (s *laggingStore) hold(b bool) {
	s.mu.Lock()
	s.held = b
	s.mu.Unlock()
}

func (s *laggingStore) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	return s.MemoryStore.Watch(ctx, func(r statesync.Record) {
		s.mu.Lock()
		held := s.held
		s.mu.Unlock()
		if !held {
			fn(r)
		}
	})
}

// lagServer is a Handler over a Source over a laggingStore, sharing mem
// with whoever else writes it (another daemon).
type lagServer struct {
	store *laggingStore
	src   *statesync.Source
	h     *httpsync.Handler
}

func newLagServer(t *testing.T, mem *statesync.MemoryStore) *lagServer {
	t.Helper()
	ls := &laggingStore{MemoryStore: mem}
	src, err := statesync.NewSource(ls, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := httpsync.NewHandler(src, nil)
	t.Cleanup(func() { h.Close(); src.Close() })
	return &lagServer{store: ls, src: src, h: h}
}

// getSnap makes a GET on h and decodes the 200 snapshot.
func getSnap(t *testing.T, h http.Handler, target string, hdr ...string) (*httptest.ResponseRecorder, statesync.Snapshot) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var snap statesync.Snapshot
	if rec.Code == http.StatusOK {
		s, err := statesync.DecodeSnapshot(rec.Body.Bytes())
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		snap = s
	}
	return rec, snap
}

// TestGetMinRevisionReadsThrough: a daemon whose feed lags still answers a
// GET with minRevision=N with revision N or later, read from the store
// (issue 11: read-your-invalidation behind a load balancer), with its
// ETag; an If-None-Match naming its older revision gets the newer one.
func TestGetMinRevisionReadsThrough(t *testing.T) {
	ctx := context.Background()
	mem := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "ep1", FirstRevision: 1})
	b := newLagServer(t, mem)
	w1, err := mem.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`{"v":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	rec, old := getSnap(t, b.h, "/v1/topics/t")
	if rec.Code != 200 || old.Revision != w1.Revision {
		t.Fatalf("first GET = %d rev %d; want 200 rev %d", rec.Code, old.Revision, w1.Revision)
	}
	oldTag := rec.Header().Get("ETag")

	b.store.hold(true) // the write below reaches the store, not b's memory
	w2, err := mem.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`{"v":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	q := "?minRevision=" + w2.Revision.String() + "&epoch=" + url.QueryEscape(w2.Epoch)
	rec, got := getSnap(t, b.h, "/v1/topics/t"+q, "If-None-Match", oldTag)
	if rec.Code != 200 || got.Revision != w2.Revision || string(got.Data) != `{"v":2}` {
		t.Fatalf("GET %s (If-None-Match %s) = %d rev %d %s; want 200 rev %d {\"v\":2}", q, oldTag, rec.Code, got.Revision, got.Data, w2.Revision)
	}
	if tag := rec.Header().Get("ETag"); tag != `"ep1.`+w2.Revision.String()+`"` {
		t.Errorf("ETag %s; want that of revision %d", tag, w2.Revision)
	}
	// Without an epoch too; and the encoding cache never serves older.
	rec, got = getSnap(t, b.h, "/v1/topics/t?minRevision="+w2.Revision.String())
	if rec.Code != 200 || got.Revision < w2.Revision {
		t.Fatalf("GET without epoch = %d rev %d; want 200 rev >= %d", rec.Code, got.Revision, w2.Revision)
	}
	// A revision the store does not have yet: the latest it has.
	rec, got = getSnap(t, b.h, "/v1/topics/t?minRevision="+statesync.MaxRevision.String()+"&epoch=ep1")
	if rec.Code != 200 || got.Revision != w2.Revision {
		t.Fatalf("GET of a future revision = %d rev %d; want 200 rev %d", rec.Code, got.Revision, w2.Revision)
	}
}

// TestGetMinRevisionBadParameters: minRevision and epoch are checked; a
// bad value is 400 invalid_parameter, and minRevision=0 asks nothing.
func TestGetMinRevisionBadParameters(t *testing.T) {
	mem := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "ep1", FirstRevision: 1})
	b := newLagServer(t, mem)
	for _, q := range []string{
		"minRevision=", "minRevision=-1", "minRevision=007", "minRevision=1.5", "minRevision=%201",
		"minRevision=18446744073709551616", "minRevision=99999999999999999999999",
		"minRevision=1&minRevision=2", "epoch=ep1", "minRevision=1&epoch=", "minRevision=1&epoch=a%22b",
		"minRevision=1&epoch=a%20b", "minRevision=1&epoch=%00", "minRevision=1&epoch=%C3%A9",
		"minRevision=1&epoch=" + strings.Repeat("e", 257), "minRevision=1&epoch=a&epoch=b",
	} {
		rec, _ := getSnap(t, b.h, "/v1/topics/t?"+q)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("GET ?%s = %d; want 400", q, rec.Code)
			continue
		}
		if e := decodeError(t, rec.Body.Bytes()); e.Error.Code != httpsync.CodeInvalidParameter {
			t.Errorf("GET ?%s: code %q; want %q", q, e.Error.Code, httpsync.CodeInvalidParameter)
		}
	}
	for _, q := range []string{"minRevision=0", "minRevision=0&epoch=x", "minRevision=18446744073709551615",
		"minRevision=1&epoch=" + strings.Repeat("e", 256), "other=1", "minRevision=3&epoch=a.b-c_d~!"} {
		if rec, _ := getSnap(t, b.h, "/v1/topics/t?"+q); rec.Code != http.StatusOK {
			t.Errorf("GET ?%s = %d %s; want 200", q, rec.Code, rec.Body)
		}
	}
}

// balancer sends writes to one handler and reads to the other, as a load
// balancer may, and records the reads' queries.
type balancer struct {
	write, read http.Handler
	mu          sync.Mutex
	queries     []string
}

func (lb *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		lb.mu.Lock()
		lb.queries = append(lb.queries, r.URL.RawQuery)
		lb.mu.Unlock()
		lb.read.ServeHTTP(w, r)
		return
	}
	lb.write.ServeHTTP(w, r)
}

func (lb *balancer) lastQuery() url.Values {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if len(lb.queries) == 0 {
		return nil
	}
	v, _ := url.ParseQuery(lb.queries[len(lb.queries)-1])
	return v
}

// TestClientReadsItsWritesAcrossDaemons: a Client's write lands on daemon
// A and its next read on daemon B, whose feed lags; the read asks for at
// least the written revision and gets it, over B's cached older ETag.
// The revision a context carries (the engine's invalidation) is sent too.
func TestClientReadsItsWritesAcrossDaemons(t *testing.T) {
	ctx := context.Background()
	mem := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "ep1", FirstRevision: 1})
	a, b := newLagServer(t, mem), newLagServer(t, mem)
	lb := &balancer{write: a.h, read: b.h}
	ts := httptest.NewServer(lb)
	t.Cleanup(ts.Close)
	c, err := httpsync.NewClient(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	w1, err := c.Put(ctx, "t", json.RawMessage(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	s1, err := c.Snapshot(ctx, "t") // caches B's ETag for revision 1
	if err != nil || s1.Revision != w1.Revision {
		t.Fatalf("Snapshot = rev %d, %v; want %d", s1.Revision, err, w1.Revision)
	}
	if q := lb.lastQuery(); q.Get("minRevision") != w1.Revision.String() || q.Get("epoch") != "ep1" {
		t.Errorf("the read after a write sent %v; want minRevision=%d&epoch=ep1", q, w1.Revision)
	}

	b.store.hold(true)
	w2, err := c.Put(ctx, "t", json.RawMessage(`{"v":2}`))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := c.Snapshot(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if s2.Revision != w2.Revision || string(s2.Data) != `{"v":2}` {
		t.Errorf("Snapshot after a write through A = rev %d %s; want rev %d {\"v\":2}", s2.Revision, s2.Data, w2.Revision)
	}

	// A third writer (another client, on another daemon) writes; this
	// client learns of it by an invalidation, which the engine passes in
	// the context.
	w3, err := mem.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`{"v":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	s3, err := c.Snapshot(statesync.WithMinRevision(ctx, w3.Epoch, w3.Revision), "t")
	if err != nil {
		t.Fatal(err)
	}
	if s3.Revision != w3.Revision {
		t.Errorf("Snapshot with MinRevision %d = rev %d", w3.Revision, s3.Revision)
	}
	if q := lb.lastQuery(); q.Get("minRevision") != w3.Revision.String() || q.Get("epoch") != "ep1" {
		t.Errorf("a read with MinRevision in its context sent %v; want minRevision=%d&epoch=ep1", q, w3.Revision)
	}
	// A lower MinRevision than the client's own write: the write wins.
	if _, err := c.Snapshot(statesync.WithMinRevision(ctx, "ep1", 1), "t"); err != nil {
		t.Fatal(err)
	}
	if q := lb.lastQuery(); q.Get("minRevision") != w2.Revision.String() {
		t.Errorf("a read with a MinRevision below the client's write sent %v; want minRevision=%d", q, w2.Revision)
	}
	// A refused compare-and-set: the next read asks for at least the
	// current revision it reported.
	w4, err := mem.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`{"v":4}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutIf(ctx, "t", json.RawMessage(`{"v":5}`), w3.Revision); err == nil {
		t.Fatal("PutIf at an old revision succeeded")
	}
	if _, err := c.Snapshot(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if q := lb.lastQuery(); q.Get("minRevision") != w4.Revision.String() || q.Get("epoch") != "ep1" {
		t.Errorf("the read after a refused PutIf sent %v; want minRevision=%d&epoch=ep1", q, w4.Revision)
	}
	// A topic never written nor announced: no parameters.
	if _, err := c.Snapshot(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if q := lb.lastQuery(); len(q) != 0 {
		t.Errorf("a read of a topic never written sent %v; want no query", q)
	}
}

// TestConsumerBehindBalancerNeverStale: a consumer hears of changes on
// daemon A's stream and fetches from daemon B, whose feed delivers
// nothing: each fetch asks for the revision of the invalidation it acts
// on (the engine's MinRevision, sent by the Client), so B reads its store
// and the consumer reaches every revision written.
func TestConsumerBehindBalancerNeverStale(t *testing.T) {
	ctx := context.Background()
	mem := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "ep1", FirstRevision: 1})
	a, b := newLagServer(t, mem), newLagServer(t, mem)
	b.store.hold(true)
	mux := http.NewServeMux()
	mux.Handle("/v1/events", a.h)
	mux.Handle("/", &balancer{write: a.h, read: b.h})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	c, err := httpsync.NewClient(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := b.src.Snapshot(ctx, "t"); err != nil { // B remembers revision 0
		t.Fatal(err)
	}
	con, rec := startConsumer(t, c, "t", nil)
	var last statesync.Record
	for i := range 5 {
		last, err = mem.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`{"i":` + string(rune('0'+i)) + `}`)})
		if err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "the consumer reaches revision "+last.Revision.String()+" though B's feed is held", func() bool {
			return con.Revision() == last.Revision
		})
	}
	if err := rec.increasing(); err != nil {
		t.Error(err)
	}
}

// TestClientInlineBelowMinRevision: an inline snapshot older than the
// revision a Snapshot call asks for is not returned: the client makes a
// GET, which asks the server for that revision.
func TestClientInlineBelowMinRevision(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Inline: 1024})
	w := s.put(t, "small", `{"v":1}`)
	startConsumer(t, c, "small", nil)
	poll.Until(t, "the inline snapshot", func() bool {
		got, ok := c.PeekSnapshot("small")
		return ok && got.Revision == w.Revision
	})
	ctx := context.Background()
	// A GET is answered 200, or 304 when the client holds the ETag of an
	// earlier GET (the consumer's Start may have made one before the
	// stream's inline frame came).
	served := func() uint64 { st := s.h.Stats(); return st.SnapshotGets + st.NotModified }
	gets := served()
	if got, err := c.Snapshot(statesync.WithMinRevision(ctx, w.Epoch, w.Revision), "small"); err != nil || got.Revision != w.Revision {
		t.Fatalf("Snapshot at the inline revision = %d, %v; want %d", got.Revision, err, w.Revision)
	}
	if n := served() - gets; n != 0 {
		t.Errorf("%d GETs for a MinRevision the inline snapshot meets; want 0", n)
	}
	if _, err := c.Snapshot(statesync.WithMinRevision(ctx, w.Epoch, w.Revision+1), "small"); err != nil {
		t.Fatal(err)
	}
	if n := served() - gets; n != 1 {
		t.Errorf("%d GETs for a MinRevision above the inline snapshot; want 1", n)
	}
}
