package statesync_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/statesync-go/statesync"
)

// BenchmarkSourceSnapshotCached is the hot path of every GET and inline
// frame: a topic held in memory.
func BenchmarkSourceSnapshotCached(b *testing.B) {
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	if _, err := src.Put(ctx, "t", json.RawMessage(`{"a":1}`)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := src.Snapshot(ctx, "t"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSourcePut is a write through a memory store, with its feed
// event handled by the Source (cache update and emission).
func BenchmarkSourcePut(b *testing.B) {
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	data := json.RawMessage(`{"a":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Put(ctx, "t", data); err != nil {
			b.Fatal(err)
		}
	}
}
