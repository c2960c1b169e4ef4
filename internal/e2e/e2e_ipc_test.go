package e2e_test

// Scenarios B-E2E-36..45: realistic IPC (serialised snapshots, jitter,
// per-window delays, application-shaped data).

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/e2e"
	"github.com/statesync-go/statesync/internal/sleep"
	"github.com/statesync-go/statesync/statesynctest"
)

type itemsMeta struct {
	Items []int `json:"items"`
	Meta  struct {
		Name string `json:"name"`
	} `json:"meta"`
}

func newItemsMeta(name string, items ...int) itemsMeta {
	v := itemsMeta{Items: items}
	v.Meta.Name = name
	return v
}

// B-E2E-36: object data {items, meta}: A's and B's snapshots are equal in
// value but are distinct copies, of each other and of the store. (In Go the
// windows get JSON bytes and decode their own values, so sharing can only
// happen in the bytes; the check writes into A's bytes and looks at B's.)
func TestE2E36_SnapshotsAreCopies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, newItemsMeta("test", 1, 2, 3), nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)

		bus.Mutate(newItemsMeta("updated", 4, 5))
		bus.WaitForConvergence(0)

		want := newItemsMeta("updated", 4, 5)
		wantLast(t, a, want)
		wantLast(t, b, want)
		wantDistinct(t, bus, a, b)
	})
}

// B-E2E-37: broadcast jitter of 20 ms and 10 synchronous mutations.
func TestE2E37_BroadcastJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{IPCDelay: ms, Faults: statesynctest.ChaosOptions{MaxDelay: 20 * ms}})
		ws := []*e2e.Window[int]{bus.NewWindow("A", nil), bus.NewWindow("B", nil), bus.NewWindow("C", nil)}
		startAll(t, ws...)

		for i := 1; i <= 10; i++ {
			bus.Mutate(i)
		}
		bus.WaitForConvergence(0)

		wantAtStore(t, bus, ws...)
		for _, w := range ws {
			wantLast(t, w, 10)
		}
	})
}

// B-E2E-38: 5 ms IPC, 3 ms jitter, B's provider random 5–15 ms: a burst of
// 30 costs B fewer than 30 provider calls.
func TestE2E38_RealisticDelaysCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, 0, &e2e.BusConfig{IPCDelay: 5 * ms, Faults: statesynctest.ChaosOptions{MaxDelay: 3 * ms}})
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[int]{
			Provider: delayedProvider(bus, func() time.Duration { return bus.Between(5*ms, 15*ms) }),
		})
		startAll(t, a, b)
		b.ResetProviderCalls()

		for i := 1; i <= 30; i++ {
			bus.MutateFrom("A", i)
		}
		bus.WaitForConvergence(10 * time.Second)

		wantRevision(t, b, bus.Revision())
		if n := b.ProviderCalls(); n >= 30 {
			t.Errorf("B made %d provider calls; want < 30", n)
		}
	})
}

type editorDoc struct {
	Text    string `json:"text"`
	Version int    `json:"version"`
}

// B-E2E-39: an editor types 20 characters 3 ms apart; the main window ends
// on the full text.
func TestE2E39_FastTypingCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, editorDoc{}, nil)
		editor := bus.NewWindow("editor", &e2e.WindowConfig[editorDoc]{IPCDelay: new(2 * ms)})
		mainWin := bus.NewWindow("main", &e2e.WindowConfig[editorDoc]{IPCDelay: new(5 * ms)})
		startAll(t, editor, mainWin)

		for i := 1; i <= 20; i++ {
			bus.MutateFrom("editor", editorDoc{strings.Repeat("a", i), i})
			time.Sleep(3 * ms)
		}
		bus.WaitForConvergence(0)

		wantLast(t, mainWin, editorDoc{strings.Repeat("a", 20), 20})
		wantRevision(t, mainWin, bus.Revision())
	})
}

type settings struct {
	Theme    string `json:"theme"`
	FontSize int    `json:"fontSize"`
	Lang     string `json:"lang"`
}

// B-E2E-40: three settings changes, each followed by convergence.
func TestE2E40_SettingsPanelSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, settings{"light", 14, "en"}, nil)
		set := bus.NewWindow("settings", nil)
		editor := bus.NewWindow("editor", &e2e.WindowConfig[settings]{IPCDelay: new(3 * ms)})
		preview := bus.NewWindow("preview", &e2e.WindowConfig[settings]{IPCDelay: new(5 * ms)})
		startAll(t, set, editor, preview)

		for _, s := range []settings{{"dark", 14, "en"}, {"dark", 18, "en"}, {"dark", 18, "ru"}} {
			bus.MutateFrom("settings", s)
			bus.WaitForConvergence(0)
			wantLast(t, editor, s)
			wantLast(t, preview, s)
		}
		wantLast(t, editor, settings{"dark", 18, "ru"})
		wantLast(t, preview, settings{"dark", 18, "ru"})
	})
}

type counter struct {
	Counter int `json:"counter"`
}

// B-E2E-41: A goes away, 4 mutations happen, A comes back: one apply, the
// latest (no replay of the intermediate states).
func TestE2E41_OfflineThenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, counter{0}, nil)
		a, b := bus.NewWindow("A", nil), bus.NewWindow("B", nil)
		startAll(t, a, b)
		bus.Mutate(counter{1})
		bus.WaitForConvergence(0)
		wantLast(t, a, counter{1})

		bus.DestroyWindow("A")
		for i := 2; i <= 5; i++ {
			bus.Mutate(counter{i})
		}
		time.Sleep(50 * ms)

		a2 := bus.NewWindow("A", nil)
		startAll(t, a2)
		wantLast(t, a2, counter{5})
		if n := a2.Applies(); n != 1 {
			t.Errorf("A2 applied %d snapshots (%v); want 1", n, e2e.FormatHistory(a2.Applied()))
		}
		bus.WaitForConvergence(0)
		wantLast(t, b, counter{5})
	})
}

type user struct {
	Name string `json:"name"`
}

type document struct {
	Title string `json:"title"`
}

// B-E2E-42, B-TOPIC-03: topics user and document, each followed by the
// windows main and sidebar; the stores are independent.
func TestE2E42_SeveralTopicsPerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		userBus := e2e.NewBus(t, user{"Alice"}, &e2e.BusConfig{Topic: "user"})
		docBus := e2e.NewBus(t, document{"Untitled"}, &e2e.BusConfig{Topic: "document"})
		mainUser, sidebarUser := userBus.NewWindow("main", nil), userBus.NewWindow("sidebar", nil)
		mainDoc, sidebarDoc := docBus.NewWindow("main", nil), docBus.NewWindow("sidebar", nil)
		startAll(t, mainUser, sidebarUser)
		startAll(t, mainDoc, sidebarDoc)

		userBus.MutateFrom("main", user{"Bob"})
		docBus.MutateFrom("main", document{"My Document"})
		userBus.WaitForConvergence(0)
		docBus.WaitForConvergence(0)

		wantLast(t, sidebarUser, user{"Bob"})
		wantLast(t, sidebarDoc, document{"My Document"})
		wantStore(t, userBus, user{"Bob"})
		wantStore(t, docBus, document{"My Document"})
		if userBus.Revision() != 1 || docBus.Revision() != 1 {
			t.Errorf("revisions user=%d document=%d; want 1 and 1", userBus.Revision(), docBus.Revision())
		}
	})
}

type dashboard struct {
	Users       []string `json:"users"`
	Count       int      `json:"count"`
	LastUpdated string   `json:"lastUpdated"`
}

// B-E2E-43: one mutation changing several fields reaches the dashboard as
// one snapshot.
func TestE2E43_BatchUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, dashboard{Users: []string{}}, nil)
		dash, admin := bus.NewWindow("dashboard", nil), bus.NewWindow("admin", nil)
		startAll(t, dash, admin)

		want := dashboard{[]string{"alice", "bob"}, 2, "2024-01-01"}
		bus.MutateFrom("admin", want)
		bus.WaitForConvergence(0)

		wantLast(t, dash, want)
		if n := dash.Applies(); n != 2 {
			t.Errorf("dashboard applied %d snapshots; want 2 (start, then the batch at once)", n)
		}
	})
}

// B-E2E-44, B-COAL-02: B's provider hangs on its next call; A mutates, and
// 50 ms later mutates again as the hang is released: the refresh queued
// behind the hung one brings B to the latest revision.
func TestE2E44_HungProviderRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, "initial", nil)
		var hangNext atomic.Bool
		release := make(chan struct{})
		a := bus.NewWindow("A", nil)
		b := bus.NewWindow("B", &e2e.WindowConfig[string]{
			Provider: statesync.ProviderFunc(func(ctx context.Context, _ string) (statesync.Snapshot, error) {
				if hangNext.CompareAndSwap(true, false) {
					<-release // a hung IPC call; it ignores ctx
				}
				if err := sleep.For(ctx, ms); err != nil {
					return statesync.Snapshot{}, err
				}
				return bus.Snapshot(), nil
			}),
		})
		startAll(t, a, b)

		hangNext.Store(true)
		bus.MutateFrom("A", "will-hang")
		time.Sleep(50 * ms)
		wantRevision(t, b, 0)

		bus.MutateFrom("A", "after-hang")
		close(release)
		bus.WaitForConvergence(0)

		wantRevision(t, b, bus.Revision())
		wantLast(t, b, "after-hang")
	})
}

type selection struct {
	SelectedID *string `json:"selectedId"`
	Items      []int   `json:"items"`
}

func sel(id string, items ...int) selection { return selection{&id, items} }

// B-E2E-45: 5 panels with mixed delays and 5 ms jitter follow 4 mutations
// from different panels 10 ms apart.
func TestE2E45_MixedDelayPanels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := e2e.NewBus(t, selection{Items: []int{}}, &e2e.BusConfig{IPCDelay: 2 * ms, Faults: statesynctest.ChaosOptions{MaxDelay: 5 * ms}})
		var panels []*e2e.Window[selection]
		for _, p := range []struct {
			id    string
			delay time.Duration
		}{{"toolbar", 2 * ms}, {"sidebar", 5 * ms}, {"editor", 3 * ms}, {"preview", 8 * ms}, {"statusbar", ms}} {
			panels = append(panels, bus.NewWindow(p.id, &e2e.WindowConfig[selection]{IPCDelay: new(p.delay)}))
		}
		startAll(t, panels...)

		bus.MutateFrom("toolbar", sel("item-1", 1))
		time.Sleep(10 * ms)
		bus.MutateFrom("editor", sel("item-1", 1, 2))
		time.Sleep(10 * ms)
		bus.MutateFrom("editor", sel("item-1", 1, 2, 3))
		time.Sleep(10 * ms)
		bus.MutateFrom("toolbar", sel("item-2", 1, 2, 3))
		bus.WaitForConvergence(10 * time.Second)

		wantAtStore(t, bus, panels...)
		for _, p := range panels {
			wantLast(t, p, sel("item-2", 1, 2, 3))
		}
	})
}
