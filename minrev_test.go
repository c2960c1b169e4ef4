package statesync_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

type otherKey struct{}

// WithMinRevision's context carries the hint through contexts derived from
// it, passes every other value and the cancellation of its parent
// through, and the innermost hint wins.
func TestWithMinRevisionContext(t *testing.T) {
	if e, r, ok := statesync.MinRevision(context.Background()); ok || e != "" || r != 0 {
		t.Errorf("MinRevision(Background) = %q, %d, %v; want nothing", e, r, ok)
	}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "v"))
	ctx := statesync.WithMinRevision(parent, "e1", 5)
	derived, stop := context.WithTimeout(ctx, time.Hour)
	defer stop()
	if e, r, ok := statesync.MinRevision(derived); !ok || e != "e1" || r != 5 {
		t.Errorf("MinRevision(derived) = %q, %d, %v; want e1, 5, true", e, r, ok)
	}
	if got := derived.Value(otherKey{}); got != "v" {
		t.Errorf("Value(otherKey) through the hint = %v; want v", got)
	}
	if e, r, ok := statesync.MinRevision(statesync.WithMinRevision(ctx, "e2", 7)); !ok || e != "e2" || r != 7 {
		t.Errorf("MinRevision of a hint over a hint = %q, %d, %v; want e2, 7, true", e, r, ok)
	}
	if _, _, ok := statesync.MinRevision(statesync.WithMinRevision(ctx, "e3", 0)); ok {
		t.Error("MinRevision of revision 0 is ok")
	}
	if s := ctx.(interface{ String() string }).String(); !strings.Contains(s, `WithMinRevision("e1", 5)`) {
		t.Errorf("String() = %q", s)
	}
	cancel()
	select {
	case <-derived.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the parent's cancellation did not reach a context derived from the hint")
	}
	if !errors.Is(derived.Err(), context.Canceled) || !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("Err() = %v, %v; want Canceled", derived.Err(), ctx.Err())
	}
}
