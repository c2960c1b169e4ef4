package statesynctest_test

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/statesynctest"
)

// fakeStorage is a shared storage in memory with handles (fakeHandle)
// whose change feeds can be cut and stalled, as a database's LISTEN
// connections can: the self-test of TestSharedStoreFaults.
type fakeStorage struct {
	mu      sync.Mutex // protects the fields below
	epoch   string
	next    statesync.Revision
	topics  map[string]statesync.Record
	handles []*fakeHandle
}

func newFakeStorage() *fakeStorage {
	return &fakeStorage{epoch: statesync.NewEpoch(), next: 1, topics: map[string]statesync.Record{}}
}

// fakeMode is a defect of a fakeHandle, to check that the suite catches it.
type fakeMode string

const (
	fakeCorrect  fakeMode = ""
	fakeNoResync fakeMode = "no-resync" // reconnects without telling its watchers
)

// A fakeHandle is one process's handle on a fakeStorage. Its feed
// "connection" drops what is committed while it is down or stalled; it
// reconnects a little after a cut, and its "liveness probe" declares a
// stalled feed dead a little after the stall.
type fakeHandle struct {
	st   *fakeStorage
	mode fakeMode
	feed statesync.Feed
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	mu      sync.Mutex // protects the fields below
	up      bool       // the feed connection is up
	stalled bool       // the feed connection is up but silent
	gen     int        // counts feed connections
	status  statesync.FeedStatus
	closed  bool
}

// How long the fake takes to reconnect after a cut, and to notice a
// stall.
const (
	fakeReconnectDelay = 20 * time.Millisecond
	fakeProbeDelay     = 200 * time.Millisecond
)

var (
	_ statesync.Store        = (*fakeHandle)(nil)
	_ statesync.FeedReporter = (*fakeHandle)(nil)
)

func (st *fakeStorage) handle(t *testing.T, mode fakeMode) *fakeHandle {
	h := &fakeHandle{st: st, mode: mode, done: make(chan struct{}), up: true}
	h.status = statesync.FeedStatus{Connected: true, Since: time.Now()}
	st.mu.Lock()
	st.handles = append(st.handles, h)
	st.mu.Unlock()
	t.Cleanup(h.Close)
	return h
}

func (h *fakeHandle) Get(ctx context.Context, topic string) (statesync.Record, error) {
	if err := h.check(ctx); err != nil {
		return statesync.Record{}, err
	}
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if r, ok := h.st.topics[topic]; ok {
		return r, nil
	}
	return statesync.Record{Topic: topic, Epoch: h.st.epoch, Data: json.RawMessage("null")}, nil
}

func (h *fakeHandle) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	if err := h.check(ctx); err != nil {
		return statesync.Record{}, err
	}
	data := json.RawMessage("null")
	if len(w.Data) > 0 {
		data = slices.Clone(w.Data)
	}
	st := h.st
	st.mu.Lock()
	cur := st.topics[w.Topic]
	if w.Conditional && cur.Revision != w.IfRevision {
		st.mu.Unlock()
		return statesync.Record{}, &statesync.ConflictError{Topic: w.Topic, Expected: w.IfRevision, Current: cur.Revision, Epoch: st.epoch}
	}
	rec := statesync.Record{Topic: w.Topic, Revision: st.next, Epoch: st.epoch, Data: data, SourceID: w.SourceID, Time: time.Now()}
	st.next++
	st.topics[w.Topic] = rec
	handles := slices.Clone(st.handles)
	st.mu.Unlock()
	for _, o := range handles {
		o.deliver(rec)
	}
	return rec, nil
}

func (h *fakeHandle) List(ctx context.Context) ([]statesync.Record, error) {
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	h.st.mu.Lock()
	out := make([]statesync.Record, 0, len(h.st.topics))
	for _, r := range h.st.topics {
		r.Data = nil
		out = append(out, r)
	}
	h.st.mu.Unlock()
	slices.SortFunc(out, func(a, b statesync.Record) int { return cmp.Compare(a.Topic, b.Topic) })
	return out, nil
}

func (h *fakeHandle) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	return h.feed.Watch(fn), nil
}

func (h *fakeHandle) FeedStatus() statesync.FeedStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

func (h *fakeHandle) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *fakeHandle) check(ctx context.Context) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return statesync.ErrClosed
	}
	return ctx.Err()
}

// deliver passes rec to the watchers if the feed is up and not stalled;
// otherwise it is lost, as a NOTIFY sent to a dead connection.
func (h *fakeHandle) deliver(rec statesync.Record) {
	h.mu.Lock()
	ok := h.up && !h.stalled
	h.mu.Unlock()
	if ok {
		h.feed.Publish(rec)
	}
}

// resync tells the watchers that they may have missed changes (unless the
// handle is broken that way).
func (h *fakeHandle) resync() {
	if h.mode == fakeNoResync {
		return
	}
	h.mu.Lock()
	h.status.Resyncs++
	h.mu.Unlock()
	h.feed.Publish(statesync.Record{Resync: true})
}

// cut drops the feed connection; a new one is made after
// fakeReconnectDelay.
func (h *fakeHandle) cut() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !h.up {
		return
	}
	h.up = false
	h.gen++
	h.status.Connected, h.status.Since = false, time.Now()
	h.after(fakeReconnectDelay, h.reconnect)
}

func (h *fakeHandle) reconnect() {
	h.mu.Lock()
	h.up, h.stalled = true, false
	h.gen++
	h.status.Connected, h.status.Since, h.status.Reconnects = true, time.Now(), h.status.Reconnects+1
	h.mu.Unlock()
	h.resync() // after the new connection listens, so no change falls between
}

// stall makes the feed silent; the probe notices after fakeProbeDelay and
// reconnects.
func (h *fakeHandle) stall() (resume func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stalled = true
	gen := h.gen
	h.after(fakeProbeDelay, func() {
		h.mu.Lock()
		dead := h.gen == gen && h.stalled
		if dead {
			h.up = false
			h.status.Connected, h.status.Since = false, time.Now()
		}
		h.mu.Unlock()
		if dead {
			h.reconnect()
		}
	})
	return func() {
		h.mu.Lock()
		if h.gen == gen {
			h.stalled = false
		}
		h.mu.Unlock()
	}
}

// after runs f after d on a goroutine of h, unless h is closed first. It
// is called with h.mu held.
func (h *fakeHandle) after(d time.Duration, f func()) {
	if h.closed {
		return
	}
	h.wg.Go(func() {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			f()
		case <-h.done:
		}
	})
}

// loseHistory empties the storage under a new epoch, with revisions
// starting again from 1, as a database restored from an old backup; the
// handles' feeds tell their watchers.
func (st *fakeStorage) loseHistory() {
	st.mu.Lock()
	st.epoch = statesync.NewEpoch()
	st.next = 1
	st.topics = map[string]statesync.Record{}
	handles := slices.Clone(st.handles)
	st.mu.Unlock()
	for _, h := range handles {
		h.resync()
	}
}

func newFakeRig(mode fakeMode) func(t *testing.T) statesynctest.SharedStoreRig {
	return func(t *testing.T) statesynctest.SharedStoreRig {
		st := newFakeStorage()
		a, b := st.handle(t, fakeCorrect), st.handle(t, mode)
		return statesynctest.SharedStoreRig{A: a, B: b, CutFeed: b.cut, StallFeed: b.stall, LoseHistory: st.loseHistory}
	}
}

// The fault suite against the fake shared store.
func TestFakeSharedStoreFaults(t *testing.T) {
	statesynctest.TestSharedStoreFaults(t, newFakeRig(fakeCorrect))
}

// The fake is a correct shared store, too.
func TestFakeSharedStore(t *testing.T) {
	statesynctest.TestSharedStore(t, func(t *testing.T) (a, b statesync.Store) {
		rig := newFakeRig(fakeCorrect)(t)
		return rig.A, rig.B
	})
}

// brokenFaultsEnv selects the defect TestBrokenSharedFaultsHelper gives B.
const brokenFaultsEnv = "STATESYNCTEST_BROKEN_FAULTS"

// The fault suite fails on a store whose feed reconnects without a Resync
// record (run in a child process, like TestSuitesCatchBrokenBackends).
func TestFaultSuiteCatchesBrokenStore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenSharedFaultsHelper$/^(FeedCut|LoseHistory)$", "-test.v", "-test.count=1", "-test.timeout=120s")
	cmd.Env = append(os.Environ(), brokenFaultsEnv+"="+string(fakeNoResync))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("fault suite passed against a store that never resyncs\n%s", out)
	}
	for _, sub := range []string{"FeedCut", "LoseHistory"} {
		if !strings.Contains(string(out), "--- FAIL: TestBrokenSharedFaultsHelper/"+sub+" ") {
			t.Errorf("subtest %s did not fail against a store that never resyncs\n%s", sub, out)
		}
	}
}

// TestBrokenSharedFaultsHelper runs the fault suite against the fake with
// the defect named by STATESYNCTEST_BROKEN_FAULTS; it is run by
// TestFaultSuiteCatchesBrokenStore.
func TestBrokenSharedFaultsHelper(t *testing.T) {
	mode := os.Getenv(brokenFaultsEnv)
	if mode == "" {
		t.Skip("run by TestFaultSuiteCatchesBrokenStore")
	}
	statesynctest.TestSharedStoreFaults(t, newFakeRig(fakeMode(mode)))
}
