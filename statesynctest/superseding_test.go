package statesynctest_test

import (
	"context"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/statesynctest"
)

// supersedingStore is a MemoryStore whose feed skips every record that a
// later write of its topic replaced before the record reached the watcher,
// and says so: the store suite accepts it.
type supersedingStore struct{ *statesync.MemoryStore }

var _ statesynctest.SupersedingStore = supersedingStore{}

func (s supersedingStore) FeedSkipsSuperseded() bool { return true }

func (s supersedingStore) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	return s.MemoryStore.Watch(ctx, func(r statesync.Record) {
		if cur, err := s.MemoryStore.Get(context.Background(), r.Topic); err == nil && cur.Revision > r.Revision {
			return // superseded
		}
		fn(r)
	})
}

func TestSupersedingStore(t *testing.T) {
	statesynctest.TestStore(t, func(t *testing.T) statesync.Store {
		return supersedingStore{statesync.NewMemoryStore(nil)}
	})
}
