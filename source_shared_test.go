package statesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/statesync-go/statesync"
)

// remoteStore is a store shared with other processes, as a Source sees it:
// writes made through it or "elsewhere" (the embedded MemoryStore, which
// has no watchers here) reach the Source only when the test delivers them
// with announce, without data, as a PostgreSQL NOTIFY feed would. Get can
// be held at a gate, to pin reads in flight.
type remoteStore struct {
	*statesync.MemoryStore
	gets atomic.Int64

	mu   sync.Mutex
	fns  []func(statesync.Record)
	gate chan struct{} // non-nil: Get waits for it to close
	// entered receives a value each time a Get reaches the gate.
	entered chan struct{}
}

func newRemoteStore() *remoteStore {
	return &remoteStore{MemoryStore: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e1", FirstRevision: 1}),
		entered: make(chan struct{}, 1024)}
}

func (s *remoteStore) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	s.mu.Lock()
	s.fns = append(s.fns, fn)
	s.mu.Unlock()
	return func() {}, nil
}

func (s *remoteStore) Get(ctx context.Context, topic string) (statesync.Record, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	s.gets.Add(1)
	if gate != nil {
		s.entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return statesync.Record{}, ctx.Err()
		}
	}
	return s.MemoryStore.Get(ctx, topic)
}

// hold makes later Gets wait until the returned function is called.
func (s *remoteStore) hold() (release func()) {
	g := make(chan struct{})
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(g)
	}
}

// elsewhere writes data to topic as another process would: the Source
// hears nothing until announce.
func (s *remoteStore) elsewhere(t *testing.T, topic, data string) statesync.Record {
	t.Helper()
	rec, err := s.MemoryStore.Write(context.Background(), statesync.Write{Topic: topic, Data: json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// announce delivers rec to the Source as a feed without data does.
func (s *remoteStore) announce(rec statesync.Record) {
	rec.Data, rec.DataOmitted = nil, true
	s.deliver(rec)
}

func (s *remoteStore) deliver(rec statesync.Record) {
	s.mu.Lock()
	fns := slices.Clone(s.fns)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(rec)
	}
}

func newRemoteSource(t *testing.T) (*statesync.Source, *remoteStore) {
	t.Helper()
	st := newRemoteStore()
	src, err := statesync.NewSource(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src, st
}

func snapshotOf(t *testing.T, ctx context.Context, src *statesync.Source, topic string) statesync.Snapshot {
	t.Helper()
	snap, err := src.Snapshot(ctx, topic)
	if err != nil {
		t.Fatalf("Snapshot(%q): %v", topic, err)
	}
	return snap
}

// One store read per topic-revision, however many callers: 200 Snapshot
// calls after an announcement share one read.
func TestSourceSingleFlight(t *testing.T) { synctest.Test(t, testSourceSingleFlight) }

func testSourceSingleFlight(t *testing.T) {
	src, st := newRemoteSource(t)
	ctx := context.Background()
	st.announce(st.elsewhere(t, "t", `1`))
	release := st.hold()
	var wg sync.WaitGroup
	got := make([]statesync.Snapshot, 200)
	errs := make([]error, 200)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = src.Snapshot(ctx, "t") })
	}
	<-st.entered    // the first read is in flight
	synctest.Wait() // every other caller is waiting for it
	if n := src.Stats().StoreReads; n != 1 {
		t.Fatalf("store reads = %d while one was in flight, want 1", n)
	}
	release()
	wg.Wait()
	for i := range got {
		if errs[i] != nil || string(got[i].Data) != "1" {
			t.Fatalf("call %d: %v %s", i, errs[i], got[i].Data)
		}
	}
	if n := st.gets.Load(); n != 1 {
		t.Errorf("store reads = %d, want 1", n)
	}
	if n := src.Stats().StoreReads; n != 1 {
		t.Errorf("Stats().StoreReads = %d, want 1", n)
	}
	// Cached now: no more reads.
	snapshotOf(t, ctx, src, "t")
	if n := st.gets.Load(); n != 1 {
		t.Errorf("store reads after a cached Snapshot = %d, want 1", n)
	}
}

// A read that began before an announcement is not joined by callers that
// arrive after it, and its older result is not cached.
func TestSourceAnnouncementDetachesFlight(t *testing.T) {
	src, st := newRemoteSource(t)
	ctx := context.Background()
	st.announce(st.elsewhere(t, "t", `1`))
	release := st.hold()
	early := make(chan statesync.Snapshot, 1)
	go func() { early <- snapshotOf(t, ctx, src, "t") }()
	<-st.entered // the early read is at the gate; it will see revision 1
	r2 := st.elsewhere(t, "t", `2`)
	st.announce(r2)
	late := make(chan statesync.Snapshot, 1)
	go func() { late <- snapshotOf(t, ctx, src, "t") }()
	<-st.entered // the late caller began its own read
	release()
	if got := <-late; got.Revision != r2.Revision {
		t.Fatalf("caller after the announcement got revision %d, want %d", got.Revision, r2.Revision)
	}
	<-early
	// Whatever the early read returned, the cache holds the newest.
	if snap, ok := src.PeekSnapshot("t"); !ok || snap.Revision != r2.Revision {
		t.Fatalf("PeekSnapshot = %v %v, want revision %d", snap.Revision, ok, r2.Revision)
	}
}

// An early read that finishes after an announcement does not put its older
// record in the cache (the race the single flight must not open).
func TestSourceStaleReadNotCached(t *testing.T) {
	src, st := newRemoteSource(t)
	ctx := context.Background()
	r1 := st.elsewhere(t, "t", `1`)
	st.announce(r1)
	release := st.hold()
	done := make(chan statesync.Snapshot, 1)
	go func() { done <- snapshotOf(t, ctx, src, "t") }()
	<-st.entered
	// A newer revision is announced while the read waits (one the store
	// does not have yet: its commit is on its way); the read then returns
	// revision 1, which must not be cached as the newest.
	st.announce(statesync.Record{Topic: "t", Revision: r1.Revision + 5, Epoch: "e1"})
	release()
	if got := <-done; got.Revision != r1.Revision {
		t.Fatalf("early read got %d, want %d", got.Revision, r1.Revision)
	}
	if snap, ok := src.PeekSnapshot("t"); ok {
		t.Fatalf("PeekSnapshot holds revision %d after a newer announcement", snap.Revision)
	}
}

// Read-your-invalidation: the feed has not delivered a write made
// elsewhere; a Snapshot that asks for at least its revision reads through.
func TestSourceMinRevisionReadsThrough(t *testing.T) {
	src, st := newRemoteSource(t)
	ctx := context.Background()
	r1, err := src.Put(ctx, "t", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	r2 := st.elsewhere(t, "t", `2`) // not announced: the feed lags
	if got := snapshotOf(t, ctx, src, "t"); got.Revision != r1.Revision {
		t.Fatalf("without a minimum: revision %d, want the cached %d", got.Revision, r1.Revision)
	}
	got := snapshotOf(t, statesync.WithMinRevision(ctx, "e1", r2.Revision), src, "t")
	if got.Revision != r2.Revision || string(got.Data) != "2" {
		t.Fatalf("with minRevision %d: %d %s", r2.Revision, got.Revision, got.Data)
	}
	// The read refreshed the cache.
	if got := snapshotOf(t, ctx, src, "t"); got.Revision != r2.Revision {
		t.Fatalf("after the read-through: revision %d, want %d", got.Revision, r2.Revision)
	}
	// Another epoch than the cache's also reads through.
	before := st.gets.Load()
	got = snapshotOf(t, statesync.WithMinRevision(ctx, "other", 1), src, "t")
	if got.Revision != r2.Revision || st.gets.Load() != before+1 {
		t.Fatalf("minimum in another epoch: revision %d, reads %d→%d", got.Revision, before, st.gets.Load())
	}
	// A minimum the cache reaches costs no read.
	before = st.gets.Load()
	snapshotOf(t, statesync.WithMinRevision(ctx, "", r1.Revision), src, "t")
	if st.gets.Load() != before {
		t.Fatal("a minimum the cache reaches read the store")
	}
}

// A hostile client asking for revisions the store never had cannot make
// every request a store read: concurrent callers share reads, at most two
// rounds per caller.
func TestSourceMinRevisionBeyondStore(t *testing.T) {
	synctest.Test(t, testSourceMinRevisionBeyondStore)
}

func testSourceMinRevisionBeyondStore(t *testing.T) {
	src, st := newRemoteSource(t)
	ctx := context.Background()
	r1, err := src.Put(ctx, "t", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	release := st.hold()
	var wg sync.WaitGroup
	const callers = 100
	for i := range callers {
		wg.Go(func() {
			got, err := src.Snapshot(statesync.WithMinRevision(ctx, "", r1.Revision+statesync.Revision(1000+i)), "t")
			if err != nil || got.Revision != r1.Revision {
				t.Errorf("caller %d: %v %d", i, err, got.Revision)
			}
		})
	}
	<-st.entered
	synctest.Wait() // every caller waits for the read in flight
	release()
	wg.Wait()
	if n := st.gets.Load(); n > 3 {
		t.Errorf("%d callers asking beyond the store made %d reads, want at most 3", callers, n)
	}
}

// Reading names never written keeps nothing in memory, and a later write
// elsewhere is still seen.
func TestSourceNeverWrittenNotKept(t *testing.T) {
	src, st := newRemoteSource(t)
	ctx := context.Background()
	for i := range 100 {
		if got := snapshotOf(t, ctx, src, fmt.Sprintf("nobody-%d", i)); got.Revision != 0 {
			t.Fatalf("revision %d", got.Revision)
		}
	}
	if n := statesync.SourceStates(src); n != 0 {
		t.Fatalf("%d topic states kept after reading names never written", n)
	}
	r := st.elsewhere(t, "nobody-1", `1`)
	if got := snapshotOf(t, ctx, src, "nobody-1"); got.Revision != r.Revision {
		t.Fatalf("revision %d, want %d", got.Revision, r.Revision)
	}
}

// recorder collects the invalidations a Source emits.
type recorder struct {
	mu   sync.Mutex
	invs []statesync.Invalidation
}

func (r *recorder) add(inv statesync.Invalidation) {
	r.mu.Lock()
	r.invs = append(r.invs, inv)
	r.mu.Unlock()
}

// got returns the invalidations recorded, once the goroutines of the
// test's bubble (the resync) are blocked.
func (r *recorder) got() []statesync.Invalidation {
	synctest.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.invs)
}

func watchSource(t *testing.T, src *statesync.Source) *recorder {
	t.Helper()
	rec := &recorder{}
	stop, err := src.Watch(context.Background(), rec.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return rec
}

// A Resync record drops the cache at once and emits an invalidation for
// every topic whose revision changed while the feed was away, and for
// topics the source never knew.
func TestSourceResync(t *testing.T) { synctest.Test(t, testSourceResync) }

func testSourceResync(t *testing.T) {
	src, st := newRemoteSource(t)
	ctx := context.Background()
	a, err := src.Put(ctx, "a", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.Put(ctx, "b", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	// The feed reports both writes; then it misses what follows.
	st.announce(statesync.Record{Topic: "a", Revision: a.Revision, Epoch: a.Epoch})
	st.announce(statesync.Record{Topic: "b", Revision: b.Revision, Epoch: b.Epoch})
	w := watchSource(t, src)
	a2 := st.elsewhere(t, "a", `2`) // missed by the feed
	c := st.elsewhere(t, "c", `1`)  // a topic the source never knew
	st.deliver(statesync.Record{Resync: true})
	// At once, before the resync's list: nothing stale is served.
	if _, ok := src.PeekSnapshot("a"); ok {
		t.Fatal("PeekSnapshot still holds a after a Resync record")
	}
	if got := snapshotOf(t, ctx, src, "a"); got.Revision != a2.Revision {
		t.Fatalf("a after Resync: %d, want %d", got.Revision, a2.Revision)
	}
	got := w.got()
	want := map[string]statesync.Revision{"a": a2.Revision, "c": c.Revision}
	for _, inv := range got {
		if inv.Topic == "b" {
			t.Errorf("invalidation for b, which did not change: %+v", inv)
		}
		if w, ok := want[inv.Topic]; ok && inv.Revision == w {
			delete(want, inv.Topic)
		}
	}
	if len(want) != 0 {
		t.Fatalf("no invalidation for %v; got %+v", want, got)
	}
	if s := src.Stats(); s.Resyncs != 1 || s.ResyncChanged != 2 {
		t.Errorf("Stats = %+v, want 1 resync, 2 changed", s)
	}
	if got := snapshotOf(t, ctx, src, "b"); got.Revision != b.Revision {
		t.Fatalf("b: %d, want %d", got.Revision, b.Revision)
	}
}

// A store that lost its history (a new epoch, topics gone) makes the
// resync emit the new epoch for every topic the source knew.
func TestSourceResyncNewEpoch(t *testing.T) { synctest.Test(t, testSourceResyncNewEpoch) }

func testSourceResyncNewEpoch(t *testing.T) {
	st := newRemoteStore()
	src, err := statesync.NewSource(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	for _, topic := range []string{"kept", "lost"} {
		snap, err := src.Put(ctx, topic, json.RawMessage(`1`))
		if err != nil {
			t.Fatal(err)
		}
		st.announce(statesync.Record{Topic: topic, Revision: snap.Revision, Epoch: snap.Epoch})
	}
	w := watchSource(t, src)
	// The store is replaced by an emptier one with another epoch.
	fresh := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e2", FirstRevision: 1})
	if _, err := fresh.Write(ctx, statesync.Write{Topic: "kept", Data: json.RawMessage(`9`)}); err != nil {
		t.Fatal(err)
	}
	st.MemoryStore = fresh
	st.deliver(statesync.Record{Resync: true})
	got := w.got()
	for _, inv := range got {
		if inv.Epoch != "e2" {
			t.Errorf("invalidation in epoch %q, want e2: %+v", inv.Epoch, inv)
		}
	}
	if snap := snapshotOf(t, ctx, src, "lost"); snap.Epoch != "e2" || snap.Revision != 0 {
		t.Fatalf("lost topic: %+v", snap)
	}
}

// The engine asks its provider for at least the revision of the
// invalidation it acts on.
func TestConsumerSendsMinRevision(t *testing.T) {
	var mu sync.Mutex
	var asked []statesync.Revision
	rev := statesync.Revision(1)
	prov := statesync.ProviderFunc(func(ctx context.Context, topic string) (statesync.Snapshot, error) {
		_, min, ok := statesync.MinRevision(ctx)
		mu.Lock()
		if ok {
			asked = append(asked, min)
		} else {
			asked = append(asked, 0)
		}
		r := rev
		rev = 7
		mu.Unlock()
		return statesync.Snapshot{Revision: r, Data: json.RawMessage(`7`)}, nil
	})
	sub := statesync.SubscriberFunc(func(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
		return func() {}, nil
	})
	c, err := statesync.NewConsumer("t", sub, prov, statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil }), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Invalidate(statesync.Invalidation{Topic: "t", Revision: 7, Epoch: "e"})
	if err := c.Refresh(context.Background()); err != nil && !errors.Is(err, statesync.ErrStopped) {
		t.Fatal(err)
	}
	if c.Revision() != 7 {
		t.Fatalf("revision %d after the invalidation, want 7", c.Revision())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) < 2 || asked[0] != 0 || asked[1] != 7 {
		t.Fatalf("minimum revisions asked = %v, want [0 7 …] (start, then the invalidation's)", asked)
	}
}
