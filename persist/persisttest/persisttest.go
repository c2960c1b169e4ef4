// Package persisttest is the conformance suite of [persist.Storage]
// backends, in the manner of testing/fstest: a backend's tests call
// [TestStorage] with a function that opens its storages. It also has test
// doubles for code that uses a storage: [Faulty] (latency and injected
// failures) and [SharedMemory] (memory storages by key).
package persisttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
)

// An Opener returns the storage of key in one backing place (a directory,
// a database). Storages of the same key from one Opener share their
// record; storages of different keys are isolated.
type Opener func(key string) persist.Storage

// TestStorage checks that the storages made by newBackend keep the
// contract of [persist.Storage], in subtests:
//
//   - Load of a key never saved returns ok=false and no error;
//   - Save then Load returns the record, metadata verbatim (SavedAt to the
//     millisecond) and payload byte for byte, binary bytes included;
//   - a second Save replaces the first, metadata included;
//   - nested JSON and a 1 MiB payload round-trip;
//   - records are copied in and out;
//   - keys are isolated, including keys that are not file names (path
//     separators, "..", case variants, escapes, Unicode, 300 bytes);
//   - a storage opened again for the same key sees the record;
//   - a Save with a cancelled context returns an error and changes nothing;
//   - concurrent Saves and Loads never return a torn or mixed record;
//   - if the storage is a [persist.Clearer], Clear removes the record and
//     clearing an absent one is not an error;
//   - if it is a [persist.ConditionalSaver], SaveIfNewer applies the
//     revision and epoch gate.
//
// newBackend is called once per subtest and must register its cleanup
// with t.Cleanup.
func TestStorage(t *testing.T, newBackend func(t *testing.T) Opener) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, open Opener)
	}{
		{"LoadAbsent", testLoadAbsent},
		{"SaveLoad", testSaveLoad},
		{"Overwrite", testOverwrite},
		{"NestedAndLarge", testNestedAndLarge},
		{"Copies", testCopies},
		{"KeysIsolated", testKeysIsolated},
		{"Reopen", testReopen},
		{"CanceledContext", testCanceledContext},
		{"Concurrent", testConcurrent},
		{"Clear", testClear},
		{"SaveIfNewer", testSaveIfNewer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, newBackend(t)) })
	}
}

// Record returns a valid record of data at rev: uncompressed, hashed,
// saved at a fixed time.
func Record(rev statesync.Revision, epoch, data string) persist.Record {
	payload := statesync.Snapshot{Revision: rev, Epoch: epoch, Data: []byte(data)}.AppendJSON(nil)
	return persist.Record{
		Meta: persist.Metadata{
			SavedAt:       time.UnixMilli(1_764_000_000_123),
			SchemaVersion: 1,
			SizeBytes:     len(payload),
			Hash:          persist.Hash(payload),
			Revision:      rev,
			Epoch:         epoch,
		},
		Payload: payload,
	}
}

// CheckRecord reports a difference between got and want: metadata field
// by field (SavedAt to the millisecond) and payload bytes.
func CheckRecord(tb testing.TB, what string, got, want persist.Record) {
	tb.Helper()
	g, w := got.Meta, want.Meta
	if g.SavedAt.UnixMilli() != w.SavedAt.UnixMilli() || g.SavedAt.IsZero() != w.SavedAt.IsZero() {
		tb.Errorf("%s: Meta.SavedAt = %v; want %v", what, g.SavedAt, w.SavedAt)
	}
	g.SavedAt, w.SavedAt = time.Time{}, time.Time{}
	if g != w {
		tb.Errorf("%s: Meta = %+v; want %+v", what, g, w)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		tb.Errorf("%s: Payload = %.80q (%d bytes); want %.80q (%d bytes)", what, got.Payload, len(got.Payload), want.Payload, len(want.Payload))
	}
}

func mustLoad(tb testing.TB, s persist.Storage) (persist.Record, bool) {
	tb.Helper()
	r, ok, err := s.Load(context.Background())
	if err != nil {
		tb.Fatalf("Load() = %v", err)
	}
	return r, ok
}

func mustSave(tb testing.TB, s persist.Storage, r persist.Record) {
	tb.Helper()
	if err := s.Save(context.Background(), r); err != nil {
		tb.Fatalf("Save(revision %d) = %v", r.Meta.Revision, err)
	}
}

func testLoadAbsent(t *testing.T, open Opener) {
	r, ok, err := open("absent").Load(context.Background())
	if ok || err != nil {
		t.Errorf("Load() of a key never saved = %+v, %v, %v; want ok=false and no error", r.Meta, ok, err)
	}
}

func testSaveLoad(t *testing.T, open Opener) {
	s := open("settings")
	want := persist.Record{
		Meta: persist.Metadata{
			SavedAt:       time.UnixMilli(1_764_000_000_777),
			SchemaVersion: 2,
			SizeBytes:     4242,
			Algorithm:     "custom",
			Hash:          strings.Repeat("ab", 32),
			TTL:           5 * time.Second,
			Revision:      statesync.MaxRevision,
			Epoch:         "k7Qx-épock",
			Topic:         "settings",
		},
	}
	for i := range 256 { // every byte value, and a newline or two
		want.Payload = append(want.Payload, byte(i), '\n')
	}
	mustSave(t, s, want)
	got, ok := mustLoad(t, s)
	if !ok {
		t.Fatalf("Load() after Save = ok=false; want the record")
	}
	CheckRecord(t, "Load() after Save", got, want)
	if !(got.Meta.Algorithm != "" && got.Meta.Algorithm != persist.None.Algorithm()) {
		t.Errorf("Load().Meta.Compressed() = false; want true for algorithm %q", got.Meta.Algorithm)
	}
}

func testOverwrite(t *testing.T, open Opener) {
	s := open("settings")
	first := Record(1, "e1", `"first"`)
	first.Meta.TTL = time.Minute
	first.Meta.Topic = "settings"
	mustSave(t, s, first)
	second := Record(2, "", `"second"`)
	second.Meta.Hash = "" // stale metadata must not survive
	mustSave(t, s, second)
	got, _ := mustLoad(t, s)
	CheckRecord(t, "Load() after two saves", got, second)
}

func testNestedAndLarge(t *testing.T, open Opener) {
	s := open("nested")
	nested := Record(7, "", `{"name":"test","items":[1,2,3],"nested":{"value":true}}`)
	mustSave(t, s, nested)
	got, _ := mustLoad(t, s)
	CheckRecord(t, "nested data", got, nested)

	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < 1<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d — ✓"}`, i, i)
	}
	b.WriteString("]}")
	large := Record(8, "", b.String())
	mustSave(t, s, large)
	got, _ = mustLoad(t, s)
	CheckRecord(t, "1 MiB record", got, large)
}

func testCopies(t *testing.T, open Opener) {
	s := open("copies")
	rec := Record(3, "", `{"v":"original"}`)
	want := Record(3, "", `{"v":"original"}`)
	mustSave(t, s, rec)
	copy(rec.Payload, strings.Repeat("X", len(rec.Payload))) // the caller reuses its buffer
	got, _ := mustLoad(t, s)
	CheckRecord(t, "Load() after the caller changed the saved buffer", got, want)
	copy(got.Payload, strings.Repeat("Y", len(got.Payload)))
	again, _ := mustLoad(t, s)
	CheckRecord(t, "Load() after the caller changed a loaded buffer", again, want)
}

// Keys tests every backend with: they are not file names.
var keys = []string{"a", "b", "A", "../etc/passwd", "a/b", `a\b`, ".", "..", ".hidden", "con", "CON",
	"%41", "a b", "日本語", "emoji-😀", "x:y*z?", strings.Repeat("k", 300), strings.Repeat("/", 300) + "1",
	strings.Repeat("/", 300) + "2"}

func testKeysIsolated(t *testing.T, open Opener) {
	for i, k := range keys {
		mustSave(t, open(k), Record(statesync.Revision(i+1), "", fmt.Sprintf("%q", k)))
	}
	for i, k := range keys {
		got, ok := mustLoad(t, open(k))
		if !ok {
			t.Errorf("Load() for key %q = ok=false; want its record", k)
			continue
		}
		CheckRecord(t, fmt.Sprintf("key %.40q", k), got, Record(statesync.Revision(i+1), "", fmt.Sprintf("%q", k)))
	}
	if c, ok := open("a").(persist.Clearer); ok {
		if err := c.Clear(context.Background()); err != nil {
			t.Fatalf("Clear() = %v", err)
		}
		if _, ok := mustLoad(t, open("b")); !ok {
			t.Errorf("Load() for key %q after Clear of key %q = ok=false; want its record", "b", "a")
		}
	}
}

func testReopen(t *testing.T, open Opener) {
	want := Record(5, "e", `"kept"`)
	mustSave(t, open("reopen"), want)
	got, ok := mustLoad(t, open("reopen"))
	if !ok {
		t.Fatalf("Load() on a storage opened again = ok=false; want the record")
	}
	CheckRecord(t, "Load() on a storage opened again", got, want)
}

func testCanceledContext(t *testing.T, open Opener) {
	s := open("canceled")
	want := Record(1, "", `"before"`)
	mustSave(t, s, want)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Save(ctx, Record(2, "", `"after"`)); !errors.Is(err, context.Canceled) {
		t.Errorf("Save() with a cancelled context = %v; want context.Canceled", err)
	}
	if _, _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Load() with a cancelled context = %v; want context.Canceled", err)
	}
	got, _ := mustLoad(t, s)
	CheckRecord(t, "Load() after a cancelled Save", got, want)
}

// concurrentData is the data of revision rev in testConcurrent, of a size
// that depends on rev, so that a torn record cannot pass for another.
func concurrentData(rev statesync.Revision) string {
	return fmt.Sprintf(`{"rev":%d,"pad":%q}`, rev, strings.Repeat(string(rune('a'+rev%26)), int(rev%7)*3000))
}

func testConcurrent(t *testing.T, open Opener) {
	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 100)
	for w := range writers {
		wg.Go(func() {
			s := open("concurrent")
			for i := range perWriter {
				rev := statesync.Revision(w*perWriter + i + 1)
				if err := s.Save(context.Background(), Record(rev, "", concurrentData(rev))); err != nil {
					errs <- fmt.Errorf("Save(%d) = %v", rev, err)
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			s := open("concurrent")
			for {
				select {
				case <-done:
					return
				default:
				}
				r, ok, err := s.Load(context.Background())
				if err != nil {
					errs <- fmt.Errorf("Load() during saves = %v", err)
					return
				}
				if ok {
					want := Record(r.Meta.Revision, "", concurrentData(r.Meta.Revision))
					if r.Meta.Hash != want.Meta.Hash || !bytes.Equal(r.Payload, want.Payload) {
						errs <- fmt.Errorf("Load() during saves = revision %d with %d payload bytes; want the record of that revision (%d bytes)",
							r.Meta.Revision, len(r.Payload), len(want.Payload))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r, ok := mustLoad(t, open("concurrent"))
	if !ok {
		t.Fatalf("Load() after concurrent saves = ok=false")
	}
	CheckRecord(t, "Load() after concurrent saves", r, Record(r.Meta.Revision, "", concurrentData(r.Meta.Revision)))
}

func testClear(t *testing.T, open Opener) {
	s := open("clear")
	c, ok := s.(persist.Clearer)
	if !ok {
		t.Skipf("%T is not a persist.Clearer", s)
	}
	if err := c.Clear(context.Background()); err != nil {
		t.Errorf("Clear() of an absent record = %v; want nil", err)
	}
	mustSave(t, s, Record(1, "", `"x"`))
	if err := c.Clear(context.Background()); err != nil {
		t.Fatalf("Clear() = %v", err)
	}
	if r, ok := mustLoad(t, s); ok {
		t.Errorf("Load() after Clear = revision %d; want ok=false", r.Meta.Revision)
	}
	mustSave(t, s, Record(2, "", `"y"`))
	if r, ok := mustLoad(t, s); !ok || r.Meta.Revision != 2 {
		t.Errorf("Load() after Clear and Save = revision %d, %v; want 2, true", r.Meta.Revision, ok)
	}
}

func testSaveIfNewer(t *testing.T, open Opener) {
	s := open("ifnewer")
	cs, ok := s.(persist.ConditionalSaver)
	if !ok {
		t.Skipf("%T is not a persist.ConditionalSaver", s)
	}
	ctx := context.Background()
	steps := []struct {
		rec   persist.Record
		saved bool
		want  statesync.Revision
	}{
		{Record(5, "e1", `"5"`), true, 5},  // nothing stored
		{Record(4, "e1", `"4"`), false, 5}, // older, same epoch
		{Record(5, "e1", `"5b"`), false, 5},
		{Record(6, "e1", `"6"`), true, 6},
		{Record(2, "e2", `"2"`), true, 2}, // another epoch
		{Record(1, "", `"1"`), false, 2},  // no epoch: revisions compare
		{Record(3, "", `"3"`), true, 3},
	}
	for _, st := range steps {
		saved, err := cs.SaveIfNewer(ctx, st.rec)
		if err != nil || saved != st.saved {
			t.Errorf("SaveIfNewer(%d %q) = %v, %v; want %v", st.rec.Meta.Revision, st.rec.Meta.Epoch, saved, err, st.saved)
		}
		if got, _ := mustLoad(t, s); got.Meta.Revision != st.want {
			t.Errorf("after SaveIfNewer(%d %q): Load() = revision %d; want %d", st.rec.Meta.Revision, st.rec.Meta.Epoch, got.Meta.Revision, st.want)
		}
	}

	// Racing conditional savers keep the highest revision.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			s := open("ifnewer-race").(persist.ConditionalSaver)
			for i := range 20 {
				rev := statesync.Revision(i*4 + w + 1)
				if _, err := s.SaveIfNewer(ctx, Record(rev, "", concurrentData(rev))); err != nil {
					t.Errorf("SaveIfNewer(%d) = %v", rev, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, _ := mustLoad(t, open("ifnewer-race")); got.Meta.Revision != 80 {
		t.Errorf("after racing SaveIfNewer up to 80: Load() = revision %d; want 80", got.Meta.Revision)
	}
}
