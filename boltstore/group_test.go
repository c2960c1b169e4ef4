package boltstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
)

// TestConcurrentWriters races 16 writers, with fsync, through the group
// commit: 12 compare-and-swap one topic (read, then write if unchanged)
// and 4 write topics of their own. On the shared topic exactly one write
// wins each revision, with no revision skipped, and the file and the
// watcher hold the winners' data; each own topic gets every write, at
// revisions that only grow.
func TestConcurrentWriters(t *testing.T) {
	s, _ := newStore(t, &boltstore.Options{})
	ctx := context.Background()
	const (
		casWriters = 12
		ownWriters = 4
		target     = 300 // revisions of the shared topic
		ownWrites  = 100 // writes of each own topic
	)
	var (
		mu      sync.Mutex
		winners = map[statesync.Revision]string{} // revision of "shared" → data of its winner
		seen    = map[statesync.Revision]string{} // the same, from the watcher
		dupSeen []statesync.Revision
	)
	stop, err := s.Watch(ctx, func(r statesync.Record) {
		if r.Topic != "shared" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := seen[r.Revision]; ok {
			dupSeen = append(dupSeen, r.Revision)
		}
		seen[r.Revision] = string(r.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	var wg sync.WaitGroup
	for w := range casWriters {
		wg.Go(func() {
			for n := 0; ; n++ {
				cur, err := s.Get(ctx, "shared")
				if err != nil {
					t.Error(err)
					return
				}
				if cur.Revision >= target {
					return
				}
				data := fmt.Sprintf(`{"w":%d,"n":%d}`, w, n)
				rec, err := s.Write(ctx, statesync.Write{Topic: "shared", Data: json.RawMessage(data), Conditional: true, IfRevision: cur.Revision})
				var ce *statesync.ConflictError
				switch {
				case errors.As(err, &ce):
					if ce.Current <= cur.Revision {
						t.Errorf("conflict at current revision %v, expected %v; want a current revision above the one read", ce.Current, cur.Revision)
					}
				case err != nil:
					t.Errorf("Write(shared if %v) = %v", cur.Revision, err)
					return
				case rec.Revision != cur.Revision+1:
					t.Errorf("Write(shared if %v) = revision %v; want %v", cur.Revision, rec.Revision, cur.Revision+1)
				default:
					mu.Lock()
					if prev, ok := winners[rec.Revision]; ok {
						t.Errorf("revision %v won twice: %s and %s", rec.Revision, prev, data)
					}
					winners[rec.Revision] = data
					mu.Unlock()
				}
			}
		})
	}
	for w := range ownWriters {
		wg.Go(func() {
			topic := fmt.Sprintf("own%d", w)
			var last statesync.Revision
			for n := range ownWrites {
				rec, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(fmt.Sprint(n))})
				if err != nil || rec.Revision != last+1 {
					t.Errorf("Write(%s) = %v, %v; want revision %v", topic, rec.Revision, err, last+1)
					return
				}
				last = rec.Revision
			}
		})
	}
	wg.Wait()

	final := mustGet(t, s, "shared")
	if final.Revision < target || len(winners) != int(final.Revision) {
		t.Errorf("shared at revision %v with %d winning writes; want at least %d, one winner per revision", final.Revision, len(winners), target)
	}
	for rev := statesync.Revision(1); rev <= final.Revision; rev++ {
		if winners[rev] == "" || seen[rev] != winners[rev] {
			t.Errorf("revision %v: winner %q, watcher saw %q; want the same, once", rev, winners[rev], seen[rev])
		}
	}
	if len(dupSeen) > 0 {
		t.Errorf("watcher saw revisions %v twice", dupSeen)
	}
	if string(final.Data) != winners[final.Revision] {
		t.Errorf("Get(shared) = %s; want the last winner's %s", final.Data, winners[final.Revision])
	}
	for w := range ownWriters {
		if rec := mustGet(t, s, fmt.Sprintf("own%d", w)); rec.Revision != ownWrites {
			t.Errorf("own%d at revision %v; want %d", w, rec.Revision, ownWrites)
		}
	}
}
