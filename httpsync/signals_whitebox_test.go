package httpsync

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// testStream returns an unregistered stream naming topics.
func testStream(topics ...string) *stream {
	st := &stream{wake: make(chan struct{}, 1), topics: map[string]*streamTopic{}, inline: -1}
	for _, name := range topics {
		st.topics[name] = &streamTopic{name: name}
		st.named = append(st.named, name)
	}
	return st
}

// One ticker serves every stream's heartbeats: each stream is asked for
// one at most one interval after it opens, then once per interval, and
// the ticker's goroutine runs only while streams are open (B-GO-06: a
// handler whose streams are all gone has no goroutine left).
func TestHandlerHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1}), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		h := NewHandler(src, &HandlerOptions{Heartbeat: 15 * time.Second})
		defer h.Close()
		due := func(st *stream) bool {
			if st.signals.Load()&signalHeartbeat == 0 {
				return false
			}
			st.signals.And(^uint32(signalHeartbeat))
			<-st.wake // the wake that came with it
			return true
		}
		for round := range 2 { // the goroutine stops with the last stream, and starts again
			a, b := testStream("a"), testStream("b")
			h.register(a)
			time.Sleep(7 * time.Second)
			h.register(b)
			synctest.Wait()
			if due(a) || due(b) {
				t.Fatalf("round %d: a heartbeat asked for 7 s into a 15 s interval", round)
			}
			for i := range 4 {
				time.Sleep(8 * time.Second) // 15 s after a opened, then every 15 s
				synctest.Wait()
				if !due(a) || !due(b) {
					t.Fatalf("round %d, tick %d: heartbeat asked of a %v, b %v; want both", round, i, due(a), due(b))
				}
				time.Sleep(7 * time.Second)
				synctest.Wait()
				if due(a) || due(b) {
					t.Fatalf("round %d, tick %d: a heartbeat asked for between ticks", round, i)
				}
			}
			h.unregister(a)
			time.Sleep(15 * time.Second)
			synctest.Wait()
			if due(a) || !due(b) {
				t.Fatalf("round %d: after a closed, heartbeat asked of a, or not of b", round)
			}
			h.unregister(b)
			h.beatWG.Wait() // the goroutine returns
			h.mu.RLock()
			running := h.beatRunning
			h.mu.RUnlock()
			if running {
				t.Fatalf("round %d: heartbeat goroutine still marked running without streams", round)
			}
		}
	})
}

// Handler.byTopic lists exactly the streams that name each topic, however
// streams come and go, so the fan-out notifies each of them once; the
// count of inline streams goes back to 0 with them.
func TestByTopicLists(t *testing.T) {
	_, h := newMemHandler(t, "e")
	rng := rand.New(rand.NewPCG(1, 2))
	open := map[*stream]bool{}
	check := func(step int) {
		t.Helper()
		want := map[string]int{}
		for st := range open {
			for _, name := range st.named {
				want[name]++
			}
		}
		h.mu.RLock()
		defer h.mu.RUnlock()
		if len(h.byTopic) != len(want) {
			t.Fatalf("step %d: byTopic has %d topics; want %d", step, len(h.byTopic), len(want))
		}
		for name, list := range h.byTopic {
			if len(list) != want[name] {
				t.Fatalf("step %d: byTopic[%q] lists %d streams; want %d", step, name, len(list), want[name])
			}
			for i, ts := range list {
				if ts.idx != i || !open[ts.st] || ts.st.topics[name] != ts {
					t.Fatalf("step %d: byTopic[%q][%d] = idx %d, open %v; want idx %d of an open stream's own state", step, name, i, ts.idx, open[ts.st], i)
				}
			}
		}
	}
	for step := range 2000 {
		if len(open) < 40 && (len(open) == 0 || rng.IntN(2) == 0) {
			var names []string
			for j := range 3 {
				if rng.IntN(2) == 0 {
					names = append(names, fmt.Sprintf("t%d", j))
				}
			}
			if len(names) == 0 {
				names = []string{"t0"}
			}
			st := testStream(names...)
			if !h.register(st) {
				t.Fatal("register refused on an open handler")
			}
			if rng.IntN(2) == 0 {
				st.configure(h, 1<<10)
			}
			open[st] = true
		} else {
			for st := range open { // a random one: map order
				h.unregister(st)
				delete(open, st)
				break
			}
		}
		check(step)
	}
	for st := range open {
		h.unregister(st)
		delete(open, st)
	}
	check(-1)
	if n := h.inlineStreams.Load(); n != 0 {
		t.Errorf("inlineStreams = %d with no stream open; want 0", n)
	}
}

// newMemHandler returns a Handler with no options over a Source on a
// MemoryStore of epoch whose first revision is 1; both are closed when
// the test ends.
func newMemHandler(t testing.TB, epoch string) (*statesync.Source, *Handler) {
	t.Helper()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: epoch, FirstRevision: 1}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	h := NewHandler(src, nil)
	t.Cleanup(func() { _ = h.Close() })
	return src, h
}
