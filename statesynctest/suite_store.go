package statesynctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync"
)

// TestStore checks that the stores made by newStore keep the contract of
// [statesync.Store], in subtests:
//
//   - Get of a topic never written returns revision 0, Data "null" and the
//     store's epoch, without error;
//   - every Write gives the topic a revision greater than any it had and
//     returns the committed record, which Get then returns;
//   - data is copied: a caller changing its buffer after Write changes
//     nothing stored or returned;
//   - conditional writes succeed only at the expected revision (0 for a
//     topic never written); otherwise they write nothing and return a
//     *[statesync.ConflictError] carrying the current revision;
//   - List returns the written topics sorted, with their revision and
//     epoch and without data;
//   - Watch reports each committed write after the commit (a Get from
//     inside the callback sees the new revision), and once stop has
//     returned the callback is not called again;
//   - concurrent writers get unique revisions, increasing for each writer,
//     and compare-and-set loops lose no update;
//   - a store that is an [io.Closer] returns [statesync.ErrClosed] after
//     Close.
//
// newStore is called once per subtest and must register its own cleanup
// with t.Cleanup. Stores shared by several tests (a database) may return a
// handle on the same storage each time: the suite writes only to topics
// named for this run and ignores the others. Each Watch callback calls Get
// on the store, as the contract allows.
func TestStore(t *testing.T, newStore func(t *testing.T) statesync.Store) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, s statesync.Store)
	}{
		{"GetNeverWritten", testStoreGetNeverWritten},
		{"WriteBumpsRevision", testStoreWriteBumpsRevision},
		{"Delete", testStoreDelete},
		{"DataCopied", testStoreDataCopied},
		{"LargeValue", testStoreLargeValue},
		{"ConditionalWrite", testStoreConditionalWrite},
		{"CanceledContext", testStoreCanceledContext},
		{"List", testStoreList},
		{"TopicNames", testStoreTopicNames},
		{"Watch", testStoreWatch},
		{"WatchStop", testStoreWatchStop},
		{"ConcurrentWriters", testStoreConcurrentWriters},
		{"ConcurrentCompareAndSet", func(t *testing.T, s statesync.Store) {
			casCounter(t, []statesync.Store{s}, 8, 25)
		}},
		{"Close", testStoreClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tt.f(t, s)
		})
	}
}

// TestSharedStore checks a store shared by several processes (a database,
// a KV service) through two handles a and b on the same storage, as two
// daemons would hold: a write through a is seen by b's Get and b's Watch,
// both handles report the same epoch, compare-and-set works across them,
// and b's List includes a's topics. Run [TestStore] on one handle as well.
//
// newPair is called once per subtest and must register its own cleanup.
func TestSharedStore(t *testing.T, newPair func(t *testing.T) (a, b statesync.Store)) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, a, b statesync.Store)
	}{
		{"WriteSeenByOther", testSharedWriteSeen},
		{"ConditionalAcross", testSharedConditional},
		{"ConcurrentCompareAndSet", func(t *testing.T, a, b statesync.Store) {
			casCounter(t, []statesync.Store{a, b}, 8, 25)
		}},
		{"ListAcross", testSharedList},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newPair(t)
			if a == nil || b == nil {
				t.Fatal("newPair returned a nil store")
			}
			tt.f(t, a, b)
		})
	}
}

func mustWrite(t testing.TB, ctx context.Context, s statesync.Store, w statesync.Write) statesync.Record {
	t.Helper()
	rec, err := s.Write(ctx, w)
	if err != nil {
		t.Fatalf("Write(%q, %s) error: %v", w.Topic, w.Data, err)
	}
	return rec
}

func mustGet(t testing.TB, ctx context.Context, s statesync.Store, topic string) statesync.Record {
	t.Helper()
	rec, err := s.Get(ctx, topic)
	if err != nil {
		t.Fatalf("Get(%q) error: %v", topic, err)
	}
	return rec
}

// checkRecord compares the fields of got that a store must keep with want.
func checkRecord(t testing.TB, op string, got, want statesync.Record) {
	t.Helper()
	if got.Topic != want.Topic {
		t.Errorf("%s.Topic = %q; want %q", op, got.Topic, want.Topic)
	}
	if got.Revision != want.Revision {
		t.Errorf("%s.Revision = %d; want %d", op, got.Revision, want.Revision)
	}
	if got.Epoch != want.Epoch {
		t.Errorf("%s.Epoch = %q; want %q", op, got.Epoch, want.Epoch)
	}
	if !got.DataOmitted && !jsonEqual(got.Data, want.Data) {
		t.Errorf("%s.Data = %s; want %s", op, got.Data, want.Data)
	}
	if got.SourceID != want.SourceID {
		t.Errorf("%s.SourceID = %q; want %q", op, got.SourceID, want.SourceID)
	}
}

// A topic never written reads as revision 0 and null.
func testStoreGetNeverWritten(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "never")
	rec := mustGet(t, ctx, s, topic)
	if rec.Revision != 0 {
		t.Errorf("Get(%q).Revision = %d; want 0", topic, rec.Revision)
	}
	if string(rec.Data) != "null" {
		t.Errorf("Get(%q).Data = %q; want %q", topic, rec.Data, "null")
	}
	if rec.Topic != topic {
		t.Errorf("Get(%q).Topic = %q; want %q", topic, rec.Topic, topic)
	}
	other := mustWrite(t, ctx, s, statesync.Write{Topic: newTopic(t, "other"), Data: json.RawMessage(`1`)})
	if rec.Epoch != other.Epoch {
		t.Errorf("Get(%q).Epoch = %q; want the store's epoch %q (that of a write)", topic, rec.Epoch, other.Epoch)
	}
	// Reading does not create the topic.
	if again := mustGet(t, ctx, s, topic); again.Revision != 0 {
		t.Errorf("second Get(%q).Revision = %d; want 0", topic, again.Revision)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List() error: %v", err)
	}
	for _, r := range list {
		if r.Topic == topic {
			t.Errorf("List() includes %q, which was only read", topic)
		}
	}
}

// Each write bumps the revision; the committed record is what
// Write returns and Get reads.
func testStoreWriteBumpsRevision(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "bump")
	var prev statesync.Revision
	var epoch string
	for i := range 5 {
		data := json.RawMessage(fmt.Sprintf(`{"i":%d,"s":"v%d"}`, i, i))
		rec := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: data, SourceID: "writer-1"})
		if i == 0 {
			epoch = rec.Epoch
			if rec.Revision == 0 {
				t.Errorf("first Write(%q).Revision = 0; want > 0", topic)
			}
		}
		if i > 0 && rec.Revision <= prev {
			t.Errorf("Write #%d (%q).Revision = %d; want > %d", i+1, topic, rec.Revision, prev)
		}
		want := statesync.Record{Topic: topic, Revision: rec.Revision, Epoch: epoch, Data: data, SourceID: "writer-1"}
		checkRecord(t, fmt.Sprintf("Write #%d (%q)", i+1, topic), rec, want)
		checkRecord(t, fmt.Sprintf("Get(%q) after write #%d", topic, i+1), mustGet(t, ctx, s, topic), want)
		prev = rec.Revision
	}
	// IfRevision is ignored unless Conditional is set.
	rec := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`"x"`), IfRevision: prev + 1000})
	if rec.Revision <= prev {
		t.Errorf("unconditional Write with IfRevision set: Revision = %d; want > %d", rec.Revision, prev)
	}
}

// Deleting writes null at a new revision: revisions never go back.
func testStoreDelete(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "delete")
	r1 := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`{"a":1}`)})
	for _, data := range []json.RawMessage{nil, json.RawMessage("null")} {
		rec := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: data})
		if rec.Revision <= r1.Revision {
			t.Errorf("Write(%q, %q).Revision = %d; want > %d", topic, data, rec.Revision, r1.Revision)
		}
		if string(rec.Data) != "null" {
			t.Errorf("Write(%q, %q).Data = %q; want %q", topic, data, rec.Data, "null")
		}
		got := mustGet(t, ctx, s, topic)
		if got.Revision != rec.Revision || string(got.Data) != "null" {
			t.Errorf("Get(%q) after deletion = revision %d, data %q; want revision %d, data %q", topic, got.Revision, got.Data, rec.Revision, "null")
		}
		r1 = rec
	}
}

// The store keeps its own copy of the data.
func testStoreDataCopied(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "copy")
	var (
		mu      sync.Mutex
		watched []statesync.Record
		sig     signal
	)
	stop, err := s.Watch(ctx, func(r statesync.Record) {
		if r.Topic != topic {
			return
		}
		mu.Lock()
		watched = append(watched, r)
		mu.Unlock()
		sig.fire()
	})
	if err != nil {
		t.Fatalf("Watch() error: %v", err)
	}
	defer stop()

	buf := []byte(`{"k":"original"}`)
	rec := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: buf})
	waitFor(t, &sig, "the watch record of the write", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(watched) > 0
	}, nil)
	copy(buf, `{"k":"CHANGED!"}`)

	want := json.RawMessage(`{"k":"original"}`)
	if !jsonEqual(rec.Data, want) {
		t.Errorf("record returned by Write(%q).Data = %s after the caller changed its buffer; want %s", topic, rec.Data, want)
	}
	if got := mustGet(t, ctx, s, topic); !jsonEqual(got.Data, want) {
		t.Errorf("Get(%q).Data = %s after the caller changed its buffer; want %s", topic, got.Data, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, w := range watched {
		if !w.DataOmitted && !jsonEqual(w.Data, want) {
			t.Errorf("watched record of %q: Data = %s after the caller changed its buffer; want %s", topic, w.Data, want)
		}
	}
}

// Values of a few hundred KiB round-trip (the daemon accepts 1 MiB bodies).
func testStoreLargeValue(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "large")
	items := make([]int, 1000)
	for i := range items {
		items[i] = i * 2
	}
	data, _ := json.Marshal(map[string]any{"items": items, "pad": strings.Repeat("x", 256<<10)})
	rec := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: data})
	got := mustGet(t, ctx, s, topic)
	if got.Revision != rec.Revision || !jsonEqual(got.Data, data) {
		t.Errorf("Get(%q) of a %d-byte value = revision %d, %d bytes (equal: %v); want revision %d and the same value",
			topic, len(data), got.Revision, len(got.Data), jsonEqual(got.Data, data), rec.Revision)
	}
}

// wantConflict checks that err is a *ConflictError for topic with the given
// expected and current revisions.
func wantConflict(t testing.TB, op string, err error, topic string, expected, current statesync.Revision, epoch string) {
	t.Helper()
	if !errors.Is(err, statesync.ErrConflict) {
		t.Errorf("%s error = %v; want an error wrapping ErrConflict", op, err)
		return
	}
	var ce *statesync.ConflictError
	if !errors.As(err, &ce) {
		t.Errorf("%s error = %T %v; want a *statesync.ConflictError", op, err, err)
		return
	}
	if ce.Topic != topic || ce.Expected != expected || ce.Current != current {
		t.Errorf("%s error = ConflictError{Topic: %q, Expected: %d, Current: %d}; want {Topic: %q, Expected: %d, Current: %d}",
			op, ce.Topic, ce.Expected, ce.Current, topic, expected, current)
	}
	if epoch != "" && ce.Epoch != epoch {
		t.Errorf("%s error: ConflictError.Epoch = %q; want the store's epoch %q", op, ce.Epoch, epoch)
	}
}

// Compare-and-set writes: IfRevision must match; a mismatch writes nothing,
// reports nothing to watchers and says what the current revision is.
func testStoreConditionalWrite(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "cas")
	w := newStoreWatcher(t, s, topic, false)
	rejected := json.RawMessage(`"rejected"`)

	_, err := s.Write(ctx, statesync.Write{Topic: topic, Data: rejected, IfRevision: 5, Conditional: true})
	wantConflict(t, fmt.Sprintf("Write(%q, IfRevision 5) on a new topic", topic), err, topic, 5, 0, "")
	if got := mustGet(t, ctx, s, topic); got.Revision != 0 {
		t.Errorf("Get(%q).Revision = %d after a rejected write; want 0", topic, got.Revision)
	}

	r1 := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`"v1"`), IfRevision: 0, Conditional: true})
	if r1.Revision == 0 {
		t.Fatalf("Write(%q, IfRevision 0).Revision = 0; want > 0", topic)
	}
	_, err = s.Write(ctx, statesync.Write{Topic: topic, Data: rejected, IfRevision: 0, Conditional: true})
	wantConflict(t, fmt.Sprintf("second Write(%q, IfRevision 0)", topic), err, topic, 0, r1.Revision, r1.Epoch)

	r2 := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`"v2"`), IfRevision: r1.Revision, Conditional: true})
	if r2.Revision <= r1.Revision {
		t.Errorf("Write(%q, IfRevision %d).Revision = %d; want > %d", topic, r1.Revision, r2.Revision, r1.Revision)
	}
	_, err = s.Write(ctx, statesync.Write{Topic: topic, Data: rejected, IfRevision: r1.Revision, Conditional: true})
	wantConflict(t, fmt.Sprintf("stale Write(%q, IfRevision %d)", topic, r1.Revision), err, topic, r1.Revision, r2.Revision, r1.Epoch)
	_, err = s.Write(ctx, statesync.Write{Topic: topic, Data: rejected, IfRevision: r2.Revision + 1, Conditional: true})
	wantConflict(t, fmt.Sprintf("future Write(%q, IfRevision %d)", topic, r2.Revision+1), err, topic, r2.Revision+1, r2.Revision, r1.Epoch)

	got := mustGet(t, ctx, s, topic)
	if got.Revision != r2.Revision || !jsonEqual(got.Data, json.RawMessage(`"v2"`)) {
		t.Errorf("Get(%q) after rejected writes = revision %d, data %s; want revision %d, data %q", topic, got.Revision, got.Data, r2.Revision, "v2")
	}

	// A later write is the barrier: once the watcher has seen it, it has
	// seen everything before it, and must not have seen a rejected write.
	r3 := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`"v3"`)})
	w.waitRevisions(t, r1.Revision, r2.Revision, r3.Revision)
	for _, r := range w.records() {
		if r.Revision != r1.Revision && r.Revision != r2.Revision && r.Revision != r3.Revision {
			t.Errorf("watcher saw revision %d of %q; want only the committed %d, %d, %d", r.Revision, topic, r1.Revision, r2.Revision, r3.Revision)
		}
		if !r.DataOmitted && jsonEqual(r.Data, rejected) {
			t.Errorf("watcher saw the data of a rejected write at revision %d", r.Revision)
		}
	}
}

// A write whose context has ended fails and stores nothing.
func testStoreCanceledContext(t *testing.T, s statesync.Store) {
	topic := newTopic(t, "canceled")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)}); err == nil {
		t.Errorf("Write(%q) with a canceled context: error = nil; want an error", topic)
	}
	if got := mustGet(t, opContext(t), s, topic); got.Revision != 0 {
		t.Errorf("Get(%q).Revision = %d after a canceled write; want 0", topic, got.Revision)
	}
}

// List: written topics (deleted ones included), sorted, without data.
func testStoreList(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	prefix := newTopic(t, "list")
	ta, tb, tc, td := prefix+".a", prefix+".b", prefix+".c", prefix+".d"
	mustWrite(t, ctx, s, statesync.Write{Topic: tb, Data: json.RawMessage(`"b"`)})
	mustWrite(t, ctx, s, statesync.Write{Topic: ta, Data: json.RawMessage(`"a1"`)})
	ra := mustWrite(t, ctx, s, statesync.Write{Topic: ta, Data: json.RawMessage(`"a2"`)})
	rb := mustGet(t, ctx, s, tb)
	mustWrite(t, ctx, s, statesync.Write{Topic: tc, Data: json.RawMessage(`"c"`)})
	rc := mustWrite(t, ctx, s, statesync.Write{Topic: tc}) // deleted, still listed
	mustGet(t, ctx, s, td)                                 // read only: not listed

	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List() error: %v", err)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Topic >= list[i].Topic {
			t.Errorf("List()[%d].Topic = %q, then [%d].Topic = %q; want strictly ascending topics", i-1, list[i-1].Topic, i, list[i].Topic)
		}
	}
	var ours []statesync.Record
	for _, r := range list {
		if strings.HasPrefix(r.Topic, prefix+".") {
			ours = append(ours, r)
		}
		if len(r.Data) != 0 {
			t.Errorf("List() record %q has Data %q; want none", r.Topic, r.Data)
		}
	}
	want := []statesync.Record{ra, rb, rc}
	if len(ours) != len(want) {
		var names []string
		for _, r := range ours {
			names = append(names, r.Topic)
		}
		t.Fatalf("List() topics under %q = %q; want %q", prefix, names, []string{ta, tb, tc})
	}
	for i, w := range want {
		if g := ours[i]; g.Topic != w.Topic || g.Revision != w.Revision || g.Epoch != w.Epoch {
			t.Errorf("List() entry %d = {%q, %d, %q}; want {%q, %d, %q}", i, g.Topic, g.Revision, g.Epoch, w.Topic, w.Revision, w.Epoch)
		}
	}
}

// A storeWatcher records the records of some topics (and the Resync records) a Store's Watch reports,
// and, if get is set, what the store's Get returned from inside the callback.
type storeWatcher struct {
	store  statesync.Store
	topics map[string]bool // the topics reported, besides those under prefix
	prefix string          // "": none
	get    bool
	stop   func()
	sig    signal

	mu      sync.Mutex // protects the fields below
	recs    []statesync.Record
	gets    []getResult
	resync  int  // Resync records seen
	stopped bool // set once stop has returned
	late    int  // calls after stop returned
}

type getResult struct {
	rec statesync.Record
	got statesync.Record
	err error
}

// newStoreWatcher watches s for the records of topics; stop is called at
// cleanup.
func newStoreWatcher(t testing.TB, s statesync.Store, topic string, get bool, more ...string) *storeWatcher {
	t.Helper()
	w := &storeWatcher{store: s, topics: map[string]bool{topic: true}, get: get}
	for _, m := range more {
		w.topics[m] = true
	}
	return newStoreWatcherOf(t, s, w)
}

// newStoreWatcherOf makes w watch s; stop is called at cleanup.
func newStoreWatcherOf(t testing.TB, s statesync.Store, w *storeWatcher) *storeWatcher {
	t.Helper()
	stop, err := s.Watch(context.Background(), w.call)
	if err != nil {
		t.Fatalf("Watch() error: %v", err)
	}
	if stop == nil {
		t.Fatal("Watch() returned a nil stop function")
	}
	w.stop = stop
	t.Cleanup(w.stopNow)
	return w
}

func (w *storeWatcher) call(r statesync.Record) {
	if r.Resync {
		w.mu.Lock()
		w.resync++
		w.mu.Unlock()
		w.sig.fire()
		return
	}
	if !w.topics[r.Topic] && (w.prefix == "" || !strings.HasPrefix(r.Topic, w.prefix)) {
		return
	}
	var g getResult
	if w.get {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		got, err := w.store.Get(ctx, r.Topic)
		cancel()
		g = getResult{rec: r, got: got, err: err}
	}
	w.mu.Lock()
	if w.stopped {
		w.late++
	}
	w.recs = append(w.recs, r)
	if w.get {
		w.gets = append(w.gets, g)
	}
	w.mu.Unlock()
	w.sig.fire()
}

// stopNow calls stop (idempotent) and marks the watcher stopped.
func (w *storeWatcher) stopNow() {
	w.stop()
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

func (w *storeWatcher) records() []statesync.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.recs)
}

// resyncs returns the number of Resync records seen.
func (w *storeWatcher) resyncs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.resync
}

func (w *storeWatcher) lateCalls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.late
}

func (w *storeWatcher) seen(topic string, rev statesync.Revision) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.recs {
		if r.Topic == topic && r.Revision == rev {
			return true
		}
	}
	return false
}

// waitRevisions waits until the watcher has seen revs of its (single) topic.
func (w *storeWatcher) waitRevisions(t testing.TB, revs ...statesync.Revision) bool {
	t.Helper()
	var topic string
	for k := range w.topics {
		topic = k
	}
	return w.waitCommitted(t, topicRevs(topic, revs...))
}

type topicRev struct {
	topic string
	rev   statesync.Revision
}

func topicRevs(topic string, revs ...statesync.Revision) []topicRev {
	out := make([]topicRev, len(revs))
	for i, r := range revs {
		out[i] = topicRev{topic, r}
	}
	return out
}

// A SupersedingStore is a [statesync.Store] whose change feed may skip a
// revision that a later write of the same topic replaced before the feed
// read it, as a feed that reads a log keeping only the last revision of
// each topic does (a NATS JetStream key-value bucket with history 1). It
// then reports the later revision. Consumers lose nothing by it, since
// they act on a topic's latest revision; where the suites wait for a
// watcher to report a revision, they accept a later revision of the same
// topic instead when FeedSkipsSuperseded returns true.
type SupersedingStore interface {
	statesync.Store
	FeedSkipsSuperseded() bool
}

// skipsSuperseded reports whether s is a SupersedingStore that says so.
func skipsSuperseded(s statesync.Store) bool {
	ss, ok := s.(SupersedingStore)
	return ok && ss.FeedSkipsSuperseded()
}

// seenOrSuperseded reports whether the watcher has seen topic at rev or,
// if its store may skip superseded revisions, at a later revision.
func (w *storeWatcher) seenOrSuperseded(topic string, rev statesync.Revision) bool {
	if !skipsSuperseded(w.store) {
		return w.seen(topic, rev)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.recs {
		if r.Topic == topic && r.Revision >= rev {
			return true
		}
	}
	return false
}

func (w *storeWatcher) waitCommitted(t testing.TB, want []topicRev) bool {
	t.Helper()
	missing := func() []topicRev {
		var m []topicRev
		for _, tr := range want {
			if !w.seenOrSuperseded(tr.topic, tr.rev) {
				m = append(m, tr)
			}
		}
		return m
	}
	return waitFor(t, &w.sig, fmt.Sprintf("Watch to report %d committed writes", len(want)),
		func() bool { return len(missing()) == 0 },
		func() string { return fmt.Sprintf("missing (topic, revision): %v", missing()) })
}

// Watch reports every committed write, after the commit, with its fields.
func testStoreWatch(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	t1, t2 := newTopic(t, "watch"), newTopic(t, "watch")
	w1 := newStoreWatcher(t, s, t1, true, t2)
	w2 := newStoreWatcher(t, s, t1, false, t2)

	var committed []statesync.Record
	for i := range 3 {
		committed = append(committed, mustWrite(t, ctx, s, statesync.Write{Topic: t1, Data: json.RawMessage(strconv.Itoa(i)), SourceID: "w1"}))
	}
	committed = append(committed, mustWrite(t, ctx, s, statesync.Write{Topic: t2, Data: json.RawMessage(`{"x":[1,2]}`)}))
	committed = append(committed, mustWrite(t, ctx, s, statesync.Write{Topic: t1, SourceID: "w2"}))

	var want []topicRev
	byKey := map[topicRev]statesync.Record{}
	for _, r := range committed {
		k := topicRev{r.Topic, r.Revision}
		want = append(want, k)
		byKey[k] = r
	}
	for i, w := range []*storeWatcher{w1, w2} {
		if !w.waitCommitted(t, want) {
			continue
		}
		for _, r := range w.records() {
			c, ok := byKey[topicRev{r.Topic, r.Revision}]
			if !ok {
				t.Errorf("watcher %d saw (%q, %d), which no write committed", i+1, r.Topic, r.Revision)
				continue
			}
			if r.DataOmitted && r.Data != nil {
				t.Errorf("watcher %d: record (%q, %d) has DataOmitted and Data %q; want nil Data", i+1, r.Topic, r.Revision, r.Data)
			}
			checkRecord(t, fmt.Sprintf("watched record (%q, %d)", r.Topic, r.Revision), r, c)
		}
	}
	// The callback runs after the commit.
	w1.mu.Lock()
	gets := slices.Clone(w1.gets)
	w1.mu.Unlock()
	for _, g := range gets {
		switch {
		case g.err != nil:
			t.Errorf("Get(%q) from inside the Watch callback of revision %d: error %v", g.rec.Topic, g.rec.Revision, g.err)
		case g.got.Revision < g.rec.Revision:
			t.Errorf("Get(%q) from inside the Watch callback of revision %d = revision %d; want >= %d (the write must be committed before it is reported)",
				g.rec.Topic, g.rec.Revision, g.got.Revision, g.rec.Revision)
		}
	}
}

// Once stop has returned the callback is not called again; stop is
// idempotent and leaves the other watchers alone.
func testStoreWatchStop(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "stop")
	a := newStoreWatcher(t, s, topic, false)
	b := newStoreWatcher(t, s, topic, false)
	r1 := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	a.waitRevisions(t, r1.Revision)
	b.waitRevisions(t, r1.Revision)

	a.stopNow()
	a.stopNow() // idempotent
	r2 := mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
	b.waitRevisions(t, r2.Revision)
	if n := a.lateCalls(); n != 0 {
		t.Errorf("stopped watcher was called %d times after stop returned; want 0", n)
	}
	if a.seen(topic, r2.Revision) {
		t.Errorf("stopped watcher saw revision %d, written after stop returned", r2.Revision)
	}

	// Stop while another goroutine writes: nothing is reported after stop
	// returns, whatever the interleaving.
	c := newStoreWatcher(t, s, topic, false)
	var last atomic.Uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			rec, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(strconv.Itoa(i))})
			if err != nil {
				t.Errorf("Write(%q) error: %v", topic, err)
				return
			}
			last.Store(uint64(rec.Revision))
		}
	})
	waitFor(t, &c.sig, "the first write during the stop test", func() bool { return len(c.records()) > 0 }, nil)
	c.stopNow()
	wg.Wait()
	b.waitRevisions(t, statesync.Revision(last.Load()))
	if n := c.lateCalls(); n != 0 {
		t.Errorf("watcher stopped during writes was called %d times after stop returned; want 0", n)
	}
}

// Concurrent unconditional writers: unique revisions, increasing for each
// writer, every one reported to watchers, the last one readable.
func testStoreConcurrentWriters(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "concurrent")
	w := newStoreWatcher(t, s, topic, false)
	const writers, writes = 8, 25
	revs := make([][]statesync.Revision, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range writes {
				rec, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))})
				if err != nil {
					t.Errorf("writer %d: Write(%q) error: %v", g, topic, err)
					return
				}
				revs[g] = append(revs[g], rec.Revision)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[statesync.Revision]int{}
	var all []statesync.Revision
	var maxRev statesync.Revision
	maxWriter := -1
	for g, rs := range revs {
		for i, r := range rs {
			if i > 0 && r <= rs[i-1] {
				t.Errorf("writer %d: write %d got revision %d after %d; want increasing", g, i+1, r, rs[i-1])
			}
			if prev, dup := seen[r]; dup {
				t.Errorf("revision %d given to writers %d and %d; want unique revisions", r, prev, g)
			}
			seen[r] = g
			all = append(all, r)
			if r > maxRev {
				maxRev, maxWriter = r, g
			}
		}
	}
	got := mustGet(t, ctx, s, topic)
	if got.Revision != maxRev {
		t.Errorf("Get(%q).Revision = %d after concurrent writes; want the highest written, %d", topic, got.Revision, maxRev)
	}
	wantData := json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d}`, maxWriter, writes-1))
	if !jsonEqual(got.Data, wantData) {
		t.Errorf("Get(%q).Data = %s; want %s, the data of revision %d", topic, got.Data, wantData, maxRev)
	}
	w.waitRevisions(t, all...)
}

// casCounter runs goroutines that increment a counter with
// compare-and-set loops through stores (one or several handles on the same
// storage): no update may be lost, and the successful writes, in revision
// order, must count 1, 2, 3, ...
func casCounter(t *testing.T, stores []statesync.Store, goroutines, increments int) {
	ctx := opContext(t)
	topic := newTopic(t, "counter")
	type success struct {
		rev statesync.Revision
		n   int
	}
	results := make([][]success, goroutines)
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		s := stores[g%len(stores)]
		wg.Go(func() {
			<-start
			for range increments {
				for attempt := 0; ; attempt++ {
					if attempt > 100*goroutines {
						t.Errorf("goroutine %d: no successful compare-and-set after %d attempts", g, attempt)
						return
					}
					cur, err := s.Get(ctx, topic)
					if err != nil {
						t.Errorf("goroutine %d: Get(%q) error: %v", g, topic, err)
						return
					}
					var v struct{ N int }
					if !isNullData(cur.Data) {
						if err := json.Unmarshal(cur.Data, &v); err != nil {
							t.Errorf("goroutine %d: Get(%q).Data = %s: %v", g, topic, cur.Data, err)
							return
						}
					}
					runtime.Gosched() // widen the window between read and write
					rec, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1)),
						IfRevision: cur.Revision, Conditional: true})
					if errors.Is(err, statesync.ErrConflict) {
						var ce *statesync.ConflictError
						if !errors.As(err, &ce) {
							t.Errorf("goroutine %d: conflict error %T is not a *ConflictError", g, err)
							return
						}
						conflicts.Add(1)
						continue
					}
					if err != nil {
						t.Errorf("goroutine %d: conditional Write(%q) error: %v", g, topic, err)
						return
					}
					if rec.Revision <= cur.Revision {
						t.Errorf("goroutine %d: Write(%q, IfRevision %d).Revision = %d; want > %d", g, topic, cur.Revision, rec.Revision, cur.Revision)
					}
					results[g] = append(results[g], success{rec.Revision, v.N + 1})
					break
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	var all []success
	for _, rs := range results {
		all = append(all, rs...)
	}
	slices.SortFunc(all, func(a, b success) int { return a.rev.Compare(b.rev) })
	for i, s := range all {
		if s.n != i+1 {
			t.Errorf("successful write %d (revision %d) set the counter to %d; want %d (an update was lost or duplicated)", i+1, s.rev, s.n, i+1)
			break
		}
		if i > 0 && s.rev == all[i-1].rev {
			t.Errorf("revision %d was given to two successful writes", s.rev)
		}
	}
	want := goroutines * increments
	for i, s := range stores {
		got := mustGet(t, ctx, s, topic)
		if !jsonEqual(got.Data, json.RawMessage(fmt.Sprintf(`{"n":%d}`, want))) {
			t.Errorf("store %d: Get(%q).Data = %s after %d×%d increments; want {\"n\":%d}", i, topic, got.Data, goroutines, increments, want)
		}
	}
	t.Logf("%d increments, %d conflicts retried", want, conflicts.Load())
}

// A store that can be closed returns ErrClosed afterwards (documented on
// statesync.ErrClosed); Close is idempotent.
func testStoreClose(t *testing.T, s statesync.Store) {
	c, ok := s.(io.Closer)
	if !ok {
		t.Skip("store is not an io.Closer")
	}
	ctx := opContext(t)
	topic := newTopic(t, "closed")
	mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	if err := c.Close(); err != nil {
		t.Fatalf("Close() error: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close() error: %v; want nil", err)
	}
	if _, err := s.Get(ctx, topic); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Get(%q) after Close: error = %v; want ErrClosed", topic, err)
	}
	if _, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)}); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Write(%q) after Close: error = %v; want ErrClosed", topic, err)
	}
	if _, err := s.List(ctx); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("List() after Close: error = %v; want ErrClosed", err)
	}
	if stop, err := s.Watch(ctx, func(statesync.Record) {}); !errors.Is(err, statesync.ErrClosed) {
		if stop != nil {
			stop()
		}
		t.Errorf("Watch() after Close: error = %v; want ErrClosed", err)
	}
}

// A write on node A invalidates node B.
func testSharedWriteSeen(t *testing.T, a, b statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "shared")
	wb := newStoreWatcher(t, b, topic, true)
	r1 := mustWrite(t, ctx, a, statesync.Write{Topic: topic, Data: json.RawMessage(`{"from":"a"}`), SourceID: "node-a"})
	checkRecord(t, fmt.Sprintf("b.Get(%q) after a.Write", topic), mustGet(t, ctx, b, topic), r1)
	if !wb.waitRevisions(t, r1.Revision) {
		return
	}
	for _, r := range wb.records() {
		checkRecord(t, fmt.Sprintf("b's watched record of a's write (%q)", topic), r, r1)
	}
	wb.mu.Lock()
	gets := slices.Clone(wb.gets)
	wb.mu.Unlock()
	for _, g := range gets {
		if g.err != nil || g.got.Revision < g.rec.Revision {
			t.Errorf("b.Get(%q) from inside b's Watch callback of revision %d = revision %d, error %v; want >= %d", topic, g.rec.Revision, g.got.Revision, g.err, g.rec.Revision)
		}
	}
	never := newTopic(t, "never")
	ea, eb := mustGet(t, ctx, a, never).Epoch, mustGet(t, ctx, b, never).Epoch
	if ea != eb || ea != r1.Epoch {
		t.Errorf("epochs: a.Get = %q, b.Get = %q, a.Write = %q; want one epoch for one storage", ea, eb, r1.Epoch)
	}
}

func testSharedConditional(t *testing.T, a, b statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "shared-cas")
	r1 := mustWrite(t, ctx, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`), Conditional: true})
	r2 := mustWrite(t, ctx, b, statesync.Write{Topic: topic, Data: json.RawMessage(`2`), IfRevision: r1.Revision, Conditional: true})
	_, err := a.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`3`), IfRevision: r1.Revision, Conditional: true})
	wantConflict(t, fmt.Sprintf("a.Write(%q, IfRevision %d) after b's write", topic, r1.Revision), err, topic, r1.Revision, r2.Revision, r1.Epoch)
	if got := mustGet(t, ctx, a, topic); got.Revision != r2.Revision || !jsonEqual(got.Data, json.RawMessage(`2`)) {
		t.Errorf("a.Get(%q) = revision %d, data %s; want revision %d, data 2", topic, got.Revision, got.Data, r2.Revision)
	}
}

func testSharedList(t *testing.T, a, b statesync.Store) {
	ctx := opContext(t)
	topic := newTopic(t, "shared-list")
	r := mustWrite(t, ctx, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	list, err := b.List(ctx)
	if err != nil {
		t.Fatalf("b.List() error: %v", err)
	}
	for _, l := range list {
		if l.Topic == topic {
			if l.Revision != r.Revision {
				t.Errorf("b.List() entry %q has revision %d; want %d", topic, l.Revision, r.Revision)
			}
			return
		}
	}
	t.Errorf("b.List() does not include %q, written through a", topic)
}

// awkwardTopics returns topic names under base that break naive key
// schemes: URL, glob, LIKE and key-hash-tag characters, separators,
// non-ASCII (two normalisations of one word: distinct topics), and a name
// of exactly [statesync.MaxTopicLen] bytes.
func awkwardTopics(base string) []string {
	names := []string{
		" space", "/slash", "/a/../b", "%2F", "%", "%_", "_", "*", "a*", "?", "[x]", "{tag}", ">", "|=evil|=x", "|",
		"=2E", ".", "caf\u00e9", "cafe\u0301", "\u65e5\u672c", "\U0001F642", "\\", "\\*", "\"", "'", "+", "#frag", "&a=b",
		"\u00a0nbsp", "zw\u200dj", "\U0010FFFF", "\ufeff", "<b>",
	}
	out := make([]string, 0, len(names)+1)
	for _, n := range names {
		out = append(out, base+n)
	}
	long := base + "~" + strings.Repeat("\u00e9", (statesync.MaxTopicLen-len(base)-1)/2)
	long += strings.Repeat("x", statesync.MaxTopicLen-len(long))
	return append(out, long)
}

// Topic names are any UTF-8 without control characters (docs/PROTOCOL.md):
// each is stored and read back under exactly its own name, listed in byte
// order, found by ListPrefix for every prefix it starts with (also
// prefixes holding '%', '_', '*', '[' or ending inside a character), and
// reported by Watch under its name.
func testStoreTopicNames(t *testing.T, s statesync.Store) {
	ctx := opContext(t)
	base := newTopic(t, "names")
	topics := awkwardTopics(base)
	w := newStoreWatcherOf(t, s, &storeWatcher{store: s, topics: map[string]bool{}, prefix: base})
	want := map[string]statesync.Revision{}
	for _, topic := range topics {
		if err := statesync.CheckTopic(topic); err != nil {
			t.Fatalf("statesynctest: %v", err)
		}
		data, _ := json.Marshal(topic)
		want[topic] = mustWrite(t, ctx, s, statesync.Write{Topic: topic, Data: data, SourceID: "src|" + topic}).Revision
	}
	for _, topic := range topics {
		got := mustGet(t, ctx, s, topic)
		data, _ := json.Marshal(topic)
		if got.Topic != topic || got.Revision != want[topic] || !jsonEqual(got.Data, data) || got.SourceID != "src|"+topic {
			t.Errorf("Get(%q) = {%q, %d, %s, source %q}; want {%q, %d, %s, source %q}", topic, got.Topic, got.Revision, got.Data, got.SourceID,
				topic, want[topic], data, "src|"+topic)
		}
	}
	sorted := slices.Clone(topics)
	slices.Sort(sorted) // byte order
	under := func(list []statesync.Record, prefix string) []string {
		var names []string
		for _, r := range list {
			if strings.HasPrefix(r.Topic, prefix) {
				names = append(names, r.Topic)
			}
		}
		return names
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List() error: %v", err)
	}
	if got := under(list, base); !slices.Equal(got, sorted) {
		t.Errorf("List() topics under %q = %q; want %q", base, got, sorted)
	}
	if pl, ok := s.(statesync.PrefixLister); ok {
		for _, p := range []string{"", "%", "%_", "_", "*", "a*", "[", "{", "|", "\\", "caf", "caf\u00e9", "caf\xc3", "cafe", "\U0010FFFF", "~", ".", "/a/.."} {
			prefix := base + p
			var wantNames []string
			for _, n := range sorted {
				if strings.HasPrefix(n, prefix) {
					wantNames = append(wantNames, n)
				}
			}
			got, err := pl.ListPrefix(ctx, prefix)
			if err != nil {
				t.Errorf("ListPrefix(%q) error: %v", prefix, err)
				continue
			}
			var names []string
			for _, r := range got {
				names = append(names, r.Topic)
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("ListPrefix(%q) = %q; want %q", prefix, names, wantNames)
			}
		}
	}
	eventually(t, waitTimeout, "Watch to report every topic under its name", func() (bool, string) {
		seen := map[string]statesync.Revision{}
		for _, r := range w.records() {
			seen[r.Topic] = max(seen[r.Topic], r.Revision)
		}
		for _, topic := range topics {
			if seen[topic] != want[topic] {
				return false, fmt.Sprintf("topic %q at revision %d; want %d", topic, seen[topic], want[topic])
			}
		}
		if len(seen) != len(topics) {
			return false, fmt.Sprintf("%d topics seen; want %d", len(seen), len(topics))
		}
		return true, ""
	})
}
