package boltstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
	"github.com/statesync-go/statesync/internal/storetest"
)

var benchSizes = []struct {
	name string
	n    int
}{{"1KB", 1 << 10}, {"100KB", 100 << 10}}

// benchData is a JSON string of n bytes.
func benchData(n int) json.RawMessage {
	return json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), n-2)) + `"`)
}

// BenchmarkWrite measures one committed write, with the fsync of each
// commit (sync) and without it (nosync, the unsafe test mode).
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"sync", false}, {"nosync", true}} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%s", mode.name, size.name), func(b *testing.B) {
				s, _ := newStore(b, &boltstore.Options{NoSync: mode.noSync})
				w := statesync.Write{Topic: "bench", Data: benchData(size.n)}
				ctx := context.Background()
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Write(ctx, w); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGet measures reading a topic back (a read transaction, checksum
// and copy of the data), serially and from parallel readers.
func BenchmarkGet(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			s, _ := newStore(b, nil)
			ctx := context.Background()
			mustWrite(b, s, statesync.Write{Topic: "bench", Data: benchData(size.n)})
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(size.name+"/parallel", func(b *testing.B) {
			s, _ := newStore(b, nil)
			ctx := context.Background()
			mustWrite(b, s, statesync.Write{Topic: "bench", Data: benchData(size.n)})
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Get(ctx, "bench"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkWriters measures durable writes (fsync at each commit) by 1, 4,
// 8 and 16 concurrent writers, each to its own topic: writes/s and the
// 99th percentile latency (p99-ms), and the writes per transaction
// (writes/commit): concurrent writes share commits (see the package
// documentation), so writes/s grows with the writers.
func BenchmarkWriters(b *testing.B) {
	storetest.BenchWriters(b, func(b *testing.B) statesync.Store {
		s, _ := newStore(b, &boltstore.Options{})
		b.Cleanup(func() { // before the store's own cleanup closes it
			if commits, writes := boltstore.GroupStats(s); commits > 0 {
				b.ReportMetric(float64(writes)/float64(commits), "writes/commit")
			}
		})
		return s
	}, 1, 4, 8, 16)
}
