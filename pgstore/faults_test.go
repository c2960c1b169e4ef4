package pgstore_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/faultproxy"
	"github.com/statesync-go/statesync/internal/pgtest"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/pgstore"
	"github.com/statesync-go/statesync/statesynctest"
)

// feedVia returns dbURL with its change feed going through p.
func feedVia(t testing.TB, dbURL string, p *faultproxy.Proxy, probe time.Duration) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	fu := *u
	fu.Host = p.Addr()
	q := u.Query()
	q.Set("feed_url", fu.String())
	if probe > 0 {
		q.Set("feed_probe", probe.String())
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// newFaultRig returns two stores on a new database, B's change feed
// through a proxy that cuts and stalls it; losing history truncates the
// topics table.
func newFaultRig(t *testing.T) statesynctest.SharedStoreRig { return newFaultRigProbe(t, time.Second) }

// newFaultRigProbe is newFaultRig with B's probe interval (0: the default).
func newFaultRigProbe(t *testing.T, probe time.Duration) statesynctest.SharedStoreRig {
	db := pgtest.NewDatabase(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	p := storetest.NewProxy(t, u.Host)
	return statesynctest.SharedStoreRig{
		A:           open(t, db, nil),
		B:           open(t, feedVia(t, db, p, probe), nil),
		CutFeed:     p.Cut,
		StallFeed:   p.Stall,
		LoseHistory: func() { admin(t, db, "TRUNCATE statesync.topics") },
	}
}

// The rig's faults, checked at the level of the store: B's watchers get a
// Resync, B's feed reconnects, and later writes through A reach them.
func TestFaultRig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault func(r statesynctest.SharedStoreRig) (undo func())
	}{
		{"Cut", func(r statesynctest.SharedStoreRig) func() { r.CutFeed(); return func() {} }},
		{"Stall", func(r statesynctest.SharedStoreRig) func() { return r.StallFeed() }},
		{"LoseHistory", func(r statesynctest.SharedStoreRig) func() { r.LoseHistory(); return func() {} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newFaultRig(t)
			w := storetest.Watch(t, r.B)
			topic := storetest.NewTopic("fault")
			first := storetest.MustWrite(t, r.A, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
			storetest.WaitSeen(t, w, first)
			start := time.Now()
			undo := tt.fault(r)
			defer undo()
			poll.Until(t, "a Resync on B", func() bool { return w.Resyncs() >= 1 })
			t.Logf("Resync after %v", time.Since(start).Round(time.Millisecond))
			b := r.B.(*pgstore.Store)
			if tt.name != "LoseHistory" {
				poll.Until(t, "B's feed reconnected", func() bool { st := b.FeedStatus(); return st.Connected && st.Reconnects >= 1 })
			}
			later := storetest.MustWrite(t, r.A, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
			storetest.WaitSeen(t, w, later)
			if got := storetest.MustGet(t, r.B, topic); got.Epoch != later.Epoch {
				t.Errorf("B's epoch %q; A's %q", got.Epoch, later.Epoch)
			}
			if (later.Epoch != first.Epoch) != (tt.name == "LoseHistory") {
				t.Errorf("epoch %q after the fault, %q before", later.Epoch, first.Epoch)
			}
		})
	}
}

// With the default probe interval, a silent feed is found within 15 s.
func TestStallDetectedWithDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	r := newFaultRigProbe(t, 0)
	w := storetest.Watch(t, r.B)
	topic := storetest.NewTopic("stall")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, r.A, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)}))
	resume := r.StallFeed()
	defer resume()
	start := time.Now()
	poll.Until(t, "a Resync on B", func() bool { return w.Resyncs() >= 1 })
	d := time.Since(start)
	t.Logf("silent feed found and resynced after %v", d.Round(time.Millisecond))
	if d > 15*time.Second {
		t.Errorf("silent feed found after %v; want within 15 s", d)
	}
	storetest.WaitSeen(t, w, storetest.MustWrite(t, r.A, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)}))
}

// The shared-store fault suite, on B's feed through a fault proxy.
func TestSharedStoreFaults(t *testing.T) {
	statesynctest.TestSharedStoreFaults(t, newFaultRig)
}
