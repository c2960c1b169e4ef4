package natsstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/natsstore"
	"github.com/statesync-go/statesync/statesynctest"
)

// deleteBucket deletes the stream of the bucket (as a `nats kv del` or a
// lost server would) through a connection of its own.
func deleteBucket(t testing.TB, url, bucket string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(storetest.OpContext(t), "KV_"+bucket); err != nil {
		t.Fatalf("deleting the bucket: %v", err)
	}
}

// newFaultRig returns two stores on a new server, B's change feed through
// a proxy that cuts and stalls it; losing history deletes the bucket and
// makes it again.
func newFaultRig(t *testing.T) statesynctest.SharedStoreRig { return newFaultRigProbe(t, time.Second) }

// newFaultRigProbe is newFaultRig with B's probe interval (0: the default).
func newFaultRigProbe(t *testing.T, probe time.Duration) statesynctest.SharedStoreRig {
	url := natstest.NewServer(t)
	p := storetest.NewProxy(t, hostPort(url))
	return statesynctest.SharedStoreRig{
		A:         open(t, url, &natsstore.Options{ProbeInterval: time.Second}),
		B:         open(t, url, &natsstore.Options{FeedURL: "nats://" + p.Addr(), ProbeInterval: probe}),
		CutFeed:   p.Cut,
		StallFeed: p.Stall,
		LoseHistory: func() {
			deleteBucket(t, url, natsstore.DefaultBucket)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := natsstore.Open(ctx, url, nil) // makes the bucket again
			if err != nil {
				t.Fatalf("making the bucket again: %v", err)
			}
			_ = s.Close()
		},
	}
}

// The rig's faults, checked at the level of the store: B's watchers get a
// Resync, B's feed is made again, and later writes through A reach them.
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
			// The last write B's feed delivers before the fault, of a topic
			// not written again: a feed made again must not deliver it twice.
			storetest.WaitSeen(t, w, storetest.MustWrite(t, r.A, statesync.Write{Topic: topic + ".anchor", Data: json.RawMessage(`1`)}))
			start := time.Now()
			undo := tt.fault(r)
			defer undo()
			// A write during the fault reaches B's feed once it is made
			// again (it resumes after the last revision it delivered).
			var during statesync.Record
			if tt.name != "LoseHistory" {
				during = storetest.MustWrite(t, r.A, statesync.Write{Topic: topic, Data: json.RawMessage(`"during"`)})
			}
			poll.Until(t, "a Resync on B", func() bool { return w.Resyncs() >= 1 })
			t.Logf("Resync after %v", time.Since(start).Round(time.Millisecond))
			b := r.B.(*natsstore.Store)
			poll.Until(t, "B's feed made again", func() bool { st := b.FeedStatus(); return st.Connected && st.Reconnects >= 1 })
			poll.UntilState(t, "B's FeedStatus to count its watcher's resyncs", func() (bool, string) {
				st, n := b.FeedStatus(), w.Resyncs()
				ok := st.Connected && st.Reconnects <= 100 && st.Resyncs == uint64(n) && st.Err == nil && !st.Since.Before(start)
				return ok, fmt.Sprintf("%+v; the watcher saw %d resyncs", st, n)
			})
			if tt.name != "LoseHistory" {
				storetest.WaitSeen(t, w, during)
			}
			var later statesync.Record
			poll.Until(t, "A's writes in the new epoch", func() bool {
				later = storetest.MustWrite(t, r.A, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
				return (later.Epoch != first.Epoch) == (tt.name == "LoseHistory")
			})
			storetest.WaitSeen(t, w, later)
			if later.Revision <= first.Revision {
				t.Errorf("revision %d after the fault, %d before: it went back", later.Revision, first.Revision)
			}
			poll.Until(t, "B's epoch to be A's", func() bool { return storetest.MustGet(t, r.B, topic).Epoch == later.Epoch })
			// No record is reported twice.
			seen := map[statesync.Revision]bool{}
			for _, rec := range w.Records() {
				if !rec.Resync {
					if seen[rec.Revision] {
						t.Errorf("%q revision %d reported twice", rec.Topic, rec.Revision)
					}
					seen[rec.Revision] = true
				}
			}
		})
	}
}

// With the default probe interval, a silent feed is found within 15 s.
func TestStallDetectedWithDefaults(t *testing.T) {
	skipSlow(t, "takes 4 s")
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

// A feed whose consumer vanished on the server recovers by itself (the
// ordered consumer is made again from where it was): writes made after
// are reported.
func TestConsumerDeleted(t *testing.T) {
	url := natstest.NewServer(t)
	a := open(t, url, nil)
	b := open(t, url, &natsstore.Options{ProbeInterval: 50 * time.Millisecond})
	w := storetest.Watch(t, b)
	topic := storetest.NewTopic("deleted")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)}))
	js := jsClient(t, url)
	st, err := js.Stream(storetest.OpContext(t), "KV_"+natsstore.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	names := st.ConsumerNames(storetest.OpContext(t))
	for name := range names.Name() {
		if err := js.DeleteConsumer(storetest.OpContext(t), "KV_"+natsstore.DefaultBucket, name); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no consumer on the stream")
	}
	storetest.WaitSeen(t, w, storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)}))
}

// A feed that delivers nothing while the stream holds writes it has not
// delivered, on a connection that still answers pings, is found silent by
// its probe, made again (resuming after what it delivered) and resynced.
func TestSilentConsumer(t *testing.T) {
	url := natstest.NewServer(t)
	a := open(t, url, nil)
	b := open(t, url, &natsstore.Options{ProbeInterval: 50 * time.Millisecond})
	w := storetest.Watch(t, b)
	topic := storetest.NewTopic("silent")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)}))
	natsstore.Mute(b, true)
	rec := storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
	poll.Until(t, "a Resync on B", func() bool { return w.Resyncs() >= 1 })
	natsstore.Mute(b, false)
	storetest.WaitSeen(t, w, rec)
	if st := b.FeedStatus(); st.Reconnects < 1 {
		t.Errorf("B's FeedStatus %+v; want a reconnect", st)
	}
}

// A feed that works is left alone: its probes pass, and it sends no
// Resync and makes no new connection.
func TestSteadyFeed(t *testing.T) {
	url := natstest.NewServer(t)
	a := open(t, url, &natsstore.Options{ProbeInterval: 20 * time.Millisecond})
	w := storetest.Watch(t, a)
	topic := storetest.NewTopic("steady")
	for i := range 5 {
		storetest.WaitSeen(t, w, storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(strconv.Itoa(i))}))
	}
	start := natsstore.Probes(a)
	poll.Until(t, "ten more probes", func() bool { return natsstore.Probes(a) >= start+10 })
	if st := a.FeedStatus(); !st.Connected || st.Reconnects != 0 || st.Resyncs != 0 || st.Err != nil {
		t.Errorf("FeedStatus %+v after probes of a working feed; want connected, no reconnect, no resync", st)
	}
	if n := w.Resyncs(); n != 0 {
		t.Errorf("%d Resync records from a working feed", n)
	}
}
