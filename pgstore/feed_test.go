package pgstore_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/pgtest"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/pgstore"
)

// terminateFeeds kills the feed connections of the stores on db, found by
// their application_name, and returns how many it killed.
func terminateFeeds(t *testing.T, db string) {
	t.Helper()
	admin(t, db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"+
		pgstore.FeedApplicationName+"' AND datname = current_database()")
}

// A feed connection killed by the server is made again; the watchers get
// a Resync once it listens, and the writes after it.
func TestFeedReconnect(t *testing.T) {
	db := pgtest.NewDatabase(t)
	a, b := open(t, db, nil), open(t, db, nil)
	w := storetest.Watch(t, a)
	topic := storetest.NewTopic("reconnect")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, b, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)}))
	epoch := storetest.MustGet(t, a, topic).Epoch

	terminateFeeds(t, db)
	poll.UntilState(t, "a's feed to reconnect and resync", func() (bool, string) {
		st := a.FeedStatus()
		return st.Connected && st.Reconnects >= 1 && w.Resyncs() >= 1, "" +
			"status " + statusString(st)
	})
	// One termination: one reconnection and one resync (the default probe
	// interval is far longer than this test).
	if st := a.FeedStatus(); st.Reconnects != 1 || st.Resyncs != 1 || st.Err != nil {
		t.Errorf("FeedStatus after reconnect = %s; want 1 reconnect, 1 resync and no error", statusString(st))
	}
	rec := storetest.MustWrite(t, b, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
	storetest.WaitSeen(t, w, rec)
	if rec.Epoch != epoch {
		t.Errorf("epoch after a feed reconnect = %q; want %q (nothing was lost)", rec.Epoch, epoch)
	}
	if got, _ := w.Find(topic, rec.Revision); got.Epoch != epoch {
		t.Errorf("watched epoch after a feed reconnect = %q; want %q", got.Epoch, epoch)
	}
}

func statusString(st statesync.FeedStatus) string {
	b, _ := json.Marshal(map[string]any{"connected": st.Connected, "reconnects": st.Reconnects, "resyncs": st.Resyncs, "err": errString(st.Err)})
	return string(b)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// The epoch is one per schema, the same for every store and across
// reopenings; it changes when the topics table is emptied (DELETE,
// TRUNCATE) or restored from an earlier copy, and then every store's
// watchers get a Resync.
func TestEpoch(t *testing.T) {
	const probe = 100 * time.Millisecond
	setUp := func(t *testing.T) (db string, a, b *pgstore.Store, wa, wb *storetest.Recorder, before statesync.Record) {
		db = pgtest.NewDatabase(t)
		a, b = open(t, db, &pgstore.Options{ProbeInterval: probe}), open(t, db, &pgstore.Options{ProbeInterval: probe})
		wa, wb = storetest.Watch(t, a), storetest.Watch(t, b)
		before = storetest.MustWrite(t, a, statesync.Write{Topic: storetest.NewTopic("before"), Data: json.RawMessage(`1`)})
		storetest.WaitSeen(t, wb, before)
		if e := storetest.MustGet(t, b, "x").Epoch; e != before.Epoch {
			t.Fatalf("b's epoch %q; a's %q: want one epoch", e, before.Epoch)
		}
		return
	}
	lost := func(t *testing.T, a, b *pgstore.Store, wa, wb *storetest.Recorder, before statesync.Record) {
		t.Helper()
		for i, s := range []*pgstore.Store{a, b} {
			w := []*storetest.Recorder{wa, wb}[i]
			poll.Until(t, "a Resync and a new epoch", func() bool {
				rec, err := s.Get(storetest.OpContext(t), before.Topic)
				return err == nil && rec.Epoch != before.Epoch && w.Resyncs() >= 1
			})
		}
		after := storetest.MustWrite(t, b, statesync.Write{Topic: before.Topic, Data: json.RawMessage(`2`)})
		if after.Epoch == before.Epoch {
			t.Errorf("write after the loss: epoch %q, the old one", after.Epoch)
		}
		storetest.WaitSeen(t, wa, after)
		if got, _ := wa.Find(after.Topic, after.Revision); got.Epoch != after.Epoch {
			t.Errorf("watched epoch %q; want the new %q", got.Epoch, after.Epoch)
		}
		if e := storetest.MustGet(t, a, "x").Epoch; e != after.Epoch {
			t.Errorf("a's epoch %q, b's %q: want one epoch", e, after.Epoch)
		}
	}

	t.Run("Stable", func(t *testing.T) {
		db, a, _, wa, _, before := setUp(t)
		c := open(t, db, nil)
		if e := storetest.MustGet(t, c, "x").Epoch; e != before.Epoch {
			t.Errorf("a third store's epoch %q; want %q", e, before.Epoch)
		}
		c.Close()
		terminateFeeds(t, db)
		poll.Until(t, "a's feed to reconnect", func() bool { return a.FeedStatus().Reconnects >= 1 && a.FeedStatus().Connected })
		if e := storetest.MustGet(t, a, "x").Epoch; e != before.Epoch {
			t.Errorf("epoch after a reconnect %q; want %q", e, before.Epoch)
		}
		// An empty DELETE loses nothing.
		admin(t, db, "DELETE FROM statesync.topics WHERE topic = 'none'")
		rec := storetest.MustWrite(t, a, statesync.Write{Topic: before.Topic, Data: json.RawMessage(`3`)})
		storetest.WaitSeen(t, wa, rec)
		if rec.Epoch != before.Epoch {
			t.Errorf("epoch after a DELETE of no row %q; want %q", rec.Epoch, before.Epoch)
		}
	})
	t.Run("Truncate", func(t *testing.T) {
		db, a, b, wa, wb, before := setUp(t)
		admin(t, db, "TRUNCATE statesync.topics")
		lost(t, a, b, wa, wb, before)
	})
	t.Run("Delete", func(t *testing.T) {
		db, a, b, wa, wb, before := setUp(t)
		admin(t, db, "DELETE FROM statesync.topics")
		lost(t, a, b, wa, wb, before)
	})
	t.Run("MetaDeleted", func(t *testing.T) {
		db, a, b, wa, wb, before := setUp(t)
		admin(t, db, "DELETE FROM statesync.meta")
		lost(t, a, b, wa, wb, before)
	})
	t.Run("RestoredCopy", func(t *testing.T) {
		db, a, b, wa, wb, before := setUp(t)
		admin(t, db,
			"CREATE TABLE public.topics_copy AS SELECT * FROM statesync.topics",
			"CREATE TABLE public.meta_copy AS SELECT * FROM statesync.meta")
		storetest.MustWrite(t, a, statesync.Write{Topic: before.Topic, Data: json.RawMessage(`"lost"`)})
		// The restore of a dump: the schema is dropped and made again (here
		// by Open), then the old rows are loaded, meta row included.
		admin(t, db, "DROP SCHEMA statesync CASCADE")
		open(t, db, nil).Close()
		admin(t, db,
			"DELETE FROM statesync.meta",
			"INSERT INTO statesync.meta SELECT * FROM public.meta_copy",
			"INSERT INTO statesync.topics SELECT * FROM public.topics_copy")
		if got := storetest.MustGet(t, a, before.Topic); got.Revision != before.Revision {
			t.Fatalf("restored revision %d; want %d", got.Revision, before.Revision)
		}
		lost(t, a, b, wa, wb, before)
	})
}

// A feed that stays connected but delivers nothing (a stalled network
// path) is declared dead within two probe intervals, reconnected once the
// path works again, and resynced; Close never waits on it.
func TestProbeSilentFeed(t *testing.T) {
	const probe = 200 * time.Millisecond
	db := pgtest.NewDatabase(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	p := storetest.NewProxy(t, u.Host)
	a, b := open(t, feedVia(t, db, p, probe), nil), open(t, db, nil)
	w := storetest.Watch(t, a)
	topic := storetest.NewTopic("silent")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, b, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)}))

	p.Pause(true)
	paused := time.Now()
	poll.Until(t, "the silent feed declared down", func() bool { return !a.FeedStatus().Connected })
	if d := time.Since(paused); d > 2*probe+time.Second {
		t.Errorf("silent feed detected after %v; want about 2 probe intervals (%v)", d, 2*probe)
	}
	if st := a.FeedStatus(); st.Err == nil {
		t.Errorf("FeedStatus of a dead feed has no Err")
	}
	missed := storetest.MustWrite(t, b, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
	p.Pause(false)
	poll.Until(t, "the feed to reconnect and resync", func() bool {
		st := a.FeedStatus()
		return st.Connected && st.Reconnects >= 1 && w.Resyncs() >= 1
	})
	if _, ok := w.Find(topic, missed.Revision); ok {
		t.Logf("the write made during the stall was delivered after all")
	}
	storetest.WaitSeen(t, w, storetest.MustWrite(t, b, statesync.Write{Topic: topic, Data: json.RawMessage(`3`)}))

	// A stalled feed does not hold up Close.
	p.Pause(true)
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close with a stalled feed took %v", d)
	}
	p.Pause(false)
}

// Each store probes on a channel of its own: the schema's channel carries
// writes only, whatever the number of stores, and the stores' own probes
// keep their idle feeds up (a feed deaf to them would be found silent and
// reconnected every two intervals: about ten times here; a loaded machine
// may stall one probe).
func TestProbesStayOwn(t *testing.T) {
	const probe = 100 * time.Millisecond
	db := pgtest.NewDatabase(t)
	a := open(t, db, &pgstore.Options{ProbeInterval: probe})
	b := open(t, db, &pgstore.Options{ProbeInterval: probe})
	ctx := storetest.OpContext(t)
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN statesync_statesync`); err != nil {
		t.Fatal(err)
	}
	topic := storetest.NewTopic("own")
	storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	var heard []string
	deadline := time.Now().Add(20 * probe)
	for {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			break
		}
		heard = append(heard, n.Payload)
	}
	if len(heard) != 1 || !strings.HasPrefix(heard[0], "w|") || !strings.Contains(heard[0], topic) {
		t.Errorf("the schema's channel carried %q; want the one write", heard)
	}
	for _, s := range []*pgstore.Store{a, b} {
		if st := s.FeedStatus(); st.Reconnects > 2 {
			t.Errorf("an idle feed probing every %v: %s", probe, statusString(st))
		}
	}
}
