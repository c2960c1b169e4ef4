package httpsync

import (
	"fmt"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/poll"
)

// The source's watch callback runs on the writer's goroutine and does O(1)
// work whatever the number of streams: with 10,000 streams on the topic it
// returns while the handler's stream table is locked (so it cannot be
// looping over the streams), keeping only the latest invalidation per topic;
// the fan-out goroutine then brings every stream to that latest revision,
// and counts each replaced invalidation once per stream (B-GO-02: the
// callback never waits).
func TestWatchCallbackDoesNotFanOut(t *testing.T) {
	_, h := newMemHandler(t, "e")
	const nStreams, nWrites = 10_000, 1000
	streams := make([]*stream, nStreams)
	for i := range streams {
		st := &stream{wake: make(chan struct{}, 1), topics: map[string]*streamTopic{"hot": {name: "hot"}}, named: []string{"hot"}}
		if !h.register(st) {
			t.Fatal("register refused on an open handler")
		}
		streams[i] = st
	}
	defer func() {
		for _, st := range streams {
			h.unregister(st) // before Close, which waits for streams
		}
	}()

	// The fan-out goroutine needs h.mu to reach the streams: with it held,
	// the callbacks can only record.
	h.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range nWrites {
			h.invalidated(statesync.Invalidation{Topic: "hot", Revision: statesync.Revision(i + 1), Epoch: "e"})
		}
		h.invalidated(statesync.Invalidation{Topic: "hot", Revision: 3, Epoch: "e"}) // an older one, reported late
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // only a bound for a failure
		h.mu.Unlock()
		t.Fatalf("%d watch callbacks did not return while the stream table was locked: the callback fans out itself", nWrites+1)
	}
	h.fanMu.Lock()
	pending, dirty := len(h.fanPending), len(h.fanDirty)
	got := h.fanPending["hot"]
	h.fanMu.Unlock()
	notified := 0
	for _, st := range streams {
		st.mu.Lock()
		if st.topics["hot"].hasPending {
			notified++
		}
		st.mu.Unlock()
	}
	h.mu.Unlock()
	// The fan-out goroutine may have taken one batch before blocking on the
	// table; whatever is left is one entry, the latest revision.
	if pending > 1 || dirty != pending {
		t.Errorf("after %d callbacks on one topic: %d pending topics, %d dirty; want at most 1 (latest-wins)", nWrites+1, pending, dirty)
	}
	if pending == 1 && got.inv.Revision != nWrites {
		t.Errorf("pending invalidation of hot = revision %d; want %d", got.inv.Revision, nWrites)
	}
	if notified != 0 {
		t.Errorf("%d streams notified while the stream table was locked; want 0", notified)
	}

	// Every stream converges on the latest revision.
	for i, st := range streams {
		poll.Until(t, fmt.Sprintf("stream %d notified of the latest revision", i), func() bool {
			st.mu.Lock()
			defer st.mu.Unlock()
			tp := st.topics["hot"]
			return tp.hasPending && tp.pending.Revision == nWrites
		})
	}
	// Each stream missed nWrites-1 older writes and the late one.
	want := uint64(nStreams * nWrites)
	poll.Until(t, "InvalidationsCoalesced to reach its count", func() bool { return h.Stats().InvalidationsCoalesced >= want })
	if got := h.Stats().InvalidationsCoalesced; got != want {
		t.Errorf("InvalidationsCoalesced = %d; want %d (%d replaced invalidations for each of %d streams)", got, want, nWrites, nStreams)
	}
}

// The fan-out goroutine runs only while invalidations are pending: it
// ends by itself once they are delivered (a handler dropped without Close
// leaks nothing), Close waits for it, and callbacks after Close start none
// (goleak in TestMain checks that nothing is left; B-GO-06).
func TestFanoutGoroutineLifetime(t *testing.T) {
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := NewHandler(src, nil)
	running := func() bool {
		h.fanMu.Lock()
		defer h.fanMu.Unlock()
		return h.fanRunning
	}
	if running() {
		t.Error("fan-out goroutine running before any write; want none")
	}
	for i := range 100 {
		h.invalidated(statesync.Invalidation{Topic: "a", Revision: statesync.Revision(i + 1)})
	}
	poll.Until(t, "the fan-out goroutine to end after the last write", func() bool { return !running() })
	h.invalidated(statesync.Invalidation{Topic: "a", Revision: 200})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if running() {
		t.Error("fan-out goroutine running after Close returned")
	}
	h.invalidated(statesync.Invalidation{Topic: "a", Revision: 201})
	if running() {
		t.Error("a callback after Close started the fan-out goroutine")
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close = %v; want nil", err)
	}
}
