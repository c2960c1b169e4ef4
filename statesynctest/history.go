package statesynctest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/statesync-go/statesync"
)

// A History records, for each consumer handle, the snapshots its applier
// applied, and checks them: within one epoch a handle's applied revisions
// strictly increase, and its applier is never called
// concurrently. It also tells when every handle has reached a
// revision.
//
// Wrap each consumer's applier with [History.Applier]. A History is safe for
// concurrent use; its zero value is not usable, make one with [NewHistory].
type History struct {
	changed signal // fired after each recorded apply

	mu      sync.Mutex // protects handles and names
	handles map[string]*handleLog
	names   []string // in registration order
}

// An Applied is one successful apply recorded by a [History].
type Applied struct {
	// Revision is the snapshot's revision.
	Revision statesync.Revision
	// Epoch is the snapshot's epoch or, if it had none, the epoch the
	// handle had before, as the consumer engine keeps it.
	Epoch string
	// Data is a copy of the snapshot's data.
	Data []byte
}

type handleLog struct {
	applies  []Applied
	inFlight int
	overlaps int // applies that began while another was running
	retired  bool
}

// NewHistory returns an empty History.
func NewHistory() *History {
	return &History{handles: make(map[string]*handleLog)}
}

// Applier returns an applier for the handle called name that calls inner
// (if not nil) and, if it succeeds, records the snapshot. Names must be
// unique within a History; Applier panics on a name already registered.
func (h *History) Applier(name string, inner statesync.Applier) statesync.Applier {
	h.mu.Lock()
	if _, dup := h.handles[name]; dup {
		h.mu.Unlock()
		panic(fmt.Sprintf("statesynctest: History.Applier: handle %q already registered", name))
	}
	hl := &handleLog{}
	h.handles[name] = hl
	h.names = append(h.names, name)
	h.mu.Unlock()

	return statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		h.mu.Lock()
		hl.inFlight++
		if hl.inFlight > 1 {
			hl.overlaps++
		}
		h.mu.Unlock()
		var err error
		if inner != nil {
			err = inner.Apply(ctx, s)
		}
		h.mu.Lock()
		hl.inFlight--
		if err == nil {
			a := Applied{Revision: s.Revision, Epoch: s.Epoch, Data: slices.Clone([]byte(s.Data))}
			if a.Epoch == "" && len(hl.applies) > 0 {
				a.Epoch = hl.applies[len(hl.applies)-1].Epoch
			}
			hl.applies = append(hl.applies, a)
		}
		h.mu.Unlock()
		if err == nil {
			h.changed.fire()
		}
		return err
	})
}

// Retire excludes the handle called name from [History.Converged] and
// [History.WaitConverged], for a consumer that was stopped on purpose. Its
// history is still checked.
func (h *History) Retire(name string) {
	h.mu.Lock()
	if hl := h.handles[name]; hl != nil {
		hl.retired = true
	}
	h.mu.Unlock()
	h.changed.fire()
}

// Names returns the registered handle names, in registration order.
func (h *History) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.names)
}

// activeNames returns the names of the handles not retired.
func (h *History) activeNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, name := range h.names {
		if !h.handles[name].retired {
			out = append(out, name)
		}
	}
	return out
}

// Applies returns the applies recorded for the handle called name, oldest
// first.
func (h *History) Applies(name string) []Applied {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hl := h.handles[name]; hl != nil {
		return slices.Clone(hl.applies)
	}
	return nil
}

// Last returns the last apply of the handle called name, and false if it
// applied nothing.
func (h *History) Last(name string) (Applied, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hl := h.handles[name]; hl != nil && len(hl.applies) > 0 {
		return hl.applies[len(hl.applies)-1], true
	}
	return Applied{}, false
}

// Err returns the violations found in the recorded histories, joined, or
// nil: a handle whose applied revision did not strictly increase within an
// epoch, or whose applier was called while a call was in progress.
func (h *History) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for _, name := range h.names {
		hl := h.handles[name]
		for i := 1; i < len(hl.applies); i++ {
			prev, cur := hl.applies[i-1], hl.applies[i]
			if cur.Epoch == prev.Epoch && cur.Revision <= prev.Revision {
				errs = append(errs, fmt.Errorf("handle %q: apply #%d at revision %d after revision %d in epoch %q; want strictly increasing revisions within an epoch",
					name, i+1, cur.Revision, prev.Revision, cur.Epoch))
			}
		}
		if hl.overlaps > 0 {
			errs = append(errs, fmt.Errorf("handle %q: %d applies began while another was in progress; want serial applies", name, hl.overlaps))
		}
	}
	return errors.Join(errs...)
}

// Check reports each violation that [History.Err] finds as an error of t.
func (h *History) Check(t testing.TB) {
	t.Helper()
	err := h.Err()
	if err == nil {
		return
	}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		t.Errorf("history: %v", e)
	}
}

// Converged reports whether every handle that is not retired has applied
// target last, in epoch (any epoch if epoch is empty). It is false while no
// handle is registered.
func (h *History) Converged(target statesync.Revision, epoch string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.convergedLocked(target, epoch)
}

func (h *History) convergedLocked(target statesync.Revision, epoch string) bool {
	active := 0
	for _, hl := range h.handles {
		if hl.retired {
			continue
		}
		active++
		if len(hl.applies) == 0 {
			return false
		}
		last := hl.applies[len(hl.applies)-1]
		if last.Revision != target || epoch != "" && last.Epoch != epoch {
			return false
		}
	}
	return active > 0
}

// WaitConverged waits until [History.Converged] is true or ctx ends. It
// then returns an error wrapping ctx.Err() that lists the last revision of
// every handle. In a testing/synctest bubble it waits on the
// bubble's clock.
//
// A History records an apply when the applier returns, a moment before the
// consumer adopts the revision: [statesync.Consumer.Revision] read right
// after WaitConverged may still be the previous one (in a bubble, call
// synctest.Wait first).
func (h *History) WaitConverged(ctx context.Context, target statesync.Revision, epoch string) error {
	for {
		ch := h.changed.wait()
		if h.Converged(target, epoch) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("statesynctest: handles did not converge at revision %d (epoch %q): %s: %w", target, epoch, h.status(), ctx.Err())
		}
	}
}

// status lists each handle's last applied revision.
func (h *History) status() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for i, name := range h.names {
		if i > 0 {
			b.WriteString(", ")
		}
		hl := h.handles[name]
		switch {
		case len(hl.applies) == 0:
			fmt.Fprintf(&b, "%s=none", name)
		default:
			last := hl.applies[len(hl.applies)-1]
			fmt.Fprintf(&b, "%s=%d", name, last.Revision)
			if last.Epoch != "" {
				fmt.Fprintf(&b, "@%s", last.Epoch)
			}
		}
		if hl.retired {
			b.WriteString(" (retired)")
		}
	}
	return b.String()
}
