package bench

import (
	"context"

	"github.com/statesync-go/statesync"
)

// BurstResult is the outcome of burst_coalescing.
type BurstResult struct {
	Name          string             `json:"name"`
	ProviderCalls int64              `json:"provider_calls"` // must be 2
	Final         statesync.Revision `json:"final"`          // = n+1
}

func (r BurstResult) rank() float64 { return float64(r.ProviderCalls) }

// BurstCoalescing runs burst_coalescing: a handle started at revision 1
// receives an invalidation at revision 2, whose fetch blocks; while it is
// blocked, n-1 more invalidations with increasing revisions arrive; then
// the provider is released and the handle left to settle. The engine must
// have called the provider twice (the blocked fetch and one queued behind
// it) and end at revision n+1.
func BurstCoalescing(ctx context.Context, n int) (BurstResult, error) {
	s, err := newSingle(ctx, 1, false)
	if err != nil {
		return BurstResult{}, err
	}
	defer s.close()
	s.prov.calls.Store(0)
	s.prov.blocked.Store(true)

	s.prov.set(2)
	s.bus.Publish(statesync.Invalidation{Topic: topic, Revision: 2})
	select {
	case <-s.prov.entered:
	case <-ctx.Done():
		return BurstResult{}, ctx.Err()
	}
	for rev := statesync.Revision(3); rev <= statesync.Revision(n)+1; rev++ {
		s.prov.set(rev)
		s.bus.Publish(statesync.Invalidation{Topic: topic, Revision: rev})
	}
	close(s.prov.release)
	// No more invalidations come, so the handle's goroutines end once the
	// queued refresh is done.
	if err := s.c.Wait(ctx); err != nil {
		return BurstResult{}, err
	}
	return BurstResult{
		Name:          NameBurstCoalescing,
		ProviderCalls: s.prov.calls.Load(),
		Final:         s.c.Revision(),
	}, nil
}
