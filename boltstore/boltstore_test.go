package boltstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
	bolt "go.etcd.io/bbolt"
)

// newStore opens a store in a new file of t's temporary directory, closed
// at the end of the test. NoSync: these tests are about semantics; the
// crash test runs with fsync.
func newStore(tb testing.TB, opts *boltstore.Options) (*boltstore.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "statesync.db")
	if opts == nil {
		opts = &boltstore.Options{NoSync: true}
	}
	s, err := boltstore.Open(path, opts)
	if err != nil {
		tb.Fatalf("Open(%q) = %v", path, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, path
}

func reopen(tb testing.TB, s *boltstore.Store) *boltstore.Store {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatalf("Close() = %v", err)
	}
	s2, err := boltstore.Open(s.Path(), &boltstore.Options{NoSync: true})
	if err != nil {
		tb.Fatalf("Open(%q) again = %v", s.Path(), err)
	}
	tb.Cleanup(func() { _ = s2.Close() })
	return s2
}

func mustWrite(tb testing.TB, s statesync.Store, w statesync.Write) statesync.Record {
	tb.Helper()
	rec, err := s.Write(context.Background(), w)
	if err != nil {
		tb.Fatalf("Write(%q, %s) = %v", w.Topic, w.Data, err)
	}
	return rec
}

func mustGet(tb testing.TB, s statesync.Store, topic string) statesync.Record {
	tb.Helper()
	rec, err := s.Get(context.Background(), topic)
	if err != nil {
		tb.Fatalf("Get(%q) = %v", topic, err)
	}
	return rec
}

// sameRecord reports how got differs from want, comparing times with Equal.
func sameRecord(got, want statesync.Record) string {
	var d []string
	if got.Topic != want.Topic {
		d = append(d, fmt.Sprintf("Topic %q, want %q", got.Topic, want.Topic))
	}
	if got.Revision != want.Revision {
		d = append(d, fmt.Sprintf("Revision %d, want %d", got.Revision, want.Revision))
	}
	if got.Epoch != want.Epoch {
		d = append(d, fmt.Sprintf("Epoch %q, want %q", got.Epoch, want.Epoch))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("Data %s, want %s", got.Data, want.Data))
	}
	if got.SourceID != want.SourceID {
		d = append(d, fmt.Sprintf("SourceID %q, want %q", got.SourceID, want.SourceID))
	}
	if !got.Time.Equal(want.Time) {
		d = append(d, fmt.Sprintf("Time %v, want %v", got.Time, want.Time))
	}
	if got.DataOmitted != want.DataOmitted {
		d = append(d, fmt.Sprintf("DataOmitted %v, want %v", got.DataOmitted, want.DataOmitted))
	}
	return strings.Join(d, "; ")
}

// The store contract: a topic never written has revision 0, data "null"
// and the store's epoch; that is not an error.
func TestGetNeverWritten(t *testing.T) {
	s, _ := newStore(t, nil)
	got := mustGet(t, s, "settings")
	want := statesync.Record{Topic: "settings", Epoch: s.Epoch(), Data: json.RawMessage("null")}
	if d := sameRecord(got, want); d != "" {
		t.Errorf("Get(%q) = %+v; want %+v: %s", "settings", got, want, d)
	}
	if len(s.Epoch()) != 16 {
		t.Errorf("Epoch() = %q; want 16 characters (statesync.NewEpoch)", s.Epoch())
	}
}

// B-TRANS-08: each write increments the topic's revision by exactly 1,
// starting at 1; deletions (nil or null data) are writes of "null"; what
// Write returns is what Get reads back.
func TestWriteRevisions(t *testing.T) {
	s, _ := newStore(t, nil)
	steps := []struct {
		w        statesync.Write
		wantRev  statesync.Revision
		wantData string
	}{
		{statesync.Write{Topic: "a", Data: json.RawMessage(`{"v":1}`), SourceID: "w1"}, 1, `{"v":1}`},
		{statesync.Write{Topic: "a", Data: json.RawMessage(`{"v":2}`)}, 2, `{"v":2}`},
		{statesync.Write{Topic: "b", Data: json.RawMessage(`[1,2,3]`)}, 1, `[1,2,3]`},
		{statesync.Write{Topic: "a"}, 3, `null`},                                  // Source.Delete
		{statesync.Write{Topic: "a", Data: json.RawMessage(" null ")}, 4, `null`}, // spaced null
		{statesync.Write{Topic: "a", Data: json.RawMessage(`"x"`), SourceID: "w2"}, 5, `"x"`},
		{statesync.Write{Topic: "b", Data: json.RawMessage(`[1,2,3]`)}, 2, `[1,2,3]`}, // same data: still a new revision (B-E2E-19)
	}
	for i, st := range steps {
		before := time.Now().Add(-time.Second)
		got := mustWrite(t, s, st.w)
		if got.Revision != st.wantRev || string(got.Data) != st.wantData || got.Topic != st.w.Topic ||
			got.Epoch != s.Epoch() || got.SourceID != st.w.SourceID || got.DataOmitted {
			t.Errorf("step %d: Write(%q, %s) = %+v; want revision %d, data %s, epoch %q, source %q",
				i, st.w.Topic, st.w.Data, got, st.wantRev, st.wantData, s.Epoch(), st.w.SourceID)
		}
		if got.Time.Before(before) || got.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("step %d: Write(%q).Time = %v; want about now", i, st.w.Topic, got.Time)
		}
		if d := sameRecord(mustGet(t, s, st.w.Topic), got); d != "" {
			t.Errorf("step %d: Get(%q) differs from what Write returned: %s", i, st.w.Topic, d)
		}
	}
}

// Data is copied: a caller reusing its buffer after Write does not change
// the stored state (the Go answer to B-STORE-18).
func TestWriteCopiesData(t *testing.T) {
	s, _ := newStore(t, nil)
	buf := []byte(`{"v":1}`)
	rec := mustWrite(t, s, statesync.Write{Topic: "a", Data: buf})
	copy(buf, `{"v":9}`)
	if got := mustGet(t, s, "a"); string(got.Data) != `{"v":1}` {
		t.Errorf("Get(%q).Data = %s; want %s", "a", got.Data, `{"v":1}`)
	}
	if string(rec.Data) != `{"v":1}` {
		t.Errorf("Write(%q).Data = %s after the caller's buffer changed; want %s", "a", rec.Data, `{"v":1}`)
	}
	// And a reader modifying what Get returned does not change the store.
	got := mustGet(t, s, "a")
	copy(got.Data, `{"v":7}`)
	if got := mustGet(t, s, "a"); string(got.Data) != `{"v":1}` {
		t.Errorf("Get(%q).Data = %s after a reader modified an earlier result; want %s", "a", got.Data, `{"v":1}`)
	}
}

// Conditional writes are checked in the write's own transaction: a
// mismatch returns a *ConflictError with the current revision and writes
// nothing.
func TestConditionalWrite(t *testing.T) {
	s, _ := newStore(t, nil)
	mustWrite(t, s, statesync.Write{Topic: "a", Data: json.RawMessage(`1`)}) // a at 1
	tests := []struct {
		name    string
		w       statesync.Write
		wantRev statesync.Revision // 0: conflict expected
		current statesync.Revision // for conflicts
	}{
		{"new topic expects 0", statesync.Write{Topic: "b", Data: json.RawMessage(`1`), Conditional: true, IfRevision: 0}, 1, 0},
		{"new topic expects 3", statesync.Write{Topic: "c", Data: json.RawMessage(`1`), Conditional: true, IfRevision: 3}, 0, 0},
		{"matching", statesync.Write{Topic: "a", Data: json.RawMessage(`2`), Conditional: true, IfRevision: 1}, 2, 0},
		{"stale", statesync.Write{Topic: "a", Data: json.RawMessage(`3`), Conditional: true, IfRevision: 1}, 0, 2},
		{"ahead", statesync.Write{Topic: "a", Data: json.RawMessage(`3`), Conditional: true, IfRevision: 7}, 0, 2},
		{"expects 0 on written", statesync.Write{Topic: "a", Data: json.RawMessage(`3`), Conditional: true, IfRevision: 0}, 0, 2},
		{"IfRevision ignored without Conditional", statesync.Write{Topic: "a", Data: json.RawMessage(`4`), IfRevision: 1}, 3, 0},
		{"conditional delete", statesync.Write{Topic: "a", Conditional: true, IfRevision: 3}, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := mustGet(t, s, tt.w.Topic)
			rec, err := s.Write(context.Background(), tt.w)
			if tt.wantRev != 0 {
				if err != nil || rec.Revision != tt.wantRev {
					t.Fatalf("Write(%q, if %d) = %d, %v; want %d, nil", tt.w.Topic, tt.w.IfRevision, rec.Revision, err, tt.wantRev)
				}
				return
			}
			var ce *statesync.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, statesync.ErrConflict) {
				t.Fatalf("Write(%q, if %d) = %+v, %v; want a *statesync.ConflictError", tt.w.Topic, tt.w.IfRevision, rec, err)
			}
			want := statesync.ConflictError{Topic: tt.w.Topic, Expected: tt.w.IfRevision, Current: tt.current, Epoch: s.Epoch()}
			if *ce != want {
				t.Errorf("Write(%q, if %d) error = %+v; want %+v", tt.w.Topic, tt.w.IfRevision, *ce, want)
			}
			if after := mustGet(t, s, tt.w.Topic); sameRecord(after, before) != "" {
				t.Errorf("Get(%q) after a conflict = %+v; want it unchanged, %+v", tt.w.Topic, after, before)
			}
		})
	}
}

// B-GO-01, B-TRANS-08: concurrent writers of one topic get distinct
// revisions with no gap; of concurrent compare-and-set writes from the same
// revision, exactly one wins.
func TestConcurrentWrites(t *testing.T) {
	s, _ := newStore(t, nil)
	const writers, each = 8, 25
	var (
		mu   sync.Mutex
		seen = map[statesync.Revision]bool{}
		wg   sync.WaitGroup
	)
	for i := range writers {
		wg.Go(func() {
			for j := range each {
				rec, err := s.Write(context.Background(), statesync.Write{Topic: "hot", Data: json.RawMessage(fmt.Sprint(i*each + j))})
				if err != nil {
					t.Errorf("Write(%q) = %v", "hot", err)
					return
				}
				mu.Lock()
				if seen[rec.Revision] {
					t.Errorf("revision %d handed out twice", rec.Revision)
				}
				seen[rec.Revision] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for r := statesync.Revision(1); r <= writers*each; r++ {
		if !seen[r] {
			t.Errorf("revision %d never handed out; want 1..%d without gaps", r, writers*each)
		}
	}
	if got := mustGet(t, s, "hot"); got.Revision != writers*each {
		t.Errorf("Get(%q).Revision = %d; want %d", "hot", got.Revision, writers*each)
	}

	var wins sync.WaitGroup
	results := make(chan error, writers)
	for i := range writers {
		wins.Go(func() {
			_, err := s.Write(context.Background(), statesync.Write{Topic: "hot", Data: json.RawMessage(fmt.Sprint(i)), Conditional: true, IfRevision: writers * each})
			results <- err
		})
	}
	wins.Wait()
	close(results)
	var ok, lost int
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, statesync.ErrConflict):
			lost++
		default:
			t.Errorf("conditional Write = %v; want nil or a conflict", err)
		}
	}
	if ok != 1 || lost != writers-1 {
		t.Errorf("%d concurrent compare-and-set writes: %d won, %d conflicted; want 1 and %d", writers, ok, lost, writers-1)
	}
}

// Bad writes return a clear error and write nothing.
func TestWriteRejected(t *testing.T) {
	s, _ := newStore(t, &boltstore.Options{NoSync: true, MaxDataSize: 10})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		w     statesync.Write
		want  error
		topic string
	}{
		{"invalid topic", context.Background(), statesync.Write{Topic: "no\ttabs", Data: json.RawMessage(`1`)}, statesync.ErrInvalidTopic, "no\ttabs"},
		{"empty topic", context.Background(), statesync.Write{Topic: "", Data: json.RawMessage(`1`)}, statesync.ErrInvalidTopic, ""},
		{"too large", context.Background(), statesync.Write{Topic: "big", Data: json.RawMessage(`"123456789"`)}, boltstore.ErrTooLarge, "big"},
		{"cancelled", cancelled, statesync.Write{Topic: "c", Data: json.RawMessage(`1`)}, context.Canceled, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := s.Write(tt.ctx, tt.w)
			if !errors.Is(err, tt.want) {
				t.Errorf("Write(%q, %d bytes) = %+v, %v; want %v", tt.w.Topic, len(tt.w.Data), rec, err, tt.want)
			}
			if got := mustGet(t, s, tt.topic); got.Revision != 0 {
				t.Errorf("Get(%q).Revision = %d after a rejected write; want 0", tt.topic, got.Revision)
			}
		})
	}
	// The limit is inclusive.
	if rec, err := s.Write(context.Background(), statesync.Write{Topic: "big", Data: json.RawMessage(`"12345678"`)}); err != nil || rec.Revision != 1 {
		t.Errorf("Write(%q, 10 bytes) with MaxDataSize 10 = %d, %v; want 1, nil", "big", rec.Revision, err)
	}
	list, err := s.List(context.Background())
	if err != nil || len(list) != 1 || list[0].Topic != "big" {
		t.Errorf("List() = %+v, %v; want only %q", list, err, "big")
	}
}

// The default limit is 16 MiB, inclusive.
func TestDefaultMaxDataSize(t *testing.T) {
	s, _ := newStore(t, nil)
	big := bytes.Repeat([]byte("1"), boltstore.DefaultMaxDataSize+1) // a JSON number
	if _, err := s.Write(context.Background(), statesync.Write{Topic: "big", Data: big}); !errors.Is(err, boltstore.ErrTooLarge) {
		t.Errorf("Write(%q, %d bytes) = %v; want ErrTooLarge", "big", len(big), err)
	}
	big = big[:boltstore.DefaultMaxDataSize]
	if rec, err := s.Write(context.Background(), statesync.Write{Topic: "big", Data: big}); err != nil || rec.Revision != 1 {
		t.Errorf("Write(%q, %d bytes) = %d, %v; want 1, nil", "big", len(big), rec.Revision, err)
	}
	if got := mustGet(t, s, "big"); !bytes.Equal(got.Data, big) {
		t.Errorf("Get(%q).Data = %d bytes; want the %d written", "big", len(got.Data), len(big))
	}
}

// List returns every written topic, deleted ones included, sorted, without
// data.
func TestList(t *testing.T) {
	s, _ := newStore(t, nil)
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("List() of an empty store = %+v, %v; want none", list, err)
	}
	want := map[string]statesync.Record{}
	for _, w := range []statesync.Write{
		{Topic: "zeta", Data: json.RawMessage(`1`)},
		{Topic: "alpha", Data: json.RawMessage(`1`), SourceID: "w1"},
		{Topic: "Beta", Data: json.RawMessage(`1`)},
		{Topic: "alpha:2", Data: json.RawMessage(`1`)},
		{Topic: "zeta", Data: json.RawMessage(`2`)},
		{Topic: "alpha"}, // deleted, still listed
		{Topic: "0", Data: json.RawMessage(`{}`)},
	} {
		rec := mustWrite(t, s, w)
		rec.Data = nil
		want[w.Topic] = rec
	}
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	var topics []string
	for _, r := range list {
		topics = append(topics, r.Topic)
		if d := sameRecord(r, want[r.Topic]); d != "" {
			t.Errorf("List() entry %q: %s", r.Topic, d)
		}
	}
	wantTopics := []string{"0", "Beta", "alpha", "alpha:2", "zeta"}
	if !slices.Equal(topics, wantTopics) {
		t.Errorf("List() topics = %q; want %q", topics, wantTopics)
	}
}

// B-TRANS-08: a watcher is told of each write after it is committed, and
// outside the store's locks: it can read the committed record and write
// again from the callback (a cascade, as in B-E2E-12).
func TestWatchAfterCommit(t *testing.T) {
	s, _ := newStore(t, nil)
	ctx := context.Background()
	var (
		mu  sync.Mutex
		got []statesync.Record
	)
	stop, err := s.Watch(ctx, func(r statesync.Record) {
		cur, err := s.Get(ctx, r.Topic)
		if err != nil || cur.Revision < r.Revision {
			t.Errorf("in Watch: Get(%q) = %d, %v; want at least %d (the write is committed)", r.Topic, cur.Revision, err, r.Revision)
		}
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		if r.Topic == "a" && string(r.Data) == `"cascade:1"` {
			if _, err := s.Write(ctx, statesync.Write{Topic: "b", Data: json.RawMessage(`"cascade:2"`)}); err != nil {
				t.Errorf("Write from a watcher = %v", err)
			}
		}
	})
	if err != nil {
		t.Fatalf("Watch() = %v", err)
	}
	defer stop()
	w1 := mustWrite(t, s, statesync.Write{Topic: "a", Data: json.RawMessage(`"cascade:1"`), SourceID: "w1"})
	w2 := mustWrite(t, s, statesync.Write{Topic: "a"})
	_, conflictErr := s.Write(ctx, statesync.Write{Topic: "a", Conditional: true, IfRevision: 1}) // not reported
	if !errors.Is(conflictErr, statesync.ErrConflict) {
		t.Fatalf("conditional Write = %v; want a conflict", conflictErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("Watch reported %d records; want 3 (a@1, its cascade b@1, a@2)", len(got))
	}
	want := []statesync.Record{w1, {Topic: "b", Revision: 1, Epoch: s.Epoch(), Data: json.RawMessage(`"cascade:2"`), Time: got[1].Time}, w2}
	for i := range want {
		if d := sameRecord(got[i], want[i]); d != "" {
			t.Errorf("Watch record %d: %s", i, d)
		}
	}
}

// After stop returns, fn is not called again; stop waits for a call in
// progress; stop is idempotent; several watchers each get every record.
func TestWatchStop(t *testing.T) {
	s, _ := newStore(t, nil)
	ctx := context.Background()
	var n1, n2 int
	var mu sync.Mutex
	stop1, err := s.Watch(ctx, func(statesync.Record) { mu.Lock(); n1++; mu.Unlock() })
	if err != nil {
		t.Fatalf("Watch() = %v", err)
	}
	stop2, err := s.Watch(ctx, func(statesync.Record) { mu.Lock(); n2++; mu.Unlock() })
	if err != nil {
		t.Fatalf("Watch() = %v", err)
	}
	mustWrite(t, s, statesync.Write{Topic: "a", Data: json.RawMessage(`1`)})
	stop1()
	stop1() // idempotent
	mustWrite(t, s, statesync.Write{Topic: "a", Data: json.RawMessage(`2`)})
	stop2()
	mustWrite(t, s, statesync.Write{Topic: "a", Data: json.RawMessage(`3`)})
	mu.Lock()
	if n1 != 1 || n2 != 2 {
		t.Errorf("watchers called %d and %d times; want 1 (stopped after the first write) and 2", n1, n2)
	}
	mu.Unlock()

	// stop waits for a call in progress.
	entered, release := make(chan struct{}), make(chan struct{})
	var finished bool // written by fn before it returns; read after stop returns
	stop3, err := s.Watch(ctx, func(statesync.Record) {
		close(entered)
		<-release
		finished = true
	})
	if err != nil {
		t.Fatalf("Watch() = %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { mustWrite(t, s, statesync.Write{Topic: "a", Data: json.RawMessage(`4`)}) })
	<-entered
	stopped := make(chan bool)
	wg.Go(func() {
		stop3()
		stopped <- finished
	})
	for range 100 {
		runtime.Gosched()
	}
	select {
	case <-stopped:
		t.Errorf("stop returned while the watcher was still running")
	default:
	}
	close(release)
	if !<-stopped {
		t.Errorf("stop returned before the call in progress finished")
	}
	wg.Wait()
}

// After Close every method returns statesync.ErrClosed; Close is
// idempotent; watchers are not called again.
func TestClosed(t *testing.T) {
	s, _ := newStore(t, nil)
	ctx := context.Background()
	called := 0
	stop, err := s.Watch(ctx, func(statesync.Record) { called++ })
	if err != nil {
		t.Fatalf("Watch() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Get after Close = %v; want ErrClosed", err)
	}
	if _, err := s.Write(ctx, statesync.Write{Topic: "a", Data: json.RawMessage(`1`)}); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Write after Close = %v; want ErrClosed", err)
	}
	if _, err := s.List(ctx); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("List after Close = %v; want ErrClosed", err)
	}
	if _, err := s.Watch(ctx, func(statesync.Record) {}); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Watch after Close = %v; want ErrClosed", err)
	}
	stop() // still safe
	if called != 0 {
		t.Errorf("watcher called %d times; want 0", called)
	}
}

// B-GO-06: Close waits for the watcher calls of a Write that committed
// before it; once Close has returned, no watcher is called, and a Write
// from a watcher during Close fails with ErrClosed instead of deadlocking.
// (synctest.Wait returns once Close is blocked waiting, deterministically.)
func TestCloseWaitsForWatchers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newStore(t, nil)
		ctx := context.Background()
		entered, release := make(chan struct{}), make(chan struct{})
		var (
			calls      int
			cascadeErr error
			done       bool // set by the watcher as it returns
		)
		stop, err := s.Watch(ctx, func(r statesync.Record) {
			calls++
			if r.Topic != "a" {
				return
			}
			close(entered)
			<-release
			_, cascadeErr = s.Write(ctx, statesync.Write{Topic: "b", Data: json.RawMessage(`1`)})
			done = true
		})
		if err != nil {
			t.Fatalf("Watch() = %v", err)
		}
		defer stop()
		go func() {
			if _, err := s.Write(ctx, statesync.Write{Topic: "a", Data: json.RawMessage(`1`)}); err != nil {
				t.Errorf("Write(%q) = %v", "a", err)
			}
		}()
		<-entered
		closed := make(chan bool, 1)
		go func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
			closed <- done
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Errorf("Close returned while a watcher call was in progress; want it to wait")
			close(release)
		default:
			close(release)
			if !<-closed {
				t.Errorf("Close returned before the watcher call finished")
			}
		}
		synctest.Wait() // the watcher and the Write return
		if calls != 1 || !errors.Is(cascadeErr, statesync.ErrClosed) {
			t.Errorf("after Close: %d watcher calls, Write from the watcher = %v; want 1 call and ErrClosed", calls, cascadeErr)
		}
	})
}

// Close waits for operations in progress; operations racing with Close
// either succeed or return ErrClosed, never anything else (B-GO-01).
func TestCloseRace(t *testing.T) {
	s, _ := newStore(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := 0; ; j++ {
				var err error
				switch j % 3 {
				case 0:
					_, err = s.Write(ctx, statesync.Write{Topic: fmt.Sprintf("t%d", i), Data: json.RawMessage(`1`)})
				case 1:
					_, err = s.Get(ctx, fmt.Sprintf("t%d", i))
				case 2:
					_, err = s.List(ctx)
				}
				if errors.Is(err, statesync.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("operation %d racing with Close = %v; want nil or ErrClosed", j%3, err)
					return
				}
			}
		})
	}
	mustGet(t, s, "t0")
	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	wg.Wait()
}

// B-REV-13, B-E2E-07: after Close and Open the data, source ids and times
// are kept, revisions continue from the last one, and the epoch is new
// (and stored in the meta bucket).
func TestPersistence(t *testing.T) {
	s, path := newStore(t, nil)
	w := map[string]statesync.Record{}
	for _, wr := range []statesync.Write{
		{Topic: "a", Data: json.RawMessage(`{"x":1}`), SourceID: "w1"},
		{Topic: "a", Data: json.RawMessage(`{"x":2}`), SourceID: "w2"},
		{Topic: "b", Data: json.RawMessage(`"b"`)},
		{Topic: "c", Data: json.RawMessage(`1`)},
		{Topic: "c"},
	} {
		w[wr.Topic] = mustWrite(t, s, wr)
	}
	epochs := map[string]bool{s.Epoch(): true}
	for run := range 3 {
		s = reopen(t, s)
		if epochs[s.Epoch()] {
			t.Errorf("run %d: Epoch() = %q, seen in an earlier run; want a new epoch at each Open", run, s.Epoch())
		}
		epochs[s.Epoch()] = true
		for topic, want := range w {
			want.Epoch = s.Epoch()
			if d := sameRecord(mustGet(t, s, topic), want); d != "" {
				t.Errorf("run %d: Get(%q) after reopening: %s", run, topic, d)
			}
		}
		list, err := s.List(context.Background())
		if err != nil || len(list) != len(w) {
			t.Errorf("run %d: List() = %d records, %v; want %d", run, len(list), err, len(w))
		}
		for _, topic := range []string{"a", "c"} {
			rec := mustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(fmt.Sprint(run))})
			if want := w[topic].Revision + 1; rec.Revision != want {
				t.Errorf("run %d: Write(%q).Revision = %d after reopening; want %d (last + 1)", run, topic, rec.Revision, want)
			}
			w[topic] = rec
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if got := readMeta(t, path, "epoch"); got != s.Epoch() {
		t.Errorf("meta epoch = %q; want the last run's %q", got, s.Epoch())
	}
	if got := readMeta(t, path, "format"); got != fmt.Sprint(boltstore.FormatVersion) {
		t.Errorf("meta format = %q; want %d", got, boltstore.FormatVersion)
	}
	if _, err := time.Parse(time.RFC3339Nano, readMeta(t, path, "opened")); err != nil {
		t.Errorf("meta opened: %v", err)
	}
}

// readMeta reads a key of the meta bucket of a closed store's file.
func readMeta(tb testing.TB, path, key string) string {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		tb.Fatalf("bolt.Open(%q) = %v", path, err)
	}
	defer db.Close()
	var v string
	if err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("statesync.meta"))
		if b == nil {
			return errors.New("no meta bucket")
		}
		v = string(b.Get([]byte(key)))
		return nil
	}); err != nil {
		tb.Fatalf("reading meta of %q: %v", path, err)
	}
	return v
}

// A second Open of a file in use fails after Options.Timeout with
// ErrLocked, instead of hanging; once the first store is closed, the file
// opens.
func TestOpenLocked(t *testing.T) {
	s, path := newStore(t, nil)
	mustWrite(t, s, statesync.Write{Topic: "a", Data: json.RawMessage(`1`)})
	start := time.Now()
	s2, err := boltstore.Open(path, &boltstore.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatalf("Open(%q) of a file in use = nil; want ErrLocked", path)
	}
	if !errors.Is(err, boltstore.ErrLocked) || !strings.Contains(err.Error(), "database is locked by another process") {
		t.Errorf("Open(%q) of a file in use = %v; want ErrLocked", path, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Open(%q) of a file in use took %v; want about the 100ms timeout", path, d)
	}
	// The default timeout is one second, not bbolt's "wait forever".
	start = time.Now()
	if s2, err := boltstore.Open(path, nil); !errors.Is(err, boltstore.ErrLocked) {
		if err == nil {
			s2.Close()
		}
		t.Errorf("Open(%q, nil) of a file in use = %v; want ErrLocked", path, err)
	} else if d := time.Since(start); d < boltstore.DefaultTimeout/2 || d > 10*time.Second {
		t.Errorf("Open(%q, nil) of a file in use gave up after %v; want about %v", path, d, boltstore.DefaultTimeout)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s3, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatalf("Open(%q) after Close = %v", path, err)
	}
	defer s3.Close()
	if got := mustGet(t, s3, "a"); got.Revision != 1 {
		t.Errorf("Get(%q).Revision = %d; want 1", "a", got.Revision)
	}
}

// Files that are not this package's databases are refused with a clear
// error, and left as they were.
func TestOpenNotDatabase(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(i*7919 + i>>8)
	}
	files := []struct {
		name    string
		content []byte
		make    func(path string) error // instead of content
		want    error
	}{
		{name: "text", content: []byte("hello, this is not a database\n"), want: boltstore.ErrNotDatabase},
		{name: "json", content: bytes.Repeat([]byte(`{"a":1}`), 1000), want: boltstore.ErrNotDatabase},
		{name: "random", content: random, want: boltstore.ErrNotDatabase},
		{name: "one byte", content: []byte{0}, want: boltstore.ErrNotDatabase},
		{name: "foreign bbolt", make: func(path string) error {
			return withBolt(path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("users"))
				if err != nil {
					return err
				}
				return b.Put([]byte("alice"), []byte("admin"))
			})
		}, want: boltstore.ErrNotDatabase},
		{name: "meta without format", make: func(path string) error {
			return withBolt(path, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("statesync.meta"))
				return err
			})
		}, want: boltstore.ErrNotDatabase},
		{name: "newer format", make: func(path string) error {
			return withBolt(path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("statesync.meta"))
				if err != nil {
					return err
				}
				return b.Put([]byte("format"), []byte("2"))
			})
		}, want: boltstore.ErrUnsupportedFormat},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(f.name, " ", "_"))
			if f.make != nil {
				if err := f.make(path); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, f.content, 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := boltstore.Open(path, nil)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) = nil error; want %v", f.name, f.want)
			}
			if !errors.Is(err, f.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open(%q) = %v; want %v, naming the path", f.name, err, f.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("Open(%q) changed the file it refused", f.name)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		s, err := boltstore.Open(dir, nil)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) of a directory = nil error", dir)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Errorf("Open(directory) = %v; want an error naming the path", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(dir, "nope", "statesync.db")
		if s, err := boltstore.Open(path, nil); err == nil {
			s.Close()
			t.Fatalf("Open(%q) = nil error; want an error", path)
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open(%q) = %v; want an error wrapping os.ErrNotExist", path, err)
		}
	})
}

// withBolt runs fn in a write transaction of the bbolt file at path.
func withBolt(path string, fn func(tx *bolt.Tx) error) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	if err := db.Update(fn); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// A corrupt topic record gives an error wrapping ErrCorruptRecord, never a
// panic, and does not affect the other topics.
func TestCorruptRecord(t *testing.T) {
	s, path := newStore(t, nil)
	good := mustWrite(t, s, statesync.Write{Topic: "good", Data: json.RawMessage(`{"ok":true}`), SourceID: "w1"})
	mustWrite(t, s, statesync.Write{Topic: "bad", Data: json.RawMessage(`{"v":"a stored value"}`), SourceID: "w1"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var orig []byte
	if err := withBolt(path, func(tx *bolt.Tx) error {
		orig = bytes.Clone(tx.Bucket([]byte("statesync.topics")).Get([]byte("bad")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(orig); b[i] ^= 0x40; return b }
	tests := []struct {
		name        string
		value       []byte
		headerOK    bool // List works and Write overwrites
		wantRevNext statesync.Revision
	}{
		{"empty", []byte{}, false, 0},
		{"version only", []byte{1}, false, 0},
		{"unknown version", append([]byte{9}, orig[1:]...), false, 0},
		{"truncated", orig[:len(orig)-7], true, 2}, // the checksum then covers the wrong bytes
		{"data byte flipped", flip(len(orig) - 6), true, 2},
		{"checksum flipped", flip(len(orig) - 1), true, 2},
		{"revision varint runs off", append([]byte{1}, bytes.Repeat([]byte{0xff}, 12)...), false, 0},
		{"source id too long", []byte{1, 1, 0, 100, 'x', 0, 0, 0, 0}, false, 0},
		{"no data", []byte{1, 1, 0, 0, 0, 0, 0, 0}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := withBolt(path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("statesync.topics")).Put([]byte("bad"), tt.value)
			}); err != nil {
				t.Fatal(err)
			}
			s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
			if err != nil {
				t.Fatalf("Open(%q) with a corrupt record = %v; want it to open", path, err)
			}
			defer s.Close()
			ctx := context.Background()
			if rec, err := s.Get(ctx, "bad"); !errors.Is(err, boltstore.ErrCorruptRecord) || !strings.Contains(err.Error(), `"bad"`) {
				t.Errorf("Get(%q) = %+v, %v; want ErrCorruptRecord naming the topic", "bad", rec, err)
			}
			want := good
			want.Epoch = s.Epoch()
			if d := sameRecord(mustGet(t, s, "good"), want); d != "" {
				t.Errorf("Get(%q) next to a corrupt record: %s", "good", d)
			}
			list, err := s.List(ctx)
			if tt.headerOK {
				if err != nil || len(list) != 2 {
					t.Errorf("List() = %d records, %v; want 2 (only the checksum is wrong)", len(list), err)
				}
			} else if !errors.Is(err, boltstore.ErrCorruptRecord) {
				t.Errorf("List() = %+v, %v; want ErrCorruptRecord", list, err)
			}
			rec, err := s.Write(ctx, statesync.Write{Topic: "bad", Data: json.RawMessage(`"fixed"`)})
			if tt.headerOK {
				if err != nil || rec.Revision != tt.wantRevNext {
					t.Errorf("Write(%q) over a record with a bad body = %d, %v; want %d, nil", "bad", rec.Revision, err, tt.wantRevNext)
				}
			} else if !errors.Is(err, boltstore.ErrCorruptRecord) {
				t.Errorf("Write(%q) over a record with a bad header = %+v, %v; want ErrCorruptRecord (its revision is unknown)", "bad", rec, err)
			}
		})
	}
}

// B-REV-12 through the public API is in the white-box test
// TestRevisionOverflow, which needs a record at MaxRevision.

// FuzzTopicRoundTrip: any valid topic name is stored under exactly its
// name, and ListPrefix finds it by each of its prefixes, in byte order
// with the others (docs/PROTOCOL.md "Topic names"); an invalid one is
// refused.
func FuzzTopicRoundTrip(f *testing.F) {
	for _, s := range []string{"settings", "my topic", "café", "cafe\u0301", "a\x00", "\xff", "..", "%_*[", "\U0010FFFF"} {
		f.Add(s)
	}
	s, _ := newStore(f, &boltstore.Options{NoSync: true})
	f.Fuzz(func(t *testing.T, name string) {
		ctx := context.Background()
		rec, err := s.Write(ctx, statesync.Write{Topic: name, Data: json.RawMessage(`1`)})
		if statesync.CheckTopic(name) != nil {
			if !errors.Is(err, statesync.ErrInvalidTopic) {
				t.Fatalf("Write(%q) = %v; want ErrInvalidTopic", name, err)
			}
			return
		}
		if err != nil || rec.Topic != name {
			t.Fatalf("Write(%q) = %+v, %v", name, rec, err)
		}
		if got, err := s.Get(ctx, name); err != nil || got.Topic != name || got.Revision != rec.Revision {
			t.Fatalf("Get(%q) = %+v, %v; want revision %d", name, got, err, rec.Revision)
		}
		for _, k := range []int{0, 1, len(name) / 2, len(name) - 1, len(name)} {
			prefix := name[:max(0, min(k, len(name)))]
			list, err := s.ListPrefix(ctx, prefix)
			if err != nil {
				t.Fatalf("ListPrefix(%q): %v", prefix, err)
			}
			if !slices.ContainsFunc(list, func(r statesync.Record) bool { return r.Topic == name }) {
				t.Fatalf("ListPrefix(%q) misses %q", prefix, name)
			}
			if !slices.IsSortedFunc(list, func(a, b statesync.Record) int { return strings.Compare(a.Topic, b.Topic) }) {
				t.Fatalf("ListPrefix(%q) is not in byte order", prefix)
			}
			for _, r := range list {
				if !strings.HasPrefix(r.Topic, prefix) {
					t.Fatalf("ListPrefix(%q) lists %q", prefix, r.Topic)
				}
			}
		}
	})
}
