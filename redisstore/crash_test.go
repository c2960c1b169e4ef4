package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/internal/storetest"
)

// With appendfsync always, a Redis killed with SIGKILL in the middle of
// writes loses none that was acknowledged: after the restart every topic
// is at least at the revision of its last acknowledged write, and with its
// data if no later write got through. The store that was open reconnects
// by itself, resyncs and reports the new epoch (Redis takes a new
// replication id at each start).
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	srv := redistest.StartServer(t, &redistest.ServerOptions{AppendFsync: "always"})
	u := storetest.WithOpt(t, srv.URL(), "feed_probe", "200ms")
	s := open(t, u, nil)
	w := storetest.Watch(t, s)
	const writers = 4
	acked := make([]statesync.Record, writers) // the last acknowledged write of each writer's topic
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // protects count
		count int
	)
	for i := range writers {
		topic := fmt.Sprintf("crash.%d", i)
		wg.Go(func() {
			for n := 1; ; n++ {
				rec, err := s.Write(context.Background(), statesync.Write{Topic: topic, Data: json.RawMessage(fmt.Sprint(n))})
				if err != nil {
					return // the server is gone
				}
				acked[i] = rec
				mu.Lock()
				count++
				mu.Unlock()
			}
		})
	}
	poll.Until(t, "200 acknowledged writes", func() bool { mu.Lock(); defer mu.Unlock(); return count >= 200 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	before := acked[0].Epoch
	resyncs := w.Resyncs()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged before the kill", count)
	for i, a := range acked {
		if a.Revision == 0 {
			t.Fatalf("writer %d had no acknowledged write", i)
		}
		got := storetest.MustGet(t, s, a.Topic)
		if got.Revision < a.Revision {
			t.Errorf("Get(%q) after the crash = revision %d; want at least the acknowledged %d", a.Topic, got.Revision, a.Revision)
		}
		if got.Revision == a.Revision && string(got.Data) != string(a.Data) {
			t.Errorf("Get(%q) after the crash = data %s at the acknowledged revision %d; want %s", a.Topic, got.Data, a.Revision, a.Data)
		}
	}
	poll.Until(t, "the feed reconnected and resynced", func() bool {
		st := s.FeedStatus()
		return st.Connected && st.Reconnects >= 1 && w.Resyncs() > resyncs
	})
	later := storetest.MustWrite(t, s, statesync.Write{Topic: acked[0].Topic, Data: json.RawMessage(`"after"`)})
	storetest.WaitSeen(t, w, later)
	if later.Epoch == before {
		t.Errorf("epoch %q after the restart; want a new one (new replication id)", later.Epoch)
	}
	if later.Revision <= acked[0].Revision {
		t.Errorf("revision %d after the restart; want more than %d", later.Revision, acked[0].Revision)
	}
}

// FLUSHALL loses every key: both stores report a new epoch, and the
// Sources on them converge on what is written afterwards, and on null for
// a topic not written again.
func TestFlushAllNewEpoch(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	u := storetest.WithOpt(t, srv.URL(), "feed_probe", "200ms")
	a, b := open(t, u, nil), open(t, u, nil)
	srcA, srcB := newSource(t, a), newSource(t, b)
	ctx := storetest.OpContext(t)
	kept, gone := "flush.kept", "flush.gone"
	old, err := srcA.Put(ctx, kept, json.RawMessage(`"old"`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srcA.Put(ctx, gone, json.RawMessage(`"old"`)); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{kept, gone} {
		poll.Until(t, "B's Source serves "+topic, func() bool {
			snap, err := srcB.Snapshot(ctx, topic)
			return err == nil && string(snap.Data) == `"old"`
		})
	}
	admin(t, srv.URL(), func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
	nw, err := srcA.Put(ctx, kept, json.RawMessage(`"new"`))
	if err != nil {
		t.Fatal(err)
	}
	if nw.Epoch == old.Epoch {
		t.Fatalf("epoch %q after FLUSHALL; want a new one", nw.Epoch)
	}
	if nw.Revision <= old.Revision {
		t.Errorf("revision %d after FLUSHALL; want more than %d (revisions are floored to the clock)", nw.Revision, old.Revision)
	}
	for name, src := range map[string]*statesync.Source{"A": srcA, "B": srcB} {
		poll.UntilState(t, name+"'s Source converges after FLUSHALL", func() (bool, string) {
			k, err1 := src.Snapshot(ctx, kept)
			g, err2 := src.Snapshot(ctx, gone)
			ok := err1 == nil && err2 == nil && string(k.Data) == `"new"` && k.Epoch == nw.Epoch &&
				g.Revision == 0 && string(g.Data) == "null" && g.Epoch == nw.Epoch
			return ok, fmt.Sprintf("%s = %+v (%v), %s = %+v (%v)", kept, k, err1, gone, g, err2)
		})
	}
	if st := b.FeedStatus(); st.Resyncs < 1 {
		t.Errorf("B.FeedStatus().Resyncs = %d after FLUSHALL; want at least 1", st.Resyncs)
	}
}

// newSource returns a Source on s, closed at cleanup.
func newSource(t testing.TB, s statesync.Store) *statesync.Source {
	t.Helper()
	src, err := statesync.NewSource(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// Revisions are compared as strings: a Lua number would equate 2^53+1 with
// 2^53, and accept a stale compare-and-set.
func TestRevisionAbove2To53(t *testing.T) {
	u, prefix := redistest.NewPrefix(t)
	s := open(t, u, nil)
	topic := storetest.NewTopic("big")
	storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	const big = 1<<53 + 1 // 9007199254740993
	admin(t, u, func(ctx context.Context, c *redis.Client) error {
		return c.HSet(ctx, "{"+prefix+"}:t:"+topic, "rev", fmt.Sprint(uint64(big))).Err()
	})
	ctx := storetest.OpContext(t)
	_, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`2`), IfRevision: big - 1, Conditional: true})
	var ce *statesync.ConflictError
	if !asConflict(err, &ce) || ce.Current != big {
		t.Fatalf("Write(IfRevision %d) on revision %d: error %v; want a conflict at %d", uint64(big-1), uint64(big), err, uint64(big))
	}
	rec, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`3`), IfRevision: big, Conditional: true})
	if err != nil {
		t.Fatalf("Write(IfRevision %d) on revision %d: %v", uint64(big), uint64(big), err)
	}
	if rec.Revision != big+1 {
		t.Errorf("Write(IfRevision %d).Revision = %d; want %d", uint64(big), rec.Revision, uint64(big+1))
	}
	if got := storetest.MustGet(t, s, topic); got.Revision != big+1 || string(got.Data) != "3" {
		t.Errorf("Get(%q) = revision %d, data %s; want %d, 3", topic, got.Revision, got.Data, uint64(big+1))
	}
	_, err = s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`4`), IfRevision: big, Conditional: true})
	if !asConflict(err, &ce) || ce.Current != big+1 {
		t.Errorf("stale Write(IfRevision %d): error %v; want a conflict at %d", uint64(big), err, uint64(big+1))
	}
}

func asConflict(err error, ce **statesync.ConflictError) bool { return errors.As(err, ce) }
