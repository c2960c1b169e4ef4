package statesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// srcNew returns a Source over a new MemoryStore made with opts (revisions
// from 1 and epoch "ep" unless opts says otherwise); both are closed at
// cleanup.
func srcNew(t testing.TB, opts *statesync.MemoryStoreOptions) (*statesync.Source, *statesync.MemoryStore) {
	t.Helper()
	if opts == nil {
		opts = &statesync.MemoryStoreOptions{FirstRevision: 1, Epoch: "ep"}
	}
	store := statesync.NewMemoryStore(opts)
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatalf("NewSource error: %v", err)
	}
	t.Cleanup(func() {
		src.Close()
		store.Close()
	})
	return src, store
}

// srcWatcher records the invalidations a Source emits and, for each, what
// the Source and its store return from inside the callback.
type srcWatcher struct {
	mu        sync.Mutex
	invs      []statesync.Invalidation
	srcGets   []statesync.Snapshot
	storeGets []statesync.Record
}

func srcWatch(t testing.TB, src *statesync.Source) *srcWatcher {
	w := &srcWatcher{}
	stop, err := src.Watch(context.Background(), func(inv statesync.Invalidation) {
		snap, _ := src.Snapshot(context.Background(), inv.Topic)
		rec, _ := src.Store().Get(context.Background(), inv.Topic)
		w.mu.Lock()
		w.invs = append(w.invs, inv)
		w.srcGets = append(w.srcGets, snap)
		w.storeGets = append(w.storeGets, rec)
		w.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return w
}

func (w *srcWatcher) all() []statesync.Invalidation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.invs)
}

func (w *srcWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.invs)
}

func srcPut(t testing.TB, src *statesync.Source, topic, data string) statesync.Snapshot {
	t.Helper()
	s, err := src.Put(context.Background(), topic, json.RawMessage(data))
	if err != nil {
		t.Fatalf("Put(%q, %s) error: %v", topic, data, err)
	}
	return s
}

func srcGet(t testing.TB, src *statesync.Source, topic string) statesync.Snapshot {
	t.Helper()
	s, err := src.Snapshot(context.Background(), topic)
	if err != nil {
		t.Fatalf("Get(%q) error: %v", topic, err)
	}
	return s
}

func srcWantSnap(t testing.TB, op string, got statesync.Snapshot, rev statesync.Revision, epoch, data string) {
	t.Helper()
	if got.Revision != rev || got.Epoch != epoch || string(got.Data) != data {
		t.Errorf("%s = {%d, %q, %s}; want {%d, %q, %s}", op, got.Revision, got.Epoch, got.Data, rev, epoch, data)
	}
}

func TestSourceNilStore(t *testing.T) {
	if _, err := statesync.NewSource(nil, nil); !errors.Is(err, statesync.ErrMissingDependency) {
		t.Errorf("NewSource(nil) error = %v; want ErrMissingDependency", err)
	}
}

// B-TRANS-08: each write bumps the revision by exactly 1 (MemoryStore) and
// the invalidation follows the commit.
func TestSourcePut(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	src, _ := srcNew(t, &statesync.MemoryStoreOptions{FirstRevision: 1, Epoch: "ep", Now: func() time.Time { return now }})
	w := srcWatch(t, src)

	srcWantSnap(t, `Put("settings", {"theme":"dark"})`, srcPut(t, src, "settings", `{"theme":"dark"}`), 1, "ep", `{"theme":"dark"}`)
	srcWantSnap(t, `Put("settings", {"theme":"light"})`, srcPut(t, src, "settings", `{"theme":"light"}`), 2, "ep", `{"theme":"light"}`)
	srcWantSnap(t, `Get("settings")`, srcGet(t, src, "settings"), 2, "ep", `{"theme":"light"}`)
	srcWantSnap(t, `Snapshot("settings")`, func() statesync.Snapshot {
		s, err := src.Snapshot(context.Background(), "settings")
		if err != nil {
			t.Fatalf("Snapshot error: %v", err)
		}
		return s
	}(), 2, "ep", `{"theme":"light"}`)
	srcWantSnap(t, `Put("settings", nil)`, func() statesync.Snapshot {
		s, err := src.Put(context.Background(), "settings", nil)
		if err != nil {
			t.Fatalf("Put(nil) error: %v", err)
		}
		return s
	}(), 3, "ep", `null`)

	want := []statesync.Invalidation{
		{Topic: "settings", Revision: 1, Epoch: "ep", TimestampMs: now.UnixMilli()},
		{Topic: "settings", Revision: 2, Epoch: "ep", TimestampMs: now.UnixMilli()},
		{Topic: "settings", Revision: 3, Epoch: "ep", TimestampMs: now.UnixMilli()},
	}
	if got := w.all(); !slices.Equal(got, want) {
		t.Errorf("invalidations = %+v; want %+v", got, want)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, inv := range w.invs {
		if w.srcGets[i].Revision != inv.Revision || w.storeGets[i].Revision != inv.Revision {
			t.Errorf("inside the invalidation of revision %d: Source.Snapshot = %d, Store.Get = %d; want %d (emitted after commit)",
				inv.Revision, w.srcGets[i].Revision, w.storeGets[i].Revision, inv.Revision)
		}
	}
}

// PeekSnapshot returns what Get would, without the store, for the topics
// the source holds; nothing for others, and nothing once closed.
func TestSourcePeekSnapshot(t *testing.T) {
	src, store := srcNew(t, nil)
	if _, ok := src.PeekSnapshot("settings"); ok {
		t.Error("PeekSnapshot of a topic never written nor read = ok; want not at hand")
	}
	srcPut(t, src, "settings", `{"theme":"dark"}`)
	got, ok := src.PeekSnapshot("settings")
	if !ok {
		t.Fatal("PeekSnapshot after Put = not at hand; want the written snapshot")
	}
	srcWantSnap(t, `PeekSnapshot("settings")`, got, 1, "ep", `{"theme":"dark"}`)
	// A topic written behind the source's back is read from the store by
	// Get, then held.
	if _, err := store.Write(context.Background(), statesync.Write{Topic: "other", Data: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	srcGet(t, src, "other")
	if got, ok := src.PeekSnapshot("other"); !ok || string(got.Data) != `1` {
		t.Errorf("PeekSnapshot after Get = %s, %v; want 1, true", got.Data, ok)
	}
	src.Close()
	if _, ok := src.PeekSnapshot("settings"); ok {
		t.Error("PeekSnapshot after Close = ok; want not at hand")
	}
}

// B-STORE-18: the source keeps its own copy of the data.
func TestSourcePutCopiesData(t *testing.T) {
	src, _ := srcNew(t, nil)
	buf := []byte(`{"k":"original"}`)
	if _, err := src.Put(context.Background(), "t", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, `{"k":"CHANGED!"}`)
	srcWantSnap(t, `Get("t")`, srcGet(t, src, "t"), 1, "ep", `{"k":"original"}`)
}

// PutIf: compare-and-set; a conflict writes nothing and emits nothing.
func TestSourcePutIf(t *testing.T) {
	src, _ := srcNew(t, nil)
	w := srcWatch(t, src)
	ctx := context.Background()

	s, err := src.PutIf(ctx, "doc", json.RawMessage(`"v1"`), 0)
	if err != nil {
		t.Fatalf("PutIf(doc, 0) on a new topic error: %v", err)
	}
	srcWantSnap(t, "PutIf(doc, 0)", s, 1, "ep", `"v1"`)

	cases := []struct {
		ifRev   statesync.Revision
		current statesync.Revision
	}{{0, 1}, {2, 1}, {7, 1}}
	for _, c := range cases {
		_, err := src.PutIf(ctx, "doc", json.RawMessage(`"rejected"`), c.ifRev)
		var ce *statesync.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, statesync.ErrConflict) {
			t.Fatalf("PutIf(doc, %d) error = %v; want a *ConflictError wrapping ErrConflict", c.ifRev, err)
		}
		if *ce != (statesync.ConflictError{Topic: "doc", Expected: c.ifRev, Current: c.current, Epoch: "ep"}) {
			t.Errorf("PutIf(doc, %d) error = %+v; want {doc, Expected %d, Current %d, ep}", c.ifRev, *ce, c.ifRev, c.current)
		}
	}
	srcWantSnap(t, "Get(doc) after conflicts", srcGet(t, src, "doc"), 1, "ep", `"v1"`)
	if n := w.count(); n != 1 {
		t.Errorf("%d invalidations after 1 write and 3 conflicts; want 1", n)
	}

	s, err = src.PutIf(ctx, "doc", json.RawMessage(`"v2"`), 1)
	if err != nil {
		t.Fatalf("PutIf(doc, 1) error: %v", err)
	}
	srcWantSnap(t, "PutIf(doc, 1)", s, 2, "ep", `"v2"`)

	_, err = src.PutIf(ctx, "other", json.RawMessage(`1`), 3)
	var ce *statesync.ConflictError
	if !errors.As(err, &ce) || ce.Current != 0 {
		t.Errorf("PutIf(other, 3) on a new topic error = %v; want a conflict with Current 0", err)
	}
	if s := srcGet(t, src, "other"); s.Revision != 0 {
		t.Errorf("Get(other).Revision = %d after a rejected PutIf; want 0", s.Revision)
	}
}

// Delete writes null at a new revision: revisions never go back.
func TestSourceDelete(t *testing.T) {
	src, _ := srcNew(t, nil)
	w := srcWatch(t, src)
	srcPut(t, src, "doc", `{"a":1}`)
	s, err := src.Delete(context.Background(), "doc")
	if err != nil {
		t.Fatalf("Delete(doc) error: %v", err)
	}
	srcWantSnap(t, "Delete(doc)", s, 2, "ep", "null")
	srcWantSnap(t, "Get(doc) after Delete", srcGet(t, src, "doc"), 2, "ep", "null")
	if invs := w.all(); len(invs) != 2 || invs[1].Revision != 2 {
		t.Errorf("invalidations = %+v; want the deletion at revision 2", invs)
	}
	// Deleting a topic never written still moves it forward.
	s, err = src.Delete(context.Background(), "never")
	if err != nil || s.Revision != 1 || string(s.Data) != "null" {
		t.Errorf("Delete(never) = %+v, %v; want revision 1, null", s, err)
	}
	if list, _ := src.List(context.Background()); len(list) != 2 {
		t.Errorf("List() = %+v; want both deleted topics listed", list)
	}
}

func srcIncrement(cur statesync.Snapshot) (json.RawMessage, error) {
	var v struct{ N int }
	if string(cur.Data) != "null" {
		if err := json.Unmarshal(cur.Data, &v); err != nil {
			return nil, err
		}
	}
	return json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1)), nil
}

// Update is compare-and-set: N goroutines incrementing a counter lose no
// update, and each write is one revision.
func TestSourceUpdateContention(t *testing.T) {
	src, _ := srcNew(t, nil)
	w := srcWatch(t, src)
	const goroutines, increments = 16, 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range goroutines {
		wg.Go(func() {
			<-start
			for range increments {
				if _, err := src.Update(context.Background(), "counter", srcIncrement); err != nil {
					t.Errorf("Update(counter) error: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	const total = goroutines * increments
	srcWantSnap(t, "Get(counter)", srcGet(t, src, "counter"), total, "ep", fmt.Sprintf(`{"n":%d}`, total))
	invs := w.all()
	if len(invs) != total {
		t.Fatalf("%d invalidations; want %d, one per successful update", len(invs), total)
	}
	seen := map[statesync.Revision]bool{}
	for _, inv := range invs {
		if seen[inv.Revision] {
			t.Errorf("revision %d emitted twice", inv.Revision)
		}
		seen[inv.Revision] = true
	}
}

func TestSourceUpdate(t *testing.T) {
	ctx := context.Background()
	t.Run("NewTopic", func(t *testing.T) {
		src, _ := srcNew(t, nil)
		var got statesync.Snapshot
		s, err := src.Update(ctx, "t", func(cur statesync.Snapshot) (json.RawMessage, error) {
			got = cur
			return json.RawMessage(`1`), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		srcWantSnap(t, "Update's view of a new topic", got, 0, "ep", "null")
		srcWantSnap(t, "Update(t)", s, 1, "ep", "1")
	})
	t.Run("FnError", func(t *testing.T) {
		src, _ := srcNew(t, nil)
		w := srcWatch(t, src)
		boom := errors.New("boom")
		if _, err := src.Update(ctx, "t", func(statesync.Snapshot) (json.RawMessage, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Errorf("Update error = %v; want fn's error as is", err)
		}
		if s := srcGet(t, src, "t"); s.Revision != 0 || w.count() != 0 {
			t.Errorf("after a failed Update: Get(t).Revision = %d, %d invalidations; want 0, 0", s.Revision, w.count())
		}
	})
	t.Run("InvalidJSON", func(t *testing.T) {
		src, _ := srcNew(t, nil)
		if _, err := src.Update(ctx, "t", func(statesync.Snapshot) (json.RawMessage, error) { return json.RawMessage(`{`), nil }); !errors.Is(err, statesync.ErrInvalidPayload) {
			t.Errorf("Update returning invalid JSON: error = %v; want ErrInvalidPayload", err)
		}
	})
	t.Run("GivesUp", func(t *testing.T) {
		store := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1})
		src, err := statesync.NewSource(store, &statesync.SourceOptions{MaxUpdateAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		calls := 0
		_, err = src.Update(ctx, "t", func(cur statesync.Snapshot) (json.RawMessage, error) {
			calls++
			srcPut(t, src, "t", fmt.Sprintf(`"interloper %d"`, calls)) // always someone faster
			return json.RawMessage(`"mine"`), nil
		})
		if !errors.Is(err, statesync.ErrConflict) {
			t.Errorf("Update under endless contention: error = %v; want ErrConflict", err)
		}
		if calls != 3 {
			t.Errorf("fn called %d times; want MaxUpdateAttempts (3)", calls)
		}
		if s := srcGet(t, src, "t"); string(s.Data) != `"interloper 3"` {
			t.Errorf("Get(t).Data = %s; want the last interloper's", s.Data)
		}
	})
	t.Run("SourceID", func(t *testing.T) {
		src, _ := srcNew(t, nil)
		w := srcWatch(t, src)
		if _, err := src.Update(statesync.WithSourceID(ctx, "updater"), "t", srcIncrement); err != nil {
			t.Fatal(err)
		}
		if invs := w.all(); len(invs) != 1 || invs[0].SourceID != "updater" {
			t.Errorf("invalidations = %+v; want one with SourceID updater", invs)
		}
	})
}

// DESIGN §4: invalid topics are refused by every method, before any I/O.
func TestSourceInvalidTopic(t *testing.T) {
	src, _ := srcNew(t, nil)
	w := srcWatch(t, src)
	ctx := context.Background()
	for _, topic := range []string{"", "has space", "-dash", "a/b", strings.Repeat("a", statesync.MaxTopicLen+1)} {
		short := topic[:min(len(topic), 20)]
		fnCalled := false
		ops := map[string]error{}
		_, ops["Put"] = src.Put(ctx, topic, json.RawMessage(`1`))
		_, ops["PutIf"] = src.PutIf(ctx, topic, json.RawMessage(`1`), 0)
		_, ops["Delete"] = src.Delete(ctx, topic)
		_, ops["Update"] = src.Update(ctx, topic, func(statesync.Snapshot) (json.RawMessage, error) {
			fnCalled = true
			return json.RawMessage(`1`), nil
		})
		_, ops["Snapshot"] = src.Snapshot(ctx, topic)
		for op, err := range ops {
			if !errors.Is(err, statesync.ErrInvalidTopic) {
				t.Errorf("%s(%q) error = %v; want ErrInvalidTopic", op, short, err)
			}
		}
		if fnCalled {
			t.Errorf("Update(%q) called fn; want the topic refused first", short)
		}
	}
	if list, _ := src.List(ctx); len(list) != 0 || w.count() != 0 {
		t.Errorf("after invalid topics: List() = %+v, %d invalidations; want nothing stored or emitted", list, w.count())
	}
	// The longest valid topic is accepted.
	srcPut(t, src, strings.Repeat("a", statesync.MaxTopicLen), `1`)
}

// Invalid JSON is refused; nothing is stored or emitted (DESIGN §4). So is
// invalid UTF-8 inside strings, which json.Valid lets through but JSON
// forbids (RFC 8259, issue 9).
func TestSourceInvalidJSON(t *testing.T) {
	src, _ := srcNew(t, nil)
	w := srcWatch(t, src)
	ctx := context.Background()
	srcPut(t, src, "kept", `"before"`)
	for _, data := range []string{`{"a":`, `not json`, `{"a":1}{"b":2}`, `'single'`, "\xff",
		"\"\xff\"", `{"a":"` + "\xed\xa0\x80" + `"}`, `{"` + "\xc3" + `":1}`} {
		for _, topic := range []string{"fresh", "kept"} {
			if _, err := src.Put(ctx, topic, json.RawMessage(data)); !errors.Is(err, statesync.ErrInvalidPayload) {
				t.Errorf("Put(%q, %q) error = %v; want ErrInvalidPayload", topic, data, err)
			}
			if _, err := src.PutIf(ctx, topic, json.RawMessage(data), 1); !errors.Is(err, statesync.ErrInvalidPayload) {
				t.Errorf("PutIf(%q, %q) error = %v; want ErrInvalidPayload", topic, data, err)
			}
		}
	}
	srcWantSnap(t, "Get(fresh)", srcGet(t, src, "fresh"), 0, "ep", "null")
	srcWantSnap(t, "Get(kept)", srcGet(t, src, "kept"), 1, "ep", `"before"`)
	if list, _ := src.List(ctx); len(list) != 1 {
		t.Errorf("List() = %+v; want only the valid write", list)
	}
	if n := w.count(); n != 1 {
		t.Errorf("%d invalidations; want 1, for the valid write", n)
	}
}

// WithSourceID names the writer in the invalidations (and in the store).
func TestSourceWithSourceID(t *testing.T) {
	src, store := srcNew(t, nil)
	w := srcWatch(t, src)
	ctx := context.Background()
	if _, err := src.Put(statesync.WithSourceID(ctx, "window-1"), "t", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Delete(statesync.WithSourceID(ctx, "window-2"), "t"); err != nil {
		t.Fatal(err)
	}
	srcPut(t, src, "t", `3`)
	var ids []string
	for _, inv := range w.all() {
		ids = append(ids, inv.SourceID)
	}
	if want := []string{"window-1", "window-2", ""}; !slices.Equal(ids, want) {
		t.Errorf("invalidation source ids = %q; want %q", ids, want)
	}
	if rec, _ := store.Get(ctx, "t"); rec.SourceID != "" {
		t.Errorf("store record SourceID = %q; want empty for the anonymous write", rec.SourceID)
	}
}

// MemoryStore epochs are random per store (B-REV-13, DESIGN §3).
func TestMemoryStoreEpoch(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{16}$`)
	seen := map[string]bool{}
	for range 20 {
		s := statesync.NewMemoryStore(nil)
		e := s.Epoch()
		if !valid.MatchString(e) {
			t.Errorf("Epoch() = %q; want 16 URL-safe base64 characters", e)
		}
		if seen[e] {
			t.Errorf("Epoch() = %q twice; want a random epoch per store", e)
		}
		seen[e] = true
		rec, err := s.Write(context.Background(), statesync.Write{Topic: "t", Data: json.RawMessage(`1`)})
		if err != nil || rec.Epoch != e {
			t.Errorf("Write().Epoch = %q, %v; want the store's epoch %q", rec.Epoch, err, e)
		}
		if rec, _ := s.Get(context.Background(), "never"); rec.Epoch != e {
			t.Errorf("Get(never).Epoch = %q; want the store's epoch %q", rec.Epoch, e)
		}
	}
	if s := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "mine"}); s.Epoch() != "mine" {
		t.Errorf("Epoch() with MemoryStoreOptions.Epoch mine = %q; want mine", s.Epoch())
	}
}

// FirstRevision defaults to the clock in microseconds when the store is
// made, so a store made later (a restarted process) starts above every
// revision the earlier one handed out, unless it wrote more than one
// revision per microsecond (store.go).
func TestMemoryStoreFirstRevisionFromClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		made := time.Now()
		s1 := statesync.NewMemoryStore(nil)
		var last statesync.Revision
		for i := range 500 {
			rec, err := s1.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`1`)})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 && rec.Revision != statesync.Revision(made.UnixMicro()) {
				t.Errorf("first revision = %d; want the creation time in µs, %d", rec.Revision, made.UnixMicro())
			}
			last = rec.Revision
			time.Sleep(time.Millisecond) // 500 writes in 0.5 s: far below one per µs
		}
		s2 := statesync.NewMemoryStore(nil) // the "restarted" process
		rec, err := s2.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`2`)})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Revision <= last {
			t.Errorf("first revision of a store made later = %d; want > %d, the last of the earlier store", rec.Revision, last)
		}
		if rec.Epoch == s1.Epoch() {
			t.Errorf("both stores have epoch %q; want a new one", rec.Epoch)
		}
	})
	fixed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Now: func() time.Time { return fixed }})
	if rec, _ := s.Write(context.Background(), statesync.Write{Topic: "t"}); rec.Revision != statesync.Revision(fixed.UnixMicro()) || !rec.Time.Equal(fixed) {
		t.Errorf("first Write with Now fixed = revision %d, time %v; want %d, %v", rec.Revision, rec.Time, fixed.UnixMicro(), fixed)
	}
	s = statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 7})
	if rec, _ := s.Write(context.Background(), statesync.Write{Topic: "t"}); rec.Revision != 7 {
		t.Errorf("first Write with FirstRevision 7 = revision %d; want 7", rec.Revision)
	}
}

func TestSourceList(t *testing.T) {
	src, _ := srcNew(t, nil)
	ctx := context.Background()
	srcPut(t, src, "b", `1`)
	srcPut(t, src, "a", `1`)
	srcPut(t, src, "a", `2`)
	if _, err := src.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	srcGet(t, src, "d") // read only: not listed
	got, err := src.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []statesync.TopicInfo{{Topic: "a", Revision: 2, Epoch: "ep"}, {Topic: "b", Revision: 1, Epoch: "ep"}, {Topic: "c", Revision: 1, Epoch: "ep"}}
	if !slices.Equal(got, want) {
		t.Errorf("List() = %+v; want %+v", got, want)
	}
	b, _ := json.Marshal(got[0])
	if string(b) != `{"topic":"a","revision":"2","epoch":"ep"}` {
		t.Errorf("TopicInfo JSON = %s; want {\"topic\":\"a\",\"revision\":\"2\",\"epoch\":\"ep\"}", b)
	}
}

// Close: later calls return ErrClosed, the store stays open, the feed is
// no longer followed.
func TestSourceClose(t *testing.T) {
	src, store := srcNew(t, nil)
	w := srcWatch(t, src)
	ctx := context.Background()
	srcPut(t, src, "t", `1`)
	if err := src.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	_, errPut := src.Put(ctx, "t", json.RawMessage(`2`))
	_, errGet := src.Snapshot(ctx, "t")
	_, errList := src.List(ctx)
	_, errUpd := src.Update(ctx, "t", srcIncrement)
	_, errWatch := src.Watch(ctx, func(statesync.Invalidation) {})
	for op, err := range map[string]error{"Put": errPut, "Get": errGet, "List": errList, "Update": errUpd, "Watch": errWatch} {
		if !errors.Is(err, statesync.ErrClosed) {
			t.Errorf("%s after Close: error = %v; want ErrClosed", op, err)
		}
	}
	if _, err := store.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`3`)}); err != nil {
		t.Errorf("store Write after Source.Close: %v; want the store still open", err)
	}
	if n := w.count(); n != 1 {
		t.Errorf("%d invalidations; want 1 (none after Close)", n)
	}
}

// A Watch stop function stops delivery and is idempotent.
func TestSourceWatchStop(t *testing.T) {
	src, _ := srcNew(t, nil)
	var a, b int
	stopA, err := src.Watch(t.Context(), func(statesync.Invalidation) { a++ })
	if err != nil {
		t.Fatal(err)
	}
	stopB, err := src.Watch(t.Context(), func(statesync.Invalidation) { b++ })
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	srcPut(t, src, "t", `1`)
	stopA()
	stopA()
	srcPut(t, src, "t", `2`)
	if a != 1 || b != 2 {
		t.Errorf("calls after stopping A: A %d, B %d; want 1, 2", a, b)
	}
}

// Watch, like any call that takes a context, fails with ctx.Err() if ctx is
// already done; the context does not end a watch once it is made.
func TestSourceWatchContext(t *testing.T) {
	src, _ := srcNew(t, nil)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if stop, err := src.Watch(done, func(statesync.Invalidation) {}); !errors.Is(err, context.Canceled) || stop != nil {
		t.Errorf("Watch(done ctx) = %v, %v; want nil, context.Canceled", stop != nil, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	stop, err := src.Watch(ctx, func(statesync.Invalidation) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cancel()
	srcPut(t, src, "t", `1`)
	if n != 1 {
		t.Errorf("%d calls after the Watch context ended; want 1", n)
	}
}

// DESIGN §7: with a shared store, writes made by another process (directly
// to the store here) are emitted by the Source and served fresh.
func TestSourceFollowsStoreWrites(t *testing.T) {
	src, store := srcNew(t, nil)
	w := srcWatch(t, src)
	ctx := context.Background()
	srcPut(t, src, "t", `"mine"`)
	srcGet(t, src, "t") // cached
	if _, err := store.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`"theirs"`), SourceID: "node-b"}); err != nil {
		t.Fatal(err)
	}
	srcWantSnap(t, "Get(t) after another writer", srcGet(t, src, "t"), 2, "ep", `"theirs"`)
	invs := w.all()
	if len(invs) != 2 || invs[1].Revision != 2 || invs[1].SourceID != "node-b" {
		t.Errorf("invalidations = %+v; want the other writer's at revision 2 with SourceID node-b", invs)
	}
}

// feedlessStore is a store whose change feed carries no data (like
// PostgreSQL NOTIFY with a large payload), and whose backing MemoryStore can
// be replaced, as a restore from backup would.
type feedlessStore struct {
	mu    sync.Mutex
	inner *statesync.MemoryStore
	fns   []func(statesync.Record)
}

func (s *feedlessStore) cur() *statesync.MemoryStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inner
}

func (s *feedlessStore) Get(ctx context.Context, topic string) (statesync.Record, error) {
	return s.cur().Get(ctx, topic)
}

func (s *feedlessStore) List(ctx context.Context) ([]statesync.Record, error) {
	return s.cur().List(ctx)
}

func (s *feedlessStore) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	rec, err := s.cur().Write(ctx, w)
	if err == nil {
		s.mu.Lock()
		fns := slices.Clone(s.fns)
		s.mu.Unlock()
		feed := rec
		feed.Data, feed.DataOmitted = nil, true
		for _, fn := range fns {
			fn(feed)
		}
	}
	return rec, err
}

func (s *feedlessStore) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	s.mu.Lock()
	s.fns = append(s.fns, fn)
	s.mu.Unlock()
	return func() {}, nil
}

// A feed without data makes the Source drop its cached revision and read
// the store again.
func TestSourceDataOmittedFeed(t *testing.T) {
	store := &feedlessStore{inner: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1, Epoch: "A"})}
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w := srcWatch(t, src)
	ctx := context.Background()
	srcPut(t, src, "t", `"v1"`)
	srcGet(t, src, "t") // cached
	// Another process writes; this Source hears of it without data.
	if _, err := store.Write(ctx, statesync.Write{Topic: "t", Data: json.RawMessage(`"v2"`)}); err != nil {
		t.Fatal(err)
	}
	srcWantSnap(t, "Get(t) after a data-less feed record", srcGet(t, src, "t"), 2, "A", `"v2"`)
	if invs := w.all(); len(invs) != 2 || invs[1].Revision != 2 {
		t.Errorf("invalidations = %+v; want one for revision 2", invs)
	}
}

// B-REV-13: when a shared store with a data-less feed restarts in a new
// epoch at lower revisions (restore from backup), the Source must stop
// serving the old epoch's cached snapshot.
func TestSourceDataOmittedFeedNewEpoch(t *testing.T) {
	store := &feedlessStore{inner: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 100, Epoch: "A"})}
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	srcPut(t, src, "t", `"old epoch"`)
	srcGet(t, src, "t") // cached at 100, epoch A
	store.mu.Lock()
	store.inner = statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1, Epoch: "B"})
	store.mu.Unlock()
	if _, err := store.Write(context.Background(), statesync.Write{Topic: "t", Data: json.RawMessage(`"new epoch"`)}); err != nil {
		t.Fatal(err)
	}
	srcWantSnap(t, "Get(t) after the store restarted in epoch B", srcGet(t, src, "t"), 1, "B", `"new epoch"`)
}

// A watcher that panics leaves the Feed usable: the panic reaches the
// publisher, and stopping that watcher afterwards returns (it used to wait
// forever for the read lock the panicking call never released).
func TestFeedWatcherPanicReleasesStop(t *testing.T) {
	var f statesync.Feed
	var calls atomic.Int32
	stop := f.Watch(func(statesync.Record) {
		calls.Add(1)
		panic("watcher broke")
	})
	func() {
		defer func() {
			if r := recover(); r != "watcher broke" {
				t.Errorf("Publish recovered %v; want the watcher's panic", r)
			}
		}()
		f.Publish(statesync.Record{Topic: "t", Revision: 1})
	}()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return after the watcher panicked")
	}
	f.Publish(statesync.Record{Topic: "t", Revision: 2})
	if n := calls.Load(); n != 1 {
		t.Errorf("watcher called %d times; want 1 (not after stop)", n)
	}
}
