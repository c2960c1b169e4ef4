package statesynctest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

// A SharedStoreRig is two handles A and B on one shared storage, as two
// daemons hold, with the faults [TestSharedStoreFaults] injects into B's
// change feed and into the storage. B's Watch must report A's writes
// through a change feed (a LISTEN connection, a subscription) that the
// rig can break.
type SharedStoreRig struct {
	A, B statesync.Store

	// CutFeed breaks B's change-feed connection (closes it under B, as a
	// network failure or a server restart would) and returns at once,
	// without waiting for anything. B must notice and reconnect by
	// itself, then send its watchers a Record with Resync set. The
	// connections B uses for reads and writes may be cut too.
	CutFeed func()

	// StallFeed makes B's change feed silent while its connection stays
	// open (a peer that stopped answering, a dropped NAT entry): nothing
	// arrives on it, nothing fails. B's liveness probe must notice within
	// 15 s, send its watchers a Resync record and make a new feed
	// connection, which must not be stalled (faultproxy.Proxy.Stall
	// stalls only the connections open when it is called). B's reads and
	// writes must keep working. resume ends the stall of the old
	// connection (B may well have closed it by then); the suite calls it
	// once.
	StallFeed func() (resume func())

	// LoseHistory makes the shared storage lose its history, as a
	// database emptied or restored from an older backup: afterwards the
	// store must report a new epoch (through A and B alike) and B's
	// watchers must get a Resync record or records of the new epoch.
	LoseHistory func()
}

// stallDetection is how long a store may take to notice that its change
// feed went silent: two missed liveness probes at their default interval
// (5 s), plus a margin.
const stallDetection = 15 * time.Second

// TestSharedStoreFaults checks that a store shared by several processes
// recovers from faults of its change feed and of its storage, without
// losing track of what changed meanwhile, in subtests:
//
//   - FeedCut: B's feed connection is cut while A writes; B reconnects,
//     sends its watchers a Resync record, a [statesync.Source] on B ends
//     with A's latest state of every topic, and later writes on A reach
//     B's watchers again. If B is a [statesync.FeedReporter] its status
//     counts the reconnect and ends connected.
//   - FeedStall: B's feed goes silent while A writes; within 15 s B sends
//     its watchers a Resync record, and a Source on B ends with A's
//     latest state; after the stall later writes reach B's watchers.
//   - LoseHistory: the storage loses its history; A and B report a new
//     epoch, B's watchers hear of it (a Resync record or records of the
//     new epoch), and a Source on B emits invalidations of the new epoch
//     for the topics it knew.
//
// The Source's part relies on its handling of Resync records: it lists
// the store and emits an invalidation for every topic that differs from
// what it knew.
//
// newRig is called once per subtest, with handles that must not have
// been faulted before, and must register its own cleanup (closing A and
// B and whatever the faults need). Like [TestSharedStore], the suite
// writes only topics named for this run.
func TestSharedStoreFaults(t *testing.T, newRig func(t *testing.T) SharedStoreRig) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, rig SharedStoreRig)
	}{
		{"FeedCut", testFaultFeedCut},
		{"FeedStall", testFaultFeedStall},
		{"LoseHistory", testFaultLoseHistory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newRig(t)
			if rig.A == nil || rig.B == nil {
				t.Fatal("newRig returned a nil store")
			}
			if rig.CutFeed == nil || rig.StallFeed == nil || rig.LoseHistory == nil {
				t.Fatal("newRig returned a rig without CutFeed, StallFeed or LoseHistory")
			}
			tt.f(t, rig)
		})
	}
}

// faultTopics is how many topics each fault case writes.
const faultTopics = 3

// A faultFixture is what each fault case starts from: topics written
// through A, seen by a watcher on B and read through a Source on B, so
// that the Source holds them in memory (a stale copy is what a resync
// must replace).
type faultFixture struct {
	rig     SharedStoreRig
	topics  []string
	first   []statesync.Record // the first write of each topic, through A
	watcher *storeWatcher      // on B
	src     *statesync.Source  // on B
	invs    *invalidationLog   // of src
}

func newFaultFixture(t *testing.T, rig SharedStoreRig, base string) *faultFixture {
	t.Helper()
	ctx := opContext(t)
	prefix := newTopic(t, base)
	f := &faultFixture{rig: rig}
	for i := range faultTopics {
		f.topics = append(f.topics, fmt.Sprintf("%s.%d", prefix, i))
	}
	f.watcher = newPrefixWatcher(t, rig.B, prefix+".")
	src, err := statesync.NewSource(rig.B, nil)
	if err != nil {
		t.Fatalf("NewSource(B) error: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	f.src = src
	f.invs = newInvalidationLog(t, src, prefix+".")
	var want []topicRev
	for i, topic := range f.topics {
		r := mustWrite(t, ctx, rig.A, statesync.Write{Topic: topic, Data: json.RawMessage(fmt.Sprintf(`{"v":"first","i":%d}`, i)), SourceID: "node-a"})
		f.first = append(f.first, r)
		want = append(want, topicRev{topic, r.Revision})
	}
	if !f.watcher.waitCommitted(t, want) {
		t.FailNow()
	}
	for i, topic := range f.topics {
		snap, err := src.Snapshot(ctx, topic)
		if err != nil {
			t.Fatalf("Source(B).Snapshot(%q) error: %v", topic, err)
		}
		if snap.Revision != f.first[i].Revision {
			t.Fatalf("Source(B).Snapshot(%q).Revision = %d; want %d, written through A and seen by B's watcher", topic, snap.Revision, f.first[i].Revision)
		}
	}
	return f
}

// writeAll writes a new value to every topic through A and returns the
// records.
func (f *faultFixture) writeAll(t *testing.T, tag string) []statesync.Record {
	t.Helper()
	ctx := opContext(t)
	var recs []statesync.Record
	for i, topic := range f.topics {
		recs = append(recs, mustWrite(t, ctx, f.rig.A, statesync.Write{Topic: topic,
			Data: json.RawMessage(fmt.Sprintf(`{"v":%q,"i":%d}`, tag, i)), SourceID: "node-a"}))
	}
	return recs
}

// waitSourceHas waits until the Source on B serves want for every topic
// (its revision, epoch and data).
func (f *faultFixture) waitSourceHas(t *testing.T, what string, want []statesync.Record) bool {
	t.Helper()
	return eventually(t, waitTimeout, what, func() (bool, string) {
		var stale []string
		for _, w := range want {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			snap, err := f.src.Snapshot(ctx, w.Topic)
			cancel()
			if err != nil {
				stale = append(stale, fmt.Sprintf("%s: error %v", w.Topic, err))
				continue
			}
			if snap.Revision != w.Revision || snap.Epoch != w.Epoch || !jsonEqual(snap.Data, w.Data) {
				stale = append(stale, fmt.Sprintf("%s: revision %d epoch %q data %s (want %d %q %s)",
					w.Topic, snap.Revision, snap.Epoch, snap.Data, w.Revision, w.Epoch, w.Data))
			}
		}
		return len(stale) == 0, "Source(B).Snapshot: " + strings.Join(stale, "; ")
	})
}

// checkFeedAfter writes once more through A and checks that B's watcher
// hears of it: B's feed works again.
func (f *faultFixture) checkFeedAfter(t *testing.T, fault string) {
	t.Helper()
	r := mustWrite(t, opContext(t), f.rig.A, statesync.Write{Topic: f.topics[0], Data: json.RawMessage(`{"v":"after"}`), SourceID: "node-a"})
	if !f.watcher.waitCommitted(t, topicRevs(r.Topic, r.Revision)) {
		t.Errorf("after %s, B's feed does not report A's writes any more", fault)
	}
}

// feedStatus returns B's feed status, and false if B does not report one.
func feedStatus(s statesync.Store) (statesync.FeedStatus, bool) {
	fr, ok := s.(statesync.FeedReporter)
	if !ok {
		return statesync.FeedStatus{}, false
	}
	return fr.FeedStatus(), true
}

// checkFeedStatus checks that B's FeedStatus (if it has one) ends
// connected, with more reconnects and resyncs than before.
func checkFeedStatus(t *testing.T, b statesync.Store, before statesync.FeedStatus, fault string) {
	t.Helper()
	if _, ok := feedStatus(b); !ok {
		return
	}
	eventually(t, waitTimeout, "B's FeedStatus to show the reconnect after "+fault, func() (bool, string) {
		st, _ := feedStatus(b)
		ok := st.Connected && st.Reconnects > before.Reconnects && st.Resyncs > before.Resyncs
		return ok, fmt.Sprintf("%+v (before the fault: %+v)", st, before)
	})
}

func testFaultFeedCut(t *testing.T, rig SharedStoreRig) {
	f := newFaultFixture(t, rig, "feedcut")
	before, _ := feedStatus(rig.B)
	resyncs := f.watcher.resyncs()
	rig.CutFeed()
	during := f.writeAll(t, "during the cut")
	if !f.watcher.waitResync(t, resyncs, waitTimeout, "B's watcher to get a Resync record after its feed was cut") {
		return // what follows needs it
	}
	f.waitSourceHas(t, "the Source on B to serve the writes made during the cut", during)
	f.checkFeedAfter(t, "the cut")
	checkFeedStatus(t, rig.B, before, "the cut")
}

func testFaultFeedStall(t *testing.T, rig SharedStoreRig) {
	f := newFaultFixture(t, rig, "feedstall")
	before, _ := feedStatus(rig.B)
	resyncs := f.watcher.resyncs()
	resume := rig.StallFeed()
	var once sync.Once
	resumeOnce := func() { once.Do(resume) }
	t.Cleanup(resumeOnce)
	start := time.Now()
	during := f.writeAll(t, "during the stall")
	if !f.watcher.waitResync(t, resyncs, stallDetection, "B's watcher to get a Resync record after its feed went silent") {
		return // what follows needs it
	}
	t.Logf("silent feed detected after %v", time.Since(start).Round(time.Millisecond))
	f.waitSourceHas(t, "the Source on B to serve the writes made during the stall", during)
	resumeOnce()
	f.checkFeedAfter(t, "the stall")
	checkFeedStatus(t, rig.B, before, "the stall")
}

func testFaultLoseHistory(t *testing.T, rig SharedStoreRig) {
	f := newFaultFixture(t, rig, "losthistory")
	oldEpoch := f.first[0].Epoch
	resyncs := f.watcher.resyncs()
	rig.LoseHistory()

	// A and B read the new epoch.
	var newEpoch string
	eventually(t, waitTimeout, "A and B to report a new epoch after the loss of history", func() (bool, string) {
		var got []string
		ok := true
		for _, s := range []statesync.Store{rig.A, rig.B} {
			for _, topic := range f.topics {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				r, err := s.Get(ctx, topic)
				cancel()
				if err != nil {
					return false, fmt.Sprintf("Get(%q) error: %v", topic, err)
				}
				got = append(got, r.Epoch)
				ok = ok && r.Epoch != oldEpoch && r.Epoch == got[0]
			}
		}
		if ok {
			newEpoch = got[0]
		}
		return ok, fmt.Sprintf("epochs (A's topics, then B's) %q; the old one was %q", got, oldEpoch)
	})
	if newEpoch == "" {
		return
	}
	// B's watcher hears of it.
	heard := eventually(t, waitTimeout, "B's watcher to get a Resync record or a record of the new epoch", func() (bool, string) {
		if f.watcher.resyncs() > resyncs {
			return true, ""
		}
		for _, r := range f.watcher.records() {
			if r.Epoch == newEpoch {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d resyncs, records %v", f.watcher.resyncs(), f.watcher.records())
	})
	if !heard {
		return // what follows needs it
	}
	// The Source on B invalidates every topic it knew, in the new epoch.
	eventually(t, waitTimeout, "the Source on B to emit an invalidation of the new epoch for each topic", func() (bool, string) {
		var missing []string
		for _, topic := range f.topics {
			if !f.invs.seenEpoch(topic, newEpoch) {
				missing = append(missing, topic)
			}
		}
		return len(missing) == 0, fmt.Sprintf("none for %q; invalidations: %v", missing, f.invs.all())
	})
	// Writes go on in the new epoch and reach B's watcher and Source.
	after := f.writeAll(t, "after the loss")
	for _, r := range after {
		if r.Epoch != newEpoch {
			t.Errorf("A.Write(%q).Epoch = %q after the loss of history; want the new epoch %q", r.Topic, r.Epoch, newEpoch)
		}
	}
	var want []topicRev
	for _, r := range after {
		want = append(want, topicRev{r.Topic, r.Revision})
	}
	f.watcher.waitCommitted(t, want)
	f.waitSourceHas(t, "the Source on B to serve the writes made after the loss of history", after)
}

// eventually calls cond until it holds, for at most timeout, sleeping a
// little between calls; on timeout it reports what it waited for, with
// the state cond last described, and returns false.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, state string)) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		ok, state := cond()
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for %s; last saw: %s", timeout, what, state)
			return false
		}
		time.Sleep(interval)
		interval = min(2*interval, 50*time.Millisecond)
	}
}

// newPrefixWatcher watches s for the records of the topics under prefix
// and for Resync records.
func newPrefixWatcher(t testing.TB, s statesync.Store, prefix string) *storeWatcher {
	t.Helper()
	return newStoreWatcherOf(t, s, &storeWatcher{store: s, prefix: prefix})
}

// waitResync waits, for at most timeout, for more than n Resync records.
func (w *storeWatcher) waitResync(t testing.TB, n int, timeout time.Duration, what string) bool {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		ch := w.sig.wait() // before the check, so that no change is missed
		if w.resyncs() > n {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Errorf("timed out after %v waiting for %s", timeout, what)
			return false
		}
	}
}

// An invalidationLog records the invalidations a Source emits for the
// topics under a prefix.
type invalidationLog struct {
	prefix string

	mu   sync.Mutex // protects invs
	invs []statesync.Invalidation
}

func newInvalidationLog(t testing.TB, src *statesync.Source, prefix string) *invalidationLog {
	t.Helper()
	l := &invalidationLog{prefix: prefix}
	stop, err := src.Watch(context.Background(), func(inv statesync.Invalidation) {
		if strings.HasPrefix(inv.Topic, prefix) {
			l.mu.Lock()
			l.invs = append(l.invs, inv)
			l.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("Source.Watch() error: %v", err)
	}
	t.Cleanup(stop)
	return l
}

func (l *invalidationLog) seenEpoch(topic, epoch string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.invs, func(inv statesync.Invalidation) bool { return inv.Topic == topic && inv.Epoch == epoch })
}

func (l *invalidationLog) all() []statesync.Invalidation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.invs)
}
