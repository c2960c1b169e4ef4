package bench

import (
	"context"
	"fmt"

	"github.com/statesync-go/statesync"
)

// GateResult is the outcome of gate_stale_events.
type GateResult struct {
	Name          string  `json:"name"`
	NsPerOp       float64 `json:"ns_per_op"`
	AllocsPerOp   float64 `json:"allocs_per_op"`
	ProviderCalls int64   `json:"provider_calls"` // the engine must make none
}

func (r GateResult) rank() float64 { return r.NsPerOp }

// GateStaleEvents runs gate_stale_events: one started handle at revision 5
// receives n invalidations at revision 3, one after another, through the
// bus. It reports the time and heap allocations per invalidation and the
// provider calls made meanwhile (a stale event costs no fetch).
func GateStaleEvents(ctx context.Context, n int) (GateResult, error) {
	s, err := newSingle(ctx, 5, false)
	if err != nil {
		return GateResult{}, err
	}
	defer s.close()
	if got := s.c.Revision(); got != 5 {
		return GateResult{}, fmt.Errorf("handle started at revision %d; want 5", got)
	}
	s.prov.calls.Store(0)
	stale := statesync.Invalidation{Topic: topic, Revision: 3}
	d, allocs, err := measure(func() error { return s.deliver(ctx, stale, n) })
	if err != nil {
		return GateResult{}, err
	}
	return GateResult{
		Name:          NameGateStaleEvents,
		NsPerOp:       float64(d.Nanoseconds()) / float64(n),
		AllocsPerOp:   float64(allocs) / float64(n),
		ProviderCalls: s.prov.calls.Load(),
	}, nil
}

// deliver publishes inv n times, checking ctx every 4096 deliveries.
func (s *single) deliver(ctx context.Context, inv statesync.Invalidation, n int) error {
	for i := range n {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		s.bus.Publish(inv)
	}
	return nil
}
