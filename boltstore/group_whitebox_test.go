package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	bolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"
)

// gateTopic is the topic of the write that holds the committer (see
// grouper), so that the writes queued behind it form the next group.
const gateTopic = "gate"

// A grouper makes the committer of a store commit chosen writes as one
// group, in a chosen order: a write to gateTopic stops the committer
// before its commit; the writes queued meanwhile make the next group.
type grouper struct {
	s       *Store
	entered chan struct{} // a gate group has reached the committer
	release chan struct{} // lets it commit

	mu     sync.Mutex
	groups [][]statesync.Write // every group committed, in order
}

// openGrouped opens a store in dir whose committer can be gated.
func openGrouped(tb testing.TB, dir string, noSync bool) *grouper {
	tb.Helper()
	s, err := Open(filepath.Join(dir, "statesync.db"), &Options{NoSync: noSync})
	if err != nil {
		tb.Fatalf("Open = %v", err)
	}
	g := &grouper{s: s, entered: make(chan struct{}), release: make(chan struct{})}
	s.beforeCommit = func(ws []*pendingWrite) {
		g.mu.Lock()
		group := make([]statesync.Write, len(ws))
		for i, pw := range ws {
			group[i] = pw.w
		}
		g.groups = append(g.groups, group)
		g.mu.Unlock()
		if ws[0].w.Topic == gateTopic {
			g.entered <- struct{}{}
			<-g.release
		}
	}
	return g
}

// lastGroup returns the last group committed.
func (g *grouper) lastGroup() []statesync.Write {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups[len(g.groups)-1]
}

// result is what one Write returned, and whether its watchers had seen its
// record by then.
type result struct {
	rec      statesync.Record
	err      error
	watched  bool
	panicked any // what Write panicked with (a watcher's panic)
}

// writeGroup commits ws as one group, in order, through concurrent calls
// of Write, and returns what each returned. seen, if not nil, reports
// whether a record reached the watchers (checked as each Write returns).
// It fails (through fail) if the writes could not be queued in order.
func (g *grouper) writeGroup(fail func(string, ...any), ws []statesync.Write, seen func(statesync.Record) bool) []result {
	ctx := context.Background()
	var wg sync.WaitGroup
	var gateErr error
	wg.Go(func() {
		_, gateErr = g.s.Write(ctx, statesync.Write{Topic: gateTopic, Data: json.RawMessage(`0`)})
	})
	<-g.entered
	out := make([]result, len(ws))
	for i, w := range ws {
		wg.Go(func() {
			defer func() { out[i].panicked = recover() }()
			rec, err := g.s.Write(ctx, w)
			out[i] = result{rec: rec, err: err, watched: err == nil && seen != nil && seen(rec)}
		})
		// Queue the writes one after another, so that their order in the
		// group is known.
		deadline := time.Now().Add(time.Minute)
		for len(g.s.queue) < i+1 {
			if time.Now().After(deadline) {
				close(g.release)
				wg.Wait()
				fail("write %d not queued after a minute", i)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	g.release <- struct{}{}
	wg.Wait()
	if gateErr != nil {
		fail("gate write: %v", gateErr)
	}
	if got := g.lastGroup(); len(ws) > 0 && !slices.EqualFunc(got, ws, sameWrite) {
		fail("group committed = %v; want %v", got, ws)
	}
	return out
}

func sameWrite(a, b statesync.Write) bool {
	return a.Topic == b.Topic && string(a.Data) == string(b.Data) && a.Conditional == b.Conditional && a.IfRevision == b.IfRevision
}

// records collects the records a watcher receives.
type records struct {
	mu   sync.Mutex
	recs []statesync.Record
}

func (r *records) add(rec statesync.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

func (r *records) has(rec statesync.Record) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.recs, func(x statesync.Record) bool { return x.Topic == rec.Topic && x.Revision == rec.Revision })
}

// withoutGate returns the records not of gateTopic.
func (r *records) withoutGate() []statesync.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(r.recs), func(x statesync.Record) bool { return x.Topic == gateTopic })
}

func cas(topic string, rev statesync.Revision, data string) statesync.Write {
	return statesync.Write{Topic: topic, Data: json.RawMessage(data), Conditional: true, IfRevision: rev}
}

func put(topic, data string) statesync.Write {
	return statesync.Write{Topic: topic, Data: json.RawMessage(data)}
}

// TestGroupCommit commits one group of writes that conflict, depend on
// each other and fail, and checks each write's own result: a conflict or
// a corrupt record leaves its write out and the others commit; a
// conditional write sees the earlier writes of its topic in the group;
// the watchers get the committed records in commit order before any Write
// returns; and everything acknowledged is in the file after a reopen.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	g := openGrouped(t, dir, false)
	s := g.s
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	if _, err := s.Write(ctx, put("a", `"a1"`)); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(topicsBucket).Put([]byte("bad"), []byte{9, 9, 9, 9, 9, 9})
	}); err != nil {
		t.Fatal(err)
	}
	var seen records
	stop, err := s.Watch(ctx, seen.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	ws := []statesync.Write{
		cas("a", 1, `"a2"`), // 0: rev 2
		cas("a", 1, `"x"`),  // 1: conflict, current 2 (the write before it)
		cas("a", 2, `"a3"`), // 2: rev 3, on the write 0 of this group
		put("b", `"b1"`),    // 3: rev 1
		put("bad", `"y"`),   // 4: corrupt record: fails alone
		cas("b", 1, `"b2"`), // 5: rev 2
		cas("c", 5, `"z"`),  // 6: conflict, current 0
		put("a", `null`),    // 7: rev 4
	}
	res := g.writeGroup(t.Fatalf, ws, seen.has)
	type want struct {
		rev      statesync.Revision
		conflict statesync.Revision // current revision of a conflict, +1
		corrupt  bool
	}
	wants := []want{{rev: 2}, {conflict: 2 + 1}, {rev: 3}, {rev: 1}, {corrupt: true}, {rev: 2}, {conflict: 0 + 1}, {rev: 4}}
	var committed []statesync.Record
	for i, r := range res {
		w := wants[i]
		var ce *statesync.ConflictError
		switch {
		case w.corrupt:
			if !errors.Is(r.err, ErrCorruptRecord) {
				t.Errorf("write %d %+v = %v; want ErrCorruptRecord", i, ws[i], r.err)
			}
		case w.conflict != 0:
			if !errors.As(r.err, &ce) || ce.Current != w.conflict-1 || ce.Expected != ws[i].IfRevision {
				t.Errorf("write %d %+v = %v; want a conflict at current revision %d", i, ws[i], r.err, w.conflict-1)
			}
		case r.err != nil || r.rec.Revision != w.rev || string(r.rec.Data) != string(normalise(ws[i].Data)):
			t.Errorf("write %d %+v = %v %s, %v; want revision %d", i, ws[i], r.rec.Revision, r.rec.Data, r.err, w.rev)
		case !r.watched:
			t.Errorf("write %d returned before its watcher saw it", i)
		default:
			committed = append(committed, r.rec)
		}
	}
	if got := seen.withoutGate(); !slices.EqualFunc(got, committed, sameRecord) {
		t.Errorf("watcher got %v; want the committed records in commit order %v", got, committed)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(filepath.Join(dir, "statesync.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for topic, want := range map[string]struct {
		rev  statesync.Revision
		data string
	}{"a": {4, "null"}, "b": {2, `"b2"`}, "c": {0, "null"}} {
		rec, err := s2.Get(ctx, topic)
		if err != nil || rec.Revision != want.rev || string(rec.Data) != want.data {
			t.Errorf("Get(%q) after reopen = %v %s, %v; want %v %s", topic, rec.Revision, rec.Data, err, want.rev, want.data)
		}
	}
	if _, err := s2.Get(ctx, "bad"); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("Get(bad) after reopen = %v; want ErrCorruptRecord (the failed write left it alone)", err)
	}
}

func normalise(data json.RawMessage) json.RawMessage {
	if data == nil || isNull(data) {
		return null()
	}
	return data
}

func sameRecord(a, b statesync.Record) bool {
	return a.Topic == b.Topic && a.Revision == b.Revision && string(a.Data) == string(b.Data) && a.Time.Equal(b.Time)
}

// TestGroupCommitModel checks group commit against the memory store as a
// model: random groups of conditional and plain writes on a few topics,
// each committed as one group in a random order, give every write the
// result (revision or conflict) it gets from the memory store applying
// the same writes one at a time in the same order, and leave the same
// topics.
func TestGroupCommitModel(t *testing.T) {
	base := t.TempDir()
	topics := []string{"t0", "t1", "t2"}
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		dir := filepath.Join(base, fmt.Sprint(n))
		if err := os.Mkdir(dir, 0o700); err != nil {
			rt.Fatal(err)
		}
		g := openGrouped(t, dir, true)
		defer g.s.Close()
		model := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1})
		ctx := context.Background()
		var seen records
		stop, err := g.s.Watch(ctx, seen.add)
		if err != nil {
			rt.Fatal(err)
		}
		defer stop()

		groups := rapid.IntRange(1, 4).Draw(rt, "groups")
		for gi := range groups {
			size := rapid.IntRange(1, 12).Draw(rt, "size")
			ws := make([]statesync.Write, size)
			for i := range ws {
				w := statesync.Write{
					Topic: rapid.SampledFrom(topics).Draw(rt, "topic"),
					Data:  json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d}`, gi, i)),
				}
				if rapid.Bool().Draw(rt, "conditional") {
					w.Conditional, w.IfRevision = true, statesync.Revision(rapid.IntRange(0, 6).Draw(rt, "ifRevision"))
				}
				ws[i] = w
			}
			before := len(seen.withoutGate())
			res := g.writeGroup(rt.Fatalf, ws, nil)
			var committed []statesync.Record
			for i, w := range ws {
				want, wantErr := model.Write(ctx, w)
				got := res[i]
				var ce, wce *statesync.ConflictError
				switch {
				case wantErr != nil:
					if !errors.As(wantErr, &wce) {
						rt.Fatalf("model write %+v: %v", w, wantErr)
					}
					if !errors.As(got.err, &ce) || ce.Current != wce.Current || ce.Expected != wce.Expected {
						rt.Fatalf("group %d write %d %+v = %v, %v; want the model's %v", gi, i, w, got.rec.Revision, got.err, wantErr)
					}
				case got.err != nil || got.rec.Revision != want.Revision || string(got.rec.Data) != string(want.Data):
					rt.Fatalf("group %d write %d %+v = %v %s, %v; want the model's revision %v", gi, i, w, got.rec.Revision, got.rec.Data, got.err, want.Revision)
				default:
					committed = append(committed, got.rec)
				}
			}
			if got := seen.withoutGate()[before:]; !slices.EqualFunc(got, committed, sameRecord) {
				rt.Fatalf("group %d: watcher got %v; want the committed records in commit order %v", gi, got, committed)
			}
		}
		for _, topic := range topics {
			got, err := g.s.Get(ctx, topic)
			want, _ := model.Get(ctx, topic)
			if err != nil || got.Revision != want.Revision || string(got.Data) != string(want.Data) {
				rt.Fatalf("Get(%q) = %v %s, %v; want the model's %v %s", topic, got.Revision, got.Data, err, want.Revision, want.Data)
			}
		}
	})
}

// TestGroupCommitWatcherPanics: a watcher that panics on the first record
// of a group makes the Write that reports the group panic (as a watcher's
// panic always did), and the other Writes of the group still return, and
// Close too.
func TestGroupCommitWatcherPanics(t *testing.T) {
	g := openGrouped(t, t.TempDir(), true)
	// Not stopped: statesync.Feed leaves a watcher that panicked
	// read-locked, so its stop would wait for ever.
	if _, err := g.s.Watch(context.Background(), func(r statesync.Record) {
		if r.Topic == "boom" {
			panic("watcher panic")
		}
	}); err != nil {
		t.Fatal(err)
	}
	res := g.writeGroup(t.Fatalf, []statesync.Write{put("boom", "1"), put("other", "2")}, nil)
	if res[0].panicked != "watcher panic" {
		t.Errorf("Write(boom) panicked with %v; want the watcher's panic", res[0].panicked)
	}
	if res[1].panicked != nil || res[1].err != nil || res[1].rec.Revision != 1 {
		t.Errorf("Write(other) in the same group = %v, %v, panic %v; want revision 1", res[1].rec.Revision, res[1].err, res[1].panicked)
	}
	if err := g.s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
}
