package statesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/statesync-go/statesync"
)

// prefixOnly is a store whose List fails: Source.ListPrefix must use its
// ListPrefix.
type prefixOnly struct {
	*statesync.MemoryStore
	prefixes []string
}

func (s *prefixOnly) List(context.Context) ([]statesync.Record, error) {
	return nil, errors.New("List called")
}

func (s *prefixOnly) ListPrefix(ctx context.Context, prefix string) ([]statesync.Record, error) {
	s.prefixes = append(s.prefixes, prefix)
	all, err := s.MemoryStore.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []statesync.Record
	for _, r := range all {
		if len(r.Topic) >= len(prefix) && r.Topic[:len(prefix)] == prefix {
			out = append(out, r)
		}
	}
	return out, nil
}

// TestSourceListPrefix: ListPrefix lists the written topics starting with
// a prefix, from the store's ListPrefix when it has one, else from List.
func TestSourceListPrefix(t *testing.T) {
	ctx := context.Background()
	mem := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1})
	po := &prefixOnly{MemoryStore: statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1})}
	for name, store := range map[string]statesync.Store{"List": mem, "PrefixLister": po} {
		src, err := statesync.NewSource(store, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range []string{"cache:b", "cache:a", "cachex", "settings"} {
			if _, err := src.Put(ctx, topic, json.RawMessage(`1`)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := src.ListPrefix(ctx, "cache:")
		if err != nil || len(got) != 2 || got[0].Topic != "cache:a" || got[1].Topic != "cache:b" || got[0].Revision != 1 || got[0].Epoch == "" {
			t.Errorf("%s: ListPrefix(cache:) = %+v, %v; want cache:a and cache:b at revision 1", name, got, err)
		}
		if got, err := src.ListPrefix(ctx, "none:"); err != nil || len(got) != 0 {
			t.Errorf("%s: ListPrefix(none:) = %+v, %v; want none", name, got, err)
		}
		src.Close()
		if _, err := src.ListPrefix(ctx, "cache:"); !errors.Is(err, statesync.ErrClosed) {
			t.Errorf("%s: ListPrefix after Close = %v; want ErrClosed", name, err)
		}
	}
	if len(po.prefixes) != 2 {
		t.Errorf("store ListPrefix calls = %q; want 2", po.prefixes)
	}
}
