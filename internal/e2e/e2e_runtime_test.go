package e2e_test

// Scenarios B-E2E-46..60: the realistic runtime of the original suite
// (asynchronous broadcast, mutex contention, duplicated and dropped events,
// jitter), B-TRANS-10.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync/internal/e2e"
	"github.com/statesync-go/statesync/statesynctest"
)

// B-E2E-46: with asynchronous broadcast, B follows A's mutation.
func TestE2E46_AsyncBroadcast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "v0", &e2e.BusConfig{Async: true, IPCDelay: ms})
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		bus.MutateFrom("A", "async-test")
		bus.WaitForConvergence(0)

		wantRevision(t, b, bus.Revision())
		wantLast(t, b, "async-test")
	})
}

// B-E2E-47: asynchronous broadcast of 20 synchronous mutations still
// coalesces: B makes fewer than 20 provider calls.
func TestE2E47_AsyncBurstCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{Async: true, IPCDelay: 2 * ms})
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)
		b.ResetProviderCalls()

		for i := 1; i <= 20; i++ {
			bus.MutateFrom("A", i)
		}
		bus.WaitForConvergence(0)

		wantRevision(t, b, bus.Revision())
		if n := b.ProviderCalls(); n >= 20 {
			t.Errorf("B made %d provider calls; want < 20", n)
		}
		wantLast(t, b, 20)
	})
}

// B-E2E-48, B-HARN-04: provider calls of 4 windows serialised by a mutex
// with 5 ms contention (each call 1 ms + 5 ms): all converge within 8 s.
func TestE2E48_MutexContention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{MutexContention: 5 * ms, IPCDelay: ms})
		var ws []*e2e.Window[int]
		for i := range 4 {
			ws = append(ws, bus.NewWindow("W"+strconv.Itoa(i), nil))
		}
		startAll(t, ws...)

		start := time.Now()
		bus.Mutate(42)
		bus.WaitForConvergence(8 * time.Second)

		for _, w := range ws {
			wantRevision(t, w, bus.Revision())
			wantLast(t, w, 42)
		}
		// Four serialised calls of 6 ms cannot all be done before 24 ms.
		if d := time.Since(start); d < 24*ms {
			t.Errorf("converged after %v; want at least 24 ms (4 serialised calls of 6 ms)", d)
		}
	})
}

// B-E2E-49, B-GATE-08: every event delivered twice: one mutation costs B at
// most 3 provider calls.
func TestE2E49_DuplicateEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{IPCDelay: ms, Faults: statesynctest.ChaosOptions{Duplicate: 1}})
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)
		b.ResetProviderCalls()

		bus.MutateFrom("A", 100)
		bus.WaitForConvergence(0)
		time.Sleep(10 * ms) // let the duplicates (1–4 ms later) arrive

		wantRevision(t, b, bus.Revision())
		if n := b.ProviderCalls(); n < 1 || n > 3 {
			t.Errorf("B made %d provider calls; want 1 to 3", n)
		}
		if n := b.Applies(); n != 2 {
			t.Errorf("B applied %d snapshots; want 2 (duplicates add none)", n)
		}
	})
}

// B-E2E-50: with 30% of events dropped during 50 mutations, one un-dropped
// BroadcastToAll brings B to the store revision.
func TestE2E50_DroppedEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{IPCDelay: ms, Faults: statesynctest.ChaosOptions{Drop: 0.3}})
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		for i := 1; i <= 50; i++ {
			bus.MutateFrom("A", i)
			time.Sleep(5 * ms)
		}
		time.Sleep(50 * ms)
		bus.BroadcastToAll()
		bus.WaitForConvergence(10 * time.Second)

		wantRevision(t, b, bus.Revision())
		wantLast(t, b, 50)
	})
}

type counterItems struct {
	Counter int      `json:"counter"`
	Items   []string `json:"items"`
}

// B-E2E-51: the full IPC stack (async, 10 ms jitter, 2 ms mutex, 5 ms IPC)
// with three windows and 4 mutations from different windows.
func TestE2E51_FullIPCStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, counterItems{Items: []string{}}, &e2e.BusConfig{
			Async:           true,
			MutexContention: 2 * ms,
			IPCDelay:        5 * ms,
			Faults:          statesynctest.ChaosOptions{MaxDelay: 10 * ms},
		})
		toolbar := bus.NewWindow("toolbar", &e2e.WindowConfig[counterItems]{IPCDelay: new(3 * ms)})
		editor := bus.NewWindow("editor", &e2e.WindowConfig[counterItems]{IPCDelay: new(8 * ms)})
		sidebar := bus.NewWindow("sidebar", &e2e.WindowConfig[counterItems]{IPCDelay: new(5 * ms)})
		startAll(t, toolbar, editor, sidebar)

		files := []string{"file1.ts", "file2.ts", "file3.ts", "file4.ts"}
		for i, step := range []struct {
			from  string
			pause time.Duration
		}{{"toolbar", 20 * ms}, {"editor", 15 * ms}, {"sidebar", 10 * ms}, {"editor", 0}} {
			bus.MutateFrom(step.from, counterItems{i + 1, slices.Clone(files[:i+1])})
			time.Sleep(step.pause)
		}
		bus.WaitForConvergence(10 * time.Second)

		wantAtStore(t, bus, toolbar, editor, sidebar)
		want := counterItems{4, files}
		wantLast(t, toolbar, want)
		wantLast(t, editor, want)
		wantLast(t, sidebar, want)
		wantDistinct(t, bus, toolbar, editor)
	})
}

type bigItem struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Tags  []string `json:"tags"`
	Value float64  `json:"value"`
}

// B-E2E-52: a 1000-item payload (about 100 KB of JSON) arrives whole, as a
// copy of the store's.
func TestE2E52_LargePayload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		large := make([]bigItem, 1000)
		for i := range large {
			large[i] = bigItem{
				ID:    fmt.Sprintf("item-%d", i),
				Name:  fmt.Sprintf("Item number %d with some extra text for padding", i),
				Tags:  []string{fmt.Sprintf("tag-%d", i%10), fmt.Sprintf("category-%d", i%5)},
				Value: rng.Float64() * 1000,
			}
		}
		bus := e2e.NewBus(t, large, &e2e.BusConfig{IPCDelay: 2 * ms})
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		updated := slices.Clone(large)
		for i := range updated {
			updated[i].Value = float64(i * 2)
		}
		bus.MutateFrom("A", updated)
		bus.WaitForConvergence(0)

		got := last(t, b)
		if len(got) != 1000 {
			t.Fatalf("B got %d items; want 1000", len(got))
		}
		if got[0].Value != 0 || got[999].Value != 1998 {
			t.Errorf("B got item[0].value=%v item[999].value=%v; want 0 and 1998", got[0].Value, got[999].Value)
		}
		if !slices.EqualFunc(got, updated, func(x, y bigItem) bool {
			return x.ID == y.ID && x.Name == y.Name && slices.Equal(x.Tags, y.Tags) && x.Value == y.Value
		}) {
			t.Errorf("B's items differ from the store's")
		}
		if la, _ := b.Last(); len(la.Raw) < 100_000 {
			t.Errorf("payload is %d bytes; want at least 100 KB", len(la.Raw))
		}
		wantDistinct(t, bus, a, b)
	})
}

// B-E2E-53: under asynchronous broadcast, 8 cycles of mutate, wait 5 ms,
// open an ephemeral window (which starts with the current value), close it.
func TestE2E53_EphemeralWindowsAsync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{Async: true, IPCDelay: 2 * ms})
		primary := bus.NewWindow("primary", nil)
		startAll(t, primary)

		for cycle := 1; cycle <= 8; cycle++ {
			bus.Mutate(cycle * 100)
			time.Sleep(5 * ms)
			eph := bus.NewWindow("eph-"+strconv.Itoa(cycle), nil)
			startAll(t, eph)
			wantLast(t, eph, cycle*100)
			wantRevision(t, eph, bus.Revision())
			bus.DestroyWindow(eph.ID)
		}
		bus.WaitForConvergence(0)
		wantLast(t, primary, 800)
	})
}

type valueOnly struct {
	Value int `json:"value"`
}

// B-E2E-54, B-GATE-06: one writer and two readers under asynchronous
// broadcast; reader1's applied revisions strictly increase.
func TestE2E54_ReadersAndWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, valueOnly{0}, &e2e.BusConfig{Async: true, IPCDelay: 2 * ms})
		writer := bus.NewWindow("writer", nil)
		reader1 := bus.NewWindow("reader1", &e2e.WindowConfig[valueOnly]{IPCDelay: new(3 * ms)})
		reader2 := bus.NewWindow("reader2", &e2e.WindowConfig[valueOnly]{IPCDelay: new(5 * ms)})
		startAll(t, writer, reader1, reader2)

		for i := 1; i <= 15; i++ {
			bus.MutateFrom("writer", valueOnly{i})
			if i%5 == 0 {
				time.Sleep(10 * ms)
			}
		}
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, reader1, reader2)
		wantLast(t, reader1, valueOnly{15})
		wantLast(t, reader2, valueOnly{15})
		wantIncreasing(t, reader1)
		wantIncreasing(t, reader2)
	})
}

// B-E2E-55: an event storm with async delivery, 5 ms jitter, 30%
// duplicates and 20% drops: 40 mutations with a pause every 10 converge.
// (Each window misses the end only if all 10 events of the last burst are
// dropped for it: 0.2^10 per window, fixed by the seed.)
func TestE2E55_StormDropsAndDuplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{
			Async:    true,
			IPCDelay: 3 * ms,
			Faults:   statesynctest.ChaosOptions{MaxDelay: 5 * ms, Duplicate: 0.3, Drop: 0.2},
		})
		var ws []*e2e.Window[int]
		for i := range 3 {
			ws = append(ws, bus.NewWindow("W"+strconv.Itoa(i), nil))
		}
		startAll(t, ws...)

		for i := 1; i <= 40; i++ {
			bus.MutateFrom("W"+strconv.Itoa(i%3), i)
			if i%10 == 0 {
				time.Sleep(20 * ms)
			}
		}
		bus.WaitForConvergence(8 * time.Second)

		for _, w := range ws {
			wantRevision(t, w, bus.Revision())
			wantLast(t, w, 40)
		}
	})
}

type phaseCounter struct {
	Phase   string `json:"phase"`
	Counter int    `json:"counter"`
}

// B-E2E-56, B-GO-03: a cascade under asynchronous broadcast: B reacts to
// {trigger,1} with {reacted,2}.
func TestE2E56_AsyncCascade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, phaseCounter{"idle", 0}, &e2e.BusConfig{Async: true, IPCDelay: 2 * ms})
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[phaseCounter]{OnApply: func(s e2e.Applied[phaseCounter]) {
			if s.Data == (phaseCounter{"trigger", 1}) {
				bus.MutateFrom("B", phaseCounter{"reacted", 2})
			}
		}})
		observer := bus.NewWindow("observer", &e2e.WindowConfig[phaseCounter]{IPCDelay: new(5 * ms)})
		startAll(t, a, b, observer)

		bus.MutateFrom("A", phaseCounter{"trigger", 1})
		time.Sleep(300 * ms)
		bus.WaitForConvergence(0)

		wantStore(t, bus, phaseCounter{"reacted", 2})
		wantAtStore(t, bus, a, b, observer)
		wantLast(t, observer, phaseCounter{"reacted", 2})
	})
}

type cursor struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

type ideState struct {
	ActiveFile  *string  `json:"activeFile"`
	OpenFiles   []string `json:"openFiles"`
	Cursor      cursor   `json:"cursor"`
	Diagnostics []string `json:"diagnostics"`
	Theme       string   `json:"theme"`
}

// B-E2E-57: a 7-panel IDE (async, 3 ms jitter, 1 ms mutex, 3 ms IPC) and 5
// mutations from different panels.
func TestE2E57_SevenPanelIDE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, ideState{OpenFiles: []string{}, Diagnostics: []string{}, Theme: "dark"}, &e2e.BusConfig{
			Async:           true,
			MutexContention: ms,
			IPCDelay:        3 * ms,
			Faults:          statesynctest.ChaosOptions{MaxDelay: 3 * ms},
		})
		panels := map[string]*e2e.Window[ideState]{}
		var all []*e2e.Window[ideState]
		for _, p := range []struct {
			id    string
			delay time.Duration
		}{{"menubar", ms}, {"explorer", 4 * ms}, {"editor", 2 * ms}, {"minimap", 3 * ms}, {"terminal", 5 * ms}, {"problems", 4 * ms}, {"statusbar", ms}} {
			w := bus.NewWindow(p.id, &e2e.WindowConfig[ideState]{IPCDelay: new(p.delay)})
			panels[p.id] = w
			all = append(all, w)
		}
		startAll(t, all...)

		mainTS, utilsTS := "main.ts", "utils.ts"
		diag := []string{"error TS2322: line 15"}
		steps := []struct {
			from  string
			state ideState
			pause time.Duration
		}{
			{"explorer", ideState{&mainTS, []string{"main.ts"}, cursor{0, 0}, []string{}, "dark"}, 30 * ms},
			{"editor", ideState{&mainTS, []string{"main.ts"}, cursor{15, 8}, []string{}, "dark"}, 15 * ms},
			{"problems", ideState{&mainTS, []string{"main.ts"}, cursor{15, 8}, diag, "dark"}, 20 * ms},
			{"explorer", ideState{&utilsTS, []string{"main.ts", "utils.ts"}, cursor{0, 0}, diag, "dark"}, 15 * ms},
			{"menubar", ideState{&utilsTS, []string{"main.ts", "utils.ts"}, cursor{0, 0}, diag, "light"}, 0},
		}
		for _, s := range steps {
			bus.MutateFrom(s.from, s.state)
			time.Sleep(s.pause)
		}
		bus.WaitForConvergence(10 * time.Second)

		wantAtStore(t, bus, all...)
		final := last(t, panels["statusbar"])
		if final.ActiveFile == nil || *final.ActiveFile != "utils.ts" || !slices.Equal(final.OpenFiles, []string{"main.ts", "utils.ts"}) ||
			final.Theme != "light" || len(final.Diagnostics) != 1 {
			t.Errorf("statusbar's final state = %+v; want utils.ts active, [main.ts utils.ts] open, theme light, 1 diagnostic", final)
		}
		wantLast(t, panels["editor"], final)
		wantDistinct(t, bus, panels["statusbar"], panels["editor"])
	})
}

// B-E2E-58: 6 windows (2..7 ms) start concurrently under async broadcast
// and a 2 ms mutex: each starts with the initial data, then all follow a
// mutation.
func TestE2E58_ConcurrentStartAsync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "shared-state", &e2e.BusConfig{Async: true, MutexContention: 2 * ms, IPCDelay: 3 * ms})
		var ws []*e2e.Window[string]
		for i := range 6 {
			ws = append(ws, bus.NewWindow("W"+strconv.Itoa(i), &e2e.WindowConfig[string]{IPCDelay: new(time.Duration(2+i) * ms)}))
		}
		startConcurrently(t, ws...)
		for _, w := range ws {
			wantRevision(t, w, 0)
			wantLast(t, w, "shared-state")
		}

		bus.Mutate("after-concurrent-start")
		bus.WaitForConvergence(8 * time.Second)
		wantAtStore(t, bus, ws...)
		wantLast(t, ws[5], "after-concurrent-start")
	})
}

type chat struct {
	Messages   []string `json:"messages"`
	LastSender string   `json:"lastSender"`
}

// B-E2E-59: a flaky network (async, 15 ms jitter, 20% duplicates, 30%
// drops): alice and bob alternate 20 messages with random 10–30 ms gaps; a
// final BroadcastToAll brings both to the end.
func TestE2E59_FlakyNetworkChat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, chat{Messages: []string{}}, &e2e.BusConfig{
			Async:    true,
			IPCDelay: 5 * ms,
			Faults:   statesynctest.ChaosOptions{MaxDelay: 15 * ms, Duplicate: 0.2, Drop: 0.3},
		})
		alice := bus.NewWindow("alice", &e2e.WindowConfig[chat]{IPCDelay: new(3 * ms)})
		bob := bus.NewWindow("bob", &e2e.WindowConfig[chat]{IPCDelay: new(8 * ms)})
		startAll(t, alice, bob)

		var messages []string
		for i := 1; i <= 20; i++ {
			sender := "bob"
			if i%2 == 1 {
				sender = "alice"
			}
			messages = append(messages, fmt.Sprintf("%s: message %d", sender, i))
			bus.MutateFrom(sender, chat{slices.Clone(messages), sender})
			time.Sleep(bus.Between(10*ms, 30*ms))
		}
		time.Sleep(50 * ms)
		bus.BroadcastToAll()
		bus.WaitForConvergence(10 * time.Second)

		wantAtStore(t, bus, alice, bob)
		final := bus.Data()
		if len(final.Messages) != 20 || final.LastSender != "bob" {
			t.Errorf("store has %d messages, last sender %q; want 20 and bob", len(final.Messages), final.LastSender)
		}
		wantLast(t, alice, final)
		wantLast(t, bob, final)
	})
}

// B-E2E-60: C joins in the middle of a storm (async, 5 ms jitter, 1 ms
// mutex, 3 ms IPC), then B sends 10 more mutations 3 ms apart.
func TestE2E60_JoinMidStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{Async: true, MutexContention: ms, IPCDelay: 3 * ms, Faults: statesynctest.ChaosOptions{MaxDelay: 5 * ms}})
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		for i := 1; i <= 15; i++ {
			bus.MutateFrom("A", i)
			if i == 8 {
				time.Sleep(5 * ms)
			}
		}
		time.Sleep(10 * ms)
		c := bus.NewWindow("C", &e2e.WindowConfig[int]{IPCDelay: new(5 * ms)})
		startAll(t, c)
		for i := 16; i <= 25; i++ {
			bus.MutateFrom("B", i)
			time.Sleep(3 * ms)
		}
		bus.WaitForConvergence(8 * time.Second)

		wantAtStore(t, bus, a, b, c)
		wantStore(t, bus, 25)
		wantLast(t, c, 25)
	})
}
