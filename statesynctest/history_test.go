package statesynctest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/statesynctest"
)

// recordTB is a testing.TB that records errors instead of failing, so that
// a test can check that a checker fails. Only Helper and Errorf are
// implemented; anything else panics through the nil embedded TB.
type recordTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordTB) Helper() {}

func (r *recordTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func applyAll(t *testing.T, app statesync.Applier, snaps ...statesync.Snapshot) {
	t.Helper()
	for _, s := range snaps {
		if err := app.Apply(context.Background(), s); err != nil {
			t.Fatalf("Apply(%+v) error: %v", s, err)
		}
	}
}

func at(rev statesync.Revision, epoch string) statesync.Snapshot {
	return statesync.Snapshot{Revision: rev, Epoch: epoch, Data: []byte(fmt.Sprintf(`%d`, rev))}
}

// B-GATE-06: the checker fails on a history that does not strictly
// increase within an epoch, and passes one that does.
func TestHistoryCheck(t *testing.T) {
	tests := []struct {
		name    string
		applies []statesync.Snapshot
		want    []string // substrings of the expected errors, in order
	}{
		{"Increasing", []statesync.Snapshot{at(0, ""), at(1, "e"), at(5, "e"), at(6, "")}, nil},
		{"Decreasing", []statesync.Snapshot{at(1, "e"), at(5, "e"), at(3, "e")}, []string{"apply #3 at revision 3 after revision 5"}},
		{"Repeated", []statesync.Snapshot{at(4, "e"), at(4, "e")}, []string{"apply #2 at revision 4 after revision 4"}},
		{"DecreasingWithoutEpochs", []statesync.Snapshot{at(2, ""), at(1, "")}, []string{"apply #2 at revision 1 after revision 2"}},
		// A snapshot without epoch keeps the handle's epoch, as the engine does.
		{"EmptyEpochInherits", []statesync.Snapshot{at(9, "e"), at(3, "")}, []string{`revision 3 after revision 9 in epoch "e"`}},
		// A new epoch may start anywhere (B-REV-13, DESIGN §3).
		{"NewEpochResets", []statesync.Snapshot{at(9, "e1"), at(3, "e2"), at(4, "e2")}, nil},
		{"TwoViolations", []statesync.Snapshot{at(5, "e"), at(5, "e"), at(2, "e")}, []string{"apply #2", "apply #3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := statesynctest.NewHistory()
			applyAll(t, h.Applier("w", nil), tt.applies...)
			applyAll(t, h.Applier("clean", nil), at(1, "e"), at(2, "e"))
			rec := &recordTB{}
			h.Check(rec)
			if len(rec.errs) != len(tt.want) {
				t.Fatalf("Check reported %q; want %d errors", rec.errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(rec.errs[i], w) || !strings.Contains(rec.errs[i], `handle "w"`) {
					t.Errorf("Check error %d = %q; want it to name handle \"w\" and contain %q", i, rec.errs[i], w)
				}
			}
			if (h.Err() == nil) != (len(tt.want) == 0) {
				t.Errorf("Err() = %v; want nil only for a valid history", h.Err())
			}
		})
	}
}

// B-GO-04: the checker fails when a handle's applier runs twice at once.
func TestHistoryCheckOverlap(t *testing.T) {
	h := statesynctest.NewHistory()
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	app := h.Applier("w", statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		entered <- struct{}{}
		<-release
		return nil
	}))
	var wg sync.WaitGroup
	for _, r := range []statesync.Revision{1, 2} {
		wg.Go(func() { app.Apply(context.Background(), at(r, "e")) })
	}
	<-entered
	<-entered
	close(release)
	wg.Wait()
	rec := &recordTB{}
	h.Check(rec)
	if len(rec.errs) == 0 || !strings.Contains(strings.Join(rec.errs, "\n"), "while another was in progress") {
		t.Errorf("Check reported %q; want the overlapping applies reported", rec.errs)
	}
}

// A failed apply is returned as is and not recorded.
func TestHistoryInnerError(t *testing.T) {
	h := statesynctest.NewHistory()
	boom := errors.New("boom")
	app := h.Applier("w", statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		if s.Revision == 2 {
			return boom
		}
		return nil
	}))
	applyAll(t, app, at(1, "e"))
	if err := app.Apply(context.Background(), at(2, "e")); !errors.Is(err, boom) {
		t.Errorf("Apply error = %v; want the applier's error", err)
	}
	if got := h.Applies("w"); len(got) != 1 || got[0].Revision != 1 {
		t.Errorf("Applies(%q) = %+v; want only revision 1", "w", got)
	}
}

func TestHistoryConverged(t *testing.T) {
	h := statesynctest.NewHistory()
	if h.Converged(0, "") {
		t.Errorf("Converged(0) with no handles = true; want false")
	}
	a, b := h.Applier("a", nil), h.Applier("b", nil)
	applyAll(t, a, at(3, "e"))
	if h.Converged(3, "e") {
		t.Errorf("Converged(3) before b applied = true; want false")
	}
	applyAll(t, b, at(2, "e"))
	if h.Converged(3, "e") {
		t.Errorf("Converged(3) with b at 2 = true; want false")
	}
	applyAll(t, b, at(3, "e"))
	if !h.Converged(3, "e") || !h.Converged(3, "") {
		t.Errorf("Converged(3) with both at 3 = false; want true")
	}
	if h.Converged(3, "other") {
		t.Errorf("Converged(3, other epoch) = true; want false")
	}
	c := h.Applier("c", nil)
	if h.Converged(3, "e") {
		t.Errorf("Converged(3) with c registered and idle = true; want false")
	}
	h.Retire("c")
	if !h.Converged(3, "e") {
		t.Errorf("Converged(3) with c retired = false; want true")
	}
	_ = c
	if last, ok := h.Last("a"); !ok || last.Revision != 3 || string(last.Data) != "3" {
		t.Errorf("Last(a) = %+v, %v; want revision 3, data 3", last, ok)
	}
	if names := h.Names(); strings.Join(names, ",") != "a,b,c" {
		t.Errorf("Names() = %q; want [a b c]", names)
	}
}

// B-HARN-07: on timeout WaitConverged lists each handle's revision.
func TestHistoryWaitConverged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := statesynctest.NewHistory()
		a, _ := h.Applier("a", nil), h.Applier("b", nil)
		go func() {
			time.Sleep(time.Second)
			a.Apply(context.Background(), at(5, "ep"))
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := h.WaitConverged(ctx, 5, "ep")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitConverged error = %v; want DeadlineExceeded", err)
		}
		for _, want := range []string{"a=5@ep", "b=none"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("WaitConverged error %q does not contain %q", err, want)
			}
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h := statesynctest.NewHistory()
		a := h.Applier("a", nil)
		go func() {
			time.Sleep(time.Second)
			a.Apply(context.Background(), at(7, ""))
		}()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.WaitConverged(ctx, 7, ""); err != nil {
			t.Errorf("WaitConverged error = %v; want nil", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("WaitConverged returned after %v; want 1s, when the apply happened", d)
		}
	})
}

func TestHistoryDuplicateName(t *testing.T) {
	h := statesynctest.NewHistory()
	h.Applier("w", nil)
	defer func() {
		if recover() == nil {
			t.Errorf("second Applier(%q) did not panic", "w")
		}
	}()
	h.Applier("w", nil)
}
