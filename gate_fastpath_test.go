package statesync_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// B-GATE-01 and the gate's fast path in Invalidate: a stale invalidation
// whose topic is empty is still reported as malformed (the fast path only
// drops stale invalidations of the consumer's own topic), one of another
// topic is dropped silently, and neither fetches.
func TestEngineStaleInvalidationWithEmptyTopicIsReported(t *testing.T) {
	prov := newGatedProvider()
	prov.rev.Store(5)
	app := &revApplier{applied: make(chan statesync.Revision, 4)}
	var mu sync.Mutex
	var reports []*statesync.Error
	c, err := statesync.NewConsumer("t", memsync.New(nil), prov, app, &statesync.ConsumerOptions{
		OnError: func(e *statesync.Error) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, e)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Stop()
		_ = c.Wait(context.Background())
	}()
	prov.calls.Store(0)
	c.Invalidate(statesync.Invalidation{Topic: "other", Revision: 3})
	c.Invalidate(statesync.Invalidation{Topic: "", Revision: 3})
	c.Invalidate(statesync.Invalidation{Topic: "t", Revision: 3})
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || reports[0].Phase != statesync.PhaseProtocol || !errors.Is(reports[0], statesync.ErrInvalidPayload) {
		t.Fatalf("reports %v; want one protocol error wrapping ErrInvalidPayload (the empty topic)", reports)
	}
	if n := prov.calls.Load(); n != 0 {
		t.Errorf("%d fetches for stale invalidations; want 0", n)
	}
}

// gatedProvider serves the revision set last and counts its calls; once
// block is set, calls wait until release is closed, announcing themselves
// on entered.
type gatedProvider struct {
	rev     atomic.Uint64
	calls   atomic.Int64
	block   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGatedProvider() *gatedProvider {
	p := &gatedProvider{entered: make(chan struct{}, 16), release: make(chan struct{})}
	p.rev.Store(1)
	return p
}

func (p *gatedProvider) Snapshot(ctx context.Context, _ string) (statesync.Snapshot, error) {
	p.calls.Add(1)
	if p.block.Load() {
		p.entered <- struct{}{}
		select {
		case <-p.release:
		case <-ctx.Done():
			return statesync.Snapshot{}, ctx.Err()
		}
	}
	return statesync.Snapshot{Revision: statesync.Revision(p.rev.Load()), Data: []byte(`{}`)}, nil
}

// revApplier sends each applied revision on applied (buffered).
type revApplier struct{ applied chan statesync.Revision }

func (a *revApplier) Apply(_ context.Context, s statesync.Snapshot) error {
	a.applied <- s.Revision
	return nil
}
