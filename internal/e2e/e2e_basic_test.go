package e2e_test

// Scenarios B-E2E-01..13: basic multi-window sync, conflicts and ordering,
// recovery, interleaved scenarios. One Go test per scenario of the original
// suite (packages/core/tests/e2e-multi-window.test.ts).

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/e2e"
)

// B-E2E-01: A mutates → B receives.
func TestE2E01_AMutatesBReceives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "initial", nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		bus.MutateFrom("A", "updated")
		bus.WaitForConvergence(0)

		wantLast(t, b, "updated")
		wantRevision(t, b, bus.Revision())
		wantRevision(t, b, 1)
		wantNoErrors(t, a, b)
	})
}

// B-E2E-02: A mutates → B and C receive.
func TestE2E02_AMutatesBAndCReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "initial", nil)
		a, b, c := bus.NewWindow("A", nil), bus.NewWindow("B", nil), bus.NewWindow("C", nil)
		startAll(t, a, b, c)

		bus.MutateFrom("A", "broadcast")
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, b, c)
		wantLast(t, b, "broadcast")
		wantLast(t, c, "broadcast")
		wantNoErrors(t, a, b, c)
	})
}

// B-E2E-03: C joins late and gets the latest state at start.
func TestE2E03_LateJoinGetsLatest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "v0", nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)
		bus.MutateFrom("A", "v1")
		bus.MutateFrom("A", "v2")
		bus.MutateFrom("A", "v3")
		bus.WaitForConvergence(0)

		c := bus.NewWindow("C", nil)
		startAll(t, c)

		wantLast(t, c, "v3")
		wantRevision(t, c, bus.Revision())
		if n := c.Applies(); n != 1 {
			t.Errorf("C applied %d snapshots; want 1 (the current one, at start)", n)
		}
	})
}

// B-E2E-04: ping-pong, A and B alternate 10 mutations 5 ms apart.
func TestE2E04_PingPong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		for i := 1; i <= 10; i++ {
			src := "B"
			if i%2 == 1 {
				src = "A"
			}
			bus.MutateFrom(src, i)
			time.Sleep(5 * ms)
		}
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, a, b)
		wantStore(t, bus, 10)
		wantLast(t, a, 10)
		wantLast(t, b, 10)
	})
}

// B-E2E-05: simultaneous mutations, the last writer wins at the backend and
// both windows converge on it.
func TestE2E05_SimultaneousMutations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "start", nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		bus.MutateFrom("A", "from-A")
		bus.MutateFrom("B", "from-B")
		bus.WaitForConvergence(0)

		wantRevision(t, a, 2)
		wantRevision(t, b, 2)
		wantStore(t, bus, "from-B")
		wantLast(t, a, "from-B")
		wantLast(t, b, "from-B")
	})
}

// bufferingHandler stands between the bus and a consumer: it keeps the
// invalidations until the test hands them over.
type bufferingHandler struct {
	mu  sync.Mutex
	buf *[]statesync.Invalidation
}

func (b *bufferingHandler) Invalidate(inv statesync.Invalidation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*b.buf = append(*b.buf, inv)
}

func (b *bufferingHandler) InvalidateRaw(payload []byte) {
	inv, err := statesync.DecodeInvalidation(payload)
	if err == nil {
		b.Invalidate(inv)
	}
}

// B-E2E-06, B-GATE-07: events delivered in reverse order (3, 2, 1) still
// leave the window on the latest data, and it never applies an older one.
func TestE2E06_OutOfOrderDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "start", nil)
		var buffered []statesync.Invalidation
		var engine statesync.InvalidationHandler
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{
			Subscriber: statesync.SubscriberFunc(func(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
				engine = h
				return bus.Subscriber("B").Subscribe(ctx, topic, &bufferingHandler{buf: &buffered})
			}),
		})
		startAll(t, a, b)

		bus.MutateFrom("A", "v1")
		bus.MutateFrom("A", "v2")
		bus.MutateFrom("A", "v3")
		if got := len(buffered); got != 3 {
			t.Fatalf("B's subscriber buffered %d events; want 3", got)
		}
		for _, inv := range slices.Backward(buffered) {
			engine.Invalidate(inv)
		}
		time.Sleep(100 * ms)

		wantLast(t, b, "v3")
		if got, want := e2e.Revisions(b.Applied()), []statesync.Revision{0, 3}; !slices.Equal(got, want) {
			t.Errorf("B applied revisions %v; want %v (start, then the latest only)", got, want)
		}
	})
}

// B-E2E-07: a window restarted after missing 5 mutations catches up at
// start.
func TestE2E07_RestartCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "v0", nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		bus.DestroyWindow("B")
		for i := 1; i <= 5; i++ {
			bus.MutateFrom("A", "v"+strconv.Itoa(i))
		}
		time.Sleep(50 * ms)
		if n := b.Applies(); n != 1 {
			t.Errorf("destroyed B applied %d snapshots; want 1 (its start)", n)
		}

		b2 := bus.NewWindow("B", nil)
		startAll(t, b2)
		wantLast(t, b2, "v5")
		wantRevision(t, b2, bus.Revision())
		if n := b2.Applies(); n != 1 {
			t.Errorf("new B applied %d snapshots; want 1", n)
		}
	})
}

// B-E2E-08: a window whose provider fails at start fails to start; a new
// window in its place starts and then follows mutations.
func TestE2E08_FailedStartThenRecreate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "initial", nil)
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{FailCount: 2})
		startAll(t, a)

		err := b.Start(t.Context())
		var se *statesync.Error
		if !errors.As(err, &se) || se.Phase != statesync.PhaseGetSnapshot || !errors.Is(err, e2e.ErrSimulated) {
			t.Fatalf("B.Start() = %v; want a getSnapshot *statesync.Error wrapping e2e.ErrSimulated", err)
		}
		if n := len(b.Errors()); n != 1 {
			t.Errorf("B reported %d errors; want 1", n)
		}

		bus.DestroyWindow("B")
		b2 := bus.NewWindow("B", &e2e.WindowConfig[string]{FailCount: 0})
		startAll(t, b2)
		bus.MutateFrom("A", "recovered")
		bus.WaitForConvergence(0)

		wantLast(t, b2, "recovered")
		wantRevision(t, b2, bus.Revision())
		wantNoErrors(t, b2)
	})
}

// B-E2E-09: slow IPC (100 ms) and 5 fast mutations: the window makes at
// most 3 provider calls and ends on the latest data.
func TestE2E09_SlowIPCBoundedFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "start", nil)
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{IPCDelay: new(100 * ms)})
		startAll(t, a, b)
		b.ResetProviderCalls()

		for i := 1; i <= 5; i++ {
			bus.MutateFrom("A", "fast-"+strconv.Itoa(i))
		}
		time.Sleep(500 * ms)

		if n := b.ProviderCalls(); n < 1 || n > 3 {
			t.Errorf("B made %d provider calls; want 1 to 3", n)
		}
		wantLast(t, b, "fast-5")
	})
}

// B-E2E-10, B-TOPIC-03: two topics on separate buses, each with windows W1
// and W2; the data of one never reaches the other (string vs number: a
// crossed type would fail to decode and be reported).
func TestE2E10_IndependentTopics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus1 := e2e.NewBus(t, "topic1-v0", &e2e.BusConfig{Topic: "topic1"})
		bus2 := e2e.NewBus(t, 100, &e2e.BusConfig{Topic: "topic2"})
		w1t1, w2t1 := bus1.NewWindow("W1", nil), bus1.NewWindow("W2", nil)
		w1t2, w2t2 := bus2.NewWindow("W1", nil), bus2.NewWindow("W2", nil)
		startAll(t, w1t1, w2t1)
		startAll(t, w1t2, w2t2)

		bus1.MutateFrom("W1", "topic1-v1")
		bus2.MutateFrom("W1", 200)
		bus1.WaitForConvergence(0)
		bus2.WaitForConvergence(0)

		wantLast(t, w2t1, "topic1-v1")
		wantLast(t, w2t2, 200)
		wantAtStore(t, bus1, w1t1, w2t1)
		wantAtStore(t, bus2, w1t2, w2t2)
		wantNoErrors(t, w1t1, w2t1)
		wantNoErrors(t, w1t2, w2t2)
		for _, w := range []*e2e.Window[string]{w1t1, w2t1} {
			if w.Topic() != "topic1" {
				t.Errorf("%s.Topic() = %q; want topic1", w.ID, w.Topic())
			}
		}
	})
}

// B-E2E-11: a burst of 15 mutations from 3 rotating sources.
func TestE2E11_BurstFromThreeSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		ws := []*e2e.Window[int]{bus.NewWindow("A", nil), bus.NewWindow("B", nil), bus.NewWindow("C", nil)}
		startAll(t, ws...)

		for i := 1; i <= 15; i++ {
			bus.MutateFrom(ws[(i-1)%3].ID, i)
		}
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, ws...)
		wantStore(t, bus, 15)
		for _, w := range ws {
			wantLast(t, w, 15)
		}
	})
}

// B-E2E-12, B-GO-03: B's applier mutates the bus when it sees cascade:1;
// the invalidation re-enters the engine from inside the apply.
func TestE2E12_CascadeFromApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "idle", nil)
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{OnApply: func(s e2e.Applied[string]) {
			if s.Data == "cascade:1" {
				bus.MutateFrom("B", "cascade:2")
			}
		}})
		startAll(t, a, b)

		bus.MutateFrom("A", "cascade:1")
		time.Sleep(200 * ms)
		bus.WaitForConvergence(0)

		wantStore(t, bus, "cascade:2")
		wantRevision(t, a, bus.Revision())
		wantRevision(t, b, bus.Revision())
		if !slices.ContainsFunc(b.Applied(), func(s e2e.Applied[string]) bool { return s.Data == "cascade:2" }) {
			t.Errorf("B's applied history %v lacks cascade:2", b.Applied())
		}
		wantNoErrors(t, a, b)
	})
}

// B-E2E-13: C joins in the middle of a burst and still converges.
func TestE2E13_JoinDuringBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		for i := 1; i <= 5; i++ {
			bus.MutateFrom("A", i)
		}
		c := bus.NewWindow("C", nil)
		startAll(t, c)
		for i := 6; i <= 10; i++ {
			bus.MutateFrom("A", i)
		}
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, a, b, c)
		wantStore(t, bus, 10)
		wantLast(t, c, 10)
	})
}
