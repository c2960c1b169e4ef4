package bench

import (
	"context"

	"github.com/statesync-go/statesync"
)

// CycleResult is the outcome of cycle_sequential.
type CycleResult struct {
	Name        string  `json:"name"`
	Refresh     string  `json:"refresh"` // RefreshGoroutine or RefreshInline
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	Applied     int64   `json:"applied"` // = n
}

func (r CycleResult) rank() float64 { return r.NsPerOp }

// CycleSequential runs cycle_sequential: n times, the provider's revision
// is bumped, the invalidation delivered and the apply awaited, so each
// operation is one whole refresh (gate, fetch, gate, apply). The waiter
// sleeps on a channel that the applier signals; it does not poll.
//
// With inline, the consumer has InlineRefresh set, so the refresh runs
// inside Publish instead of on the consumer's goroutine.
//
// Allocations per operation include the bump itself (the snapshot and its
// encoded data, two allocations), as a Source would make them.
func CycleSequential(ctx context.Context, n int, inline bool) (CycleResult, error) {
	s, err := newSingle(ctx, 1, inline)
	if err != nil {
		return CycleResult{}, err
	}
	defer s.close()
	s.rec.applies.Store(0)
	d, allocs, err := measure(func() error { return s.cycles(ctx, 2, n) })
	if err != nil {
		return CycleResult{}, err
	}
	return CycleResult{
		Name:        NameCycleSequential,
		Refresh:     refreshMode(inline),
		NsPerOp:     float64(d.Nanoseconds()) / float64(n),
		AllocsPerOp: float64(allocs) / float64(n),
		Applied:     s.rec.applies.Load(),
	}, nil
}

// cycles runs n cycles for revisions from, from+1, …
func (s *single) cycles(ctx context.Context, from statesync.Revision, n int) error {
	for rev := from; rev < from+statesync.Revision(n); rev++ {
		s.prov.set(rev)
		s.bus.Publish(statesync.Invalidation{Topic: topic, Revision: rev})
		if err := s.rec.waitFor(ctx, rev); err != nil {
			return err
		}
	}
	return nil
}
