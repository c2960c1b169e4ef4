package e2e_test

// Helpers shared by the scenario files (e2e_*_test.go). Every scenario runs
// in a testing/synctest bubble: IPC delays, jitter, pauses and convergence
// timeouts use the bubble's fake clock, so the suite takes no real time and
// does not depend on the machine's speed.

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/e2e"
	"github.com/statesync-go/statesync/internal/sleep"
)

const ms = time.Millisecond

// startAll starts the windows one after the other.
func startAll[T any](t *testing.T, ws ...*e2e.Window[T]) {
	t.Helper()
	for _, w := range ws {
		if err := w.Start(t.Context()); err != nil {
			t.Fatalf("%s.Start() = %v; want nil", w.ID, err)
		}
	}
}

// startConcurrently starts the windows on goroutines of their own and
// waits for all of them.
func startConcurrently[T any](t *testing.T, ws ...*e2e.Window[T]) {
	t.Helper()
	errs := make([]chan error, len(ws))
	for i, w := range ws {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- w.Start(context.Background()) }()
	}
	for i, w := range ws {
		if err := <-errs[i]; err != nil {
			t.Errorf("%s.Start() = %v; want nil", w.ID, err)
		}
	}
}

// last returns the data of the window's last applied snapshot.
func last[T any](t *testing.T, w *e2e.Window[T]) T {
	t.Helper()
	a, ok := w.Last()
	if !ok {
		t.Fatalf("%s applied nothing; want a snapshot", w.ID)
	}
	return a.Data
}

// wantLast checks the data of the window's last applied snapshot.
func wantLast[T any](t *testing.T, w *e2e.Window[T], want T) {
	t.Helper()
	if got := last(t, w); !reflect.DeepEqual(got, want) {
		t.Errorf("last data of %s = %v; want %v", w.ID, got, want)
	}
}

// wantRevision checks the window's revision.
func wantRevision[T any](t *testing.T, w *e2e.Window[T], want statesync.Revision) {
	t.Helper()
	if got := w.Revision(); got != want {
		t.Errorf("%s.Revision() = %d; want %d", w.ID, got, want)
	}
}

// wantAtStore checks that every window's revision is the store's.
func wantAtStore[T any](t *testing.T, bus *e2e.Bus[T], ws ...*e2e.Window[T]) {
	t.Helper()
	for _, w := range ws {
		wantRevision(t, w, bus.Revision())
	}
}

// wantStore checks the store's data.
func wantStore[T any](t *testing.T, bus *e2e.Bus[T], want T) {
	t.Helper()
	if got := bus.Data(); !reflect.DeepEqual(got, want) {
		t.Errorf("bus.Data() = %v; want %v", got, want)
	}
}

// wantNoErrors checks that the windows reported no error.
func wantNoErrors[T any](t *testing.T, ws ...*e2e.Window[T]) {
	t.Helper()
	for _, w := range ws {
		if errs := w.Errors(); len(errs) > 0 {
			t.Errorf("%s reported %d error(s), first %v; want none", w.ID, len(errs), errs[0])
		}
	}
}

// wantIncreasing checks that the window's applied revisions strictly
// increase (B-GATE-06).
func wantIncreasing[T any](t *testing.T, w *e2e.Window[T]) {
	t.Helper()
	applied := w.Applied()
	for i := 1; i < len(applied); i++ {
		if applied[i].Revision <= applied[i-1].Revision {
			t.Errorf("%s applied revisions %s; want strictly increasing", w.ID, e2e.FormatHistory(applied))
			return
		}
	}
}

// delayedProvider returns a provider that waits delay() and then returns
// the store's snapshot, like the custom providers of the original suite.
func delayedProvider[T any](bus *e2e.Bus[T], delay func() time.Duration) statesync.Provider {
	return statesync.ProviderFunc(func(ctx context.Context, _ string) (statesync.Snapshot, error) {
		if err := sleep.For(ctx, delay()); err != nil {
			return statesync.Snapshot{}, err
		}
		return bus.Snapshot(), nil
	})
}

func fixed(d time.Duration) func() time.Duration { return func() time.Duration { return d } }

// sharesMemory reports whether writing to a changes b. The windows must be
// stopped and waited for (bus.Close), so that no goroutine reads either.
func sharesMemory(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	saved := bytes.Clone(b)
	for i := range a {
		a[i] ^= 0xff
	}
	changed := !bytes.Equal(saved, b)
	for i := range a {
		a[i] ^= 0xff
	}
	return changed
}

// wantDistinct checks that the last snapshots of two windows and the
// store's encoding do not share memory: each window got its own copy, as
// the JSON round trip of the original gives each window its own objects.
func wantDistinct[T any](t *testing.T, bus *e2e.Bus[T], a, b *e2e.Window[T]) {
	t.Helper()
	bus.Close() // stops everything, so that the probe races with nothing
	la, _ := a.Last()
	lb, _ := b.Last()
	if sharesMemory(la.Raw, lb.Raw) {
		t.Errorf("the snapshots applied by %s and %s share memory; want distinct copies", a.ID, b.ID)
	}
	store := bus.Snapshot().Data
	for _, x := range []struct {
		id  string
		raw []byte
	}{{a.ID, la.Raw}, {b.ID, lb.Raw}} {
		if sharesMemory(x.raw, store) {
			t.Errorf("the snapshot applied by %s shares memory with the store; want a copy", x.id)
		}
	}
}
