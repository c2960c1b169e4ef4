package statesynctest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/statesynctest"
)

// A seqHandler records what a Chaos delivers, in order: "r<rev>" for an
// invalidation, "raw:<rev>" for a valid raw payload, "bad" for a malformed
// one.
type seqHandler struct {
	mu     sync.Mutex
	seq    []string
	raw    [][]byte
	at     []time.Duration // time of each delivery since start (synctest)
	start  time.Time
	onCall func()
}

func newSeqHandler() *seqHandler { return &seqHandler{start: time.Now()} }

func (h *seqHandler) Invalidate(inv statesync.Invalidation) {
	h.add(fmt.Sprintf("r%d", inv.Revision), nil)
}

func (h *seqHandler) InvalidateRaw(p []byte) {
	inv, err := statesync.DecodeInvalidation(p)
	if err != nil {
		h.add("bad", p)
		return
	}
	h.add(fmt.Sprintf("raw:%d", inv.Revision), p)
}

func (h *seqHandler) add(s string, raw []byte) {
	h.mu.Lock()
	h.seq = append(h.seq, s)
	if raw != nil {
		h.raw = append(h.raw, slices.Clone(raw))
	}
	h.at = append(h.at, time.Since(h.start))
	f := h.onCall
	h.mu.Unlock()
	if f != nil {
		f()
	}
}

func (h *seqHandler) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seq)
}

func revs(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("r%d", i))
	}
	return out
}

// chaosBus returns a Chaos over a bare memsync bus (no source) and the bus.
func chaosBus(t *testing.T, opts statesynctest.ChaosOptions) (*statesynctest.Chaos, *memsync.Bus) {
	t.Helper()
	bus := memsync.New(nil)
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c := statesynctest.NewChaos(bus, nil, opts)
	t.Cleanup(func() {
		c.Close()
		bus.Close()
	})
	return c, bus
}

func chaosSubscribe(t *testing.T, c *statesynctest.Chaos, topic string, h statesync.InvalidationHandler) func() {
	t.Helper()
	unsub, err := c.Subscribe(context.Background(), topic, h)
	if err != nil {
		t.Fatalf("Chaos.Subscribe(%q) error: %v", topic, err)
	}
	t.Cleanup(unsub)
	return unsub
}

func publishRevs(bus *memsync.Bus, topic string, from, to int) {
	for i := from; i <= to; i++ {
		bus.Publish(statesync.Invalidation{Topic: topic, Revision: statesync.Revision(i)})
	}
}

// B-HARN-03, B-E2E-50: Drop=1 loses every invalidation.
func TestChaosDrop(t *testing.T) {
	c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 1, Drop: 1})
	h := newSeqHandler()
	chaosSubscribe(t, c, "t", h)
	publishRevs(bus, "t", 1, 10)
	if got := h.got(); len(got) != 0 {
		t.Errorf("delivered %v with Drop 1; want nothing", got)
	}
	if st := c.Stats(); st.Received != 10 || st.Dropped != 10 || st.Delivered != 0 {
		t.Errorf("Stats() = %+v; want Received 10, Dropped 10, Delivered 0", st)
	}
	c.Quiesce()
	publishRevs(bus, "t", 11, 11)
	if got, want := h.got(), revs(11, 11); !slices.Equal(got, want) {
		t.Errorf("delivered %v after Quiesce; want %v", got, want)
	}
}

// B-HARN-03, B-E2E-49: Duplicate=1 delivers everything twice.
func TestChaosDuplicate(t *testing.T) {
	c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 1, Duplicate: 1})
	h := newSeqHandler()
	chaosSubscribe(t, c, "t", h)
	publishRevs(bus, "t", 1, 3)
	if got, want := h.got(), []string{"r1", "r1", "r2", "r2", "r3", "r3"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v with Duplicate 1; want %v", got, want)
	}
	if st := c.Stats(); st.Duplicated != 3 || st.Delivered != 6 {
		t.Errorf("Stats() = %+v; want Duplicated 3, Delivered 6", st)
	}
}

// B-GATE-07, B-E2E-06: Reorder=1 swaps each pair; Flush releases the last.
func TestChaosReorder(t *testing.T) {
	c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 1, Reorder: 1})
	h := newSeqHandler()
	chaosSubscribe(t, c, "t", h)
	publishRevs(bus, "t", 1, 7)
	if got, want := h.got(), []string{"r2", "r1", "r4", "r3", "r6", "r5"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v with Reorder 1; want %v (revision 7 held back)", got, want)
	}
	c.Flush()
	if got := h.got(); len(got) != 7 || got[6] != "r7" {
		t.Errorf("delivered %v after Flush; want r7 last", got)
	}
	if st := c.Stats(); st.Reordered != 4 {
		t.Errorf("Stats().Reordered = %d; want 4", st.Reordered)
	}
}

// B-PROTO-03, B-TRANS-06: Garbage=1 precedes each invalidation with a
// malformed payload for the same topic.
func TestChaosGarbage(t *testing.T) {
	c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 7, Garbage: 1})
	h := newSeqHandler()
	chaosSubscribe(t, c, "settings", h)
	publishRevs(bus, "settings", 1, 40)
	got := h.got()
	if len(got) != 80 {
		t.Fatalf("delivered %d payloads; want 80 (40 garbage, 40 real)", len(got))
	}
	kinds := map[string]bool{}
	for i := 0; i < len(got); i += 2 {
		if got[i] != "bad" || got[i+1] != fmt.Sprintf("r%d", i/2+1) {
			t.Fatalf("delivered %v; want bad, r1, bad, r2, ...", got[i:i+2])
		}
	}
	h.mu.Lock()
	for _, p := range h.raw {
		if !strings.Contains(string(p), `"settings"`) {
			t.Errorf("garbage payload %s does not name the topic", p)
		}
		k := string(p)
		if i := strings.Index(k, `"revision"`); i >= 0 {
			k = k[i:min(i+13, len(k))]
		}
		kinds[k] = true
	}
	h.mu.Unlock()
	if len(kinds) < 3 {
		t.Errorf("garbage payloads of %d kinds (%v); want several", len(kinds), kinds)
	}
	if st := c.Stats(); st.Garbage != 40 || st.Delivered != 40 {
		t.Errorf("Stats() = %+v; want Garbage 40, Delivered 40", st)
	}
}

// Raw payloads from the inner subscriber go through the same faults.
func TestChaosRawPassThrough(t *testing.T) {
	c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 1, Duplicate: 1})
	h := newSeqHandler()
	chaosSubscribe(t, c, "t", h)
	bus.PublishRaw("t", []byte(`{"topic":"t","revision":"5"}`))
	bus.PublishRaw("t", []byte(`not json`))
	if got, want := h.got(), []string{"raw:5", "raw:5", "bad", "bad"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v; want %v", got, want)
	}
}

// B-HARN-03: MaxDelay delivers each invalidation on a goroutine of the
// Chaos within MaxDelay, which reorders them.
func TestChaosDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 3, MaxDelay: 100 * time.Millisecond})
		h := newSeqHandler()
		chaosSubscribe(t, c, "t", h)
		publishRevs(bus, "t", 1, 20)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		got := h.got()
		if len(got) != 20 {
			t.Fatalf("delivered %d invalidations after MaxDelay; want 20", len(got))
		}
		if slices.Equal(got, revs(1, 20)) {
			t.Errorf("delivered %v in publish order; want random delays to reorder 20 deliveries", got)
		}
		h.mu.Lock()
		for i, at := range h.at {
			if at >= 100*time.Millisecond {
				t.Errorf("delivery %d at %v; want < MaxDelay (100ms)", i, at)
			}
		}
		h.mu.Unlock()
		if st := c.Stats(); st.Delayed != 20 {
			t.Errorf("Stats().Delayed = %d; want 20", st.Delayed)
		}
	})
}

// Flush delivers delayed invalidations at once; Quiesce makes later ones
// synchronous.
func TestChaosFlushAndQuiesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 3, MaxDelay: time.Hour, Reorder: 0.5})
		h := newSeqHandler()
		chaosSubscribe(t, c, "t", h)
		publishRevs(bus, "t", 1, 5)
		start := time.Now()
		c.Flush()
		if got := h.got(); len(got) != 5 {
			t.Errorf("delivered %v after Flush; want 5 invalidations", got)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Flush took %v of (fake) time; want 0", d)
		}
		c.Quiesce()
		publishRevs(bus, "t", 6, 6)
		if got := h.got(); len(got) != 6 || got[5] != "r6" {
			t.Errorf("delivered %v after Quiesce; want r6 delivered at once", got)
		}
	})
}

// Close drops delayed deliveries, waits for their goroutines (synctest
// fails the test if one is left), and refuses new subscriptions.
func TestChaosClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := memsync.New(nil)
		defer bus.Close()
		c := statesynctest.NewChaos(bus, nil, statesynctest.ChaosOptions{Seed: 1, MaxDelay: time.Hour})
		h := newSeqHandler()
		unsub, err := c.Subscribe(context.Background(), "t", h)
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
		publishRevs(bus, "t", 1, 5)
		if err := c.Close(); err != nil {
			t.Errorf("Close() = %v; want nil", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close() = %v; want nil", err)
		}
		if got := h.got(); len(got) != 0 {
			t.Errorf("delivered %v on Close; want the delayed deliveries dropped", got)
		}
		if _, err := c.Subscribe(context.Background(), "t", h); !errors.Is(err, statesync.ErrClosed) {
			t.Errorf("Subscribe after Close: error = %v; want ErrClosed", err)
		}
	})
}

// Once unsubscribe has returned, nothing held back reaches the handler.
func TestChaosUnsubscribeDropsHeldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 1, Reorder: 1, MaxDelay: time.Second})
		h := newSeqHandler()
		unsub := chaosSubscribe(t, c, "t", h)
		publishRevs(bus, "t", 1, 3) // r2, r1 delayed; r3 held
		unsub()
		c.Flush()
		time.Sleep(2 * time.Second)
		if got := h.got(); len(got) != 0 {
			t.Errorf("delivered %v after unsubscribe; want nothing", got)
		}
	})
}

// A handler may unsubscribe (through Consumer.Stop from OnError, say) from
// inside a delivery, including a delayed one, without deadlock.
func TestChaosUnsubscribeFromHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, bus := chaosBus(t, statesynctest.ChaosOptions{Seed: 1, MaxDelay: time.Millisecond, Garbage: 1})
		h := newSeqHandler()
		var unsub func()
		var once sync.Once
		h.onCall = func() { once.Do(func() { unsub() }) }
		var err error
		unsub, err = c.Subscribe(context.Background(), "t", h)
		if err != nil {
			t.Fatal(err)
		}
		publishRevs(bus, "t", 1, 3)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := h.got(); len(got) == 0 {
			t.Errorf("delivered nothing; want at least the call that unsubscribed")
		}
	})
}

// B-RETRY, B-E2E-29: FailRate=1 fails every call with a retryable error.
func TestChaosFail(t *testing.T) {
	src, put := newSource(t)
	c := statesynctest.NewChaos(nil, src, statesynctest.ChaosOptions{Seed: 1, FailRate: 1, Logf: t.Logf})
	defer c.Close()
	want := put("t", json.RawMessage(`1`))
	for i := range 3 {
		_, err := c.Snapshot(context.Background(), "t")
		if !errors.Is(err, statesynctest.ErrChaos) {
			t.Errorf("call %d: Snapshot error = %v; want ErrChaos", i+1, err)
		}
		if !statesync.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = false; want true", err)
		}
	}
	if st := c.Stats(); st.Calls != 3 || st.Failed != 3 {
		t.Errorf("Stats() = %+v; want Calls 3, Failed 3", st)
	}
	c.Quiesce()
	got, err := c.Snapshot(context.Background(), "t")
	if err != nil || got.Revision != want.Revision {
		t.Errorf("Snapshot after Quiesce = %+v, %v; want revision %d", got, err, want.Revision)
	}
}

// B-E2E-44, B-LIFE-26: a stalled call returns stale data after Stall, the
// context's error when it ends first, and returns at once on Quiesce.
func TestChaosStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, put := newSource(t)
		c := statesynctest.NewChaos(nil, src, statesynctest.ChaosOptions{Seed: 1, StallRate: 1, Stall: time.Second})
		defer c.Close()
		old := put("t", json.RawMessage(`"old"`))
		start := time.Now()
		done := make(chan statesync.Snapshot)
		go func() {
			s, err := c.Snapshot(context.Background(), "t")
			if err != nil {
				t.Errorf("stalled Snapshot error: %v", err)
			}
			done <- s
		}()
		synctest.Wait()
		put("t", json.RawMessage(`"new"`))
		got := <-done
		if d := time.Since(start); d != time.Second {
			t.Errorf("stalled Snapshot returned after %v; want Stall (1s)", d)
		}
		if got.Revision != old.Revision {
			t.Errorf("stalled Snapshot returned revision %d; want %d, read before the stall", got.Revision, old.Revision)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := c.Snapshot(ctx, "t"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stalled Snapshot with a 100ms context: error = %v; want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("stalled Snapshot with a 100ms context returned after %v; want 100ms", d)
		}
		if st := c.Stats(); st.Stalled != 2 {
			t.Errorf("Stats().Stalled = %d; want 2", st.Stalled)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		src, _ := newSource(t)
		c := statesynctest.NewChaos(nil, src, statesynctest.ChaosOptions{Seed: 1, StallRate: 1}) // no bound
		defer c.Close()
		returned := make(chan error)
		go func() {
			_, err := c.Snapshot(context.Background(), "t")
			returned <- err
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case err := <-returned:
			t.Fatalf("unbounded stall returned (%v) before Quiesce", err)
		default:
		}
		c.Quiesce()
		if err := <-returned; err != nil {
			t.Errorf("stalled Snapshot released by Quiesce: error = %v; want nil", err)
		}
	})
}

// runScript subscribes three handlers through a Chaos made with opts and
// publishes a fixed script to them, in the given topic order.
func runScript(t *testing.T, opts statesynctest.ChaosOptions, topicOrder []string) map[string][]string {
	c, bus := chaosBus(t, opts)
	hs := map[string]*seqHandler{}
	for _, topic := range []string{"x", "y", "z"} {
		hs[topic] = newSeqHandler()
		chaosSubscribe(t, c, topic, hs[topic])
	}
	for rev := 1; rev <= 60; rev++ {
		for _, topic := range topicOrder {
			bus.Publish(statesync.Invalidation{Topic: topic, Revision: statesync.Revision(rev), Epoch: "e"})
		}
	}
	c.Flush()
	out := map[string][]string{}
	for topic, h := range hs {
		out[topic] = h.got()
	}
	return out
}

// B-HARN-09: faults are a function of the seed and of the event.
func TestChaosDeterministic(t *testing.T) {
	t.Setenv(statesynctest.SeedEnv, "") // this test chooses its seeds
	opts := statesynctest.ChaosOptions{Seed: 42, Drop: 0.3, Duplicate: 0.3, Reorder: 0.3, Garbage: 0.2}
	a := runScript(t, opts, []string{"x", "y", "z"})
	b := runScript(t, opts, []string{"z", "y", "x"}) // another interleaving of topics
	for topic := range a {
		if !slices.Equal(a[topic], b[topic]) {
			t.Errorf("seed 42, topic %s: runs delivered\n%v\nand\n%v\nwant the same faults whatever the interleaving", topic, a[topic], b[topic])
		}
	}
	opts.Seed = 43
	c := runScript(t, opts, []string{"x", "y", "z"})
	if slices.Equal(a["x"], c["x"]) && slices.Equal(a["y"], c["y"]) {
		t.Errorf("seeds 42 and 43 delivered the same sequences; want different faults")
	}
	for _, seq := range a {
		if slices.Equal(seq, revs(1, 60)) {
			t.Errorf("delivered %v untouched; want faults injected", seq)
		}
	}
}

// B-HARN-09: STATESYNC_CHAOS_SEED overrides the seed, which is logged.
func TestChaosSeedFromEnv(t *testing.T) {
	t.Setenv(statesynctest.SeedEnv, "12345")
	var logged []string
	c := statesynctest.NewChaos(nil, nil, statesynctest.ChaosOptions{Seed: 1, Logf: func(f string, args ...any) {
		logged = append(logged, fmt.Sprintf(f, args...))
	}})
	defer c.Close()
	if c.Seed() != 12345 {
		t.Errorf("Seed() = %d with %s=12345; want 12345", c.Seed(), statesynctest.SeedEnv)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "12345") {
		t.Errorf("logged %q; want one line with the seed 12345", logged)
	}

	t.Setenv(statesynctest.SeedEnv, "")
	r := statesynctest.NewChaos(nil, nil, statesynctest.ChaosOptions{})
	defer r.Close()
	if r.Seed() == 0 {
		t.Errorf("Seed() = 0 with no seed given; want a random non-zero seed")
	}

	t.Setenv(statesynctest.SeedEnv, "not-a-number")
	defer func() {
		if recover() == nil {
			t.Errorf("NewChaos with %s=not-a-number did not panic", statesynctest.SeedEnv)
		}
	}()
	statesynctest.NewChaos(nil, nil, statesynctest.ChaosOptions{})
}
