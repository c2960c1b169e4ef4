package redisstore_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/faultproxy"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/redisstore"
	"github.com/statesync-go/statesync/statesynctest"
)

// feedVia returns storeURL with its change feed going through p.
func feedVia(t testing.TB, storeURL string, p *faultproxy.Proxy, probe time.Duration) string {
	t.Helper()
	u := storetest.WithOpt(t, storeURL, "feed_url", withHost(t, redisOnly(t, storeURL), p.Addr()))
	if probe > 0 {
		u = storetest.WithOpt(t, u, "feed_probe", probe.String())
	}
	return u
}

// redisOnly returns storeURL without its query options.
func redisOnly(t testing.TB, storeURL string) string {
	t.Helper()
	u := withHost(t, storeURL, hostOf(t, storeURL))
	if i := len(u) - len(queryOf(u)); i > 0 && queryOf(u) != "" {
		return u[:i-1]
	}
	return u
}

func queryOf(u string) string {
	for i := range len(u) {
		if u[i] == '?' {
			return u[i+1:]
		}
	}
	return ""
}

// newFaultRig returns two stores on a new prefix, B's change feed through
// a proxy that cuts and stalls it; losing history deletes the prefix's
// keys.
func newFaultRig(t *testing.T) statesynctest.SharedStoreRig {
	return newFaultRigProbe(t, time.Second, nil)
}

// newFaultRigProbe is newFaultRig with B's probe interval (0: the default)
// and options.
func newFaultRigProbe(t *testing.T, probe time.Duration, bOpts *redisstore.Options) statesynctest.SharedStoreRig {
	u, prefix := redistest.NewPrefix(t)
	p := storetest.NewProxy(t, hostOf(t, u))
	return statesynctest.SharedStoreRig{
		A:         open(t, u, nil),
		B:         open(t, feedVia(t, u, p, probe), bOpts),
		CutFeed:   p.Cut,
		StallFeed: p.Stall,
		LoseHistory: func() {
			if err := redistest.DeletePrefix(redisOnly(t, u), prefix); err != nil {
				t.Error(err)
			}
		},
	}
}

// The rig's faults, checked at the level of the store: B's watchers get a
// Resync, B's feed reconnects, and later writes through A reach them.
func TestFaultRig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault func(r statesynctest.SharedStoreRig) (undo func())
		log   string // what B logs
		not   string // what B does not log
	}{
		{"Cut", func(r statesynctest.SharedStoreRig) func() { r.CutFeed(); return func() {} }, "change feed lost", "silent"},
		{"Stall", func(r statesynctest.SharedStoreRig) func() { return r.StallFeed() }, "change feed silent", "epoch changed"},
		{"LoseHistory", func(r statesynctest.SharedStoreRig) func() { r.LoseHistory(); return func() {} }, "epoch changed", "change feed lost"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs lockedbuf.Buffer
			r := newFaultRigProbe(t, time.Second, &redisstore.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			w := storetest.Watch(t, r.B)
			topic := storetest.NewTopic("fault")
			first := storetest.MustWrite(t, r.A, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
			storetest.WaitSeen(t, w, first)
			start := time.Now()
			undo := tt.fault(r)
			defer undo()
			poll.Until(t, "a Resync on B", func() bool { return w.Resyncs() >= 1 })
			t.Logf("Resync after %v", time.Since(start).Round(time.Millisecond))
			b := r.B.(*redisstore.Store)
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
			if st := b.FeedStatus(); st.Resyncs < 1 || !st.Connected {
				t.Errorf("B.FeedStatus() = %+v; want connected, Resyncs >= 1", st)
			}
			if out := logs.String(); !strings.Contains(out, tt.log) || strings.Contains(out, tt.not) {
				t.Errorf("B's log %q; want it to say %q, not %q", out, tt.log, tt.not)
			}
		})
	}
}

// With the default probe interval, a silent feed is found within 15 s.
func TestStallDetectedWithDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 4 s")
	}
	r := newFaultRigProbe(t, 0, nil)
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

// A feed connection that died while idle, between two reads, is redialed by
// the client's pool without an error; the feed counts the new connection,
// reports the loss (a reconnect in FeedStatus, a Resync to the watchers,
// "redialed" in the log) and goes on reading. Here the redial is
// simulated by counting one more connection.
func TestFeedRedialed(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	var logs lockedbuf.Buffer
	s, err := redisstore.Open(t.Context(), storetest.WithOpt(t, u, "feed_probe", "300ms"), &redisstore.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if redisstore.FeedConns(s) == 0 {
		t.Fatal("the feed's first connection was not counted")
	}
	w := storetest.Watch(t, s)
	topic := storetest.NewTopic("redial")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})) // the feed reads
	redisstore.CountFeedConn(s)
	poll.Until(t, "a Resync after the redial", func() bool { return w.Resyncs() >= 1 })
	poll.Until(t, "the reconnect counted", func() bool { st := s.FeedStatus(); return st.Connected && st.Reconnects >= 1 })
	if got := logs.String(); !strings.Contains(got, "redialed") {
		t.Errorf("the log does not name the redial:\n%s", got)
	}
	storetest.WaitSeen(t, w, storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)}))
}
