package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync"
)

// BenchmarkWrite measures unconditional writes (each one statement with
// its NOTIFY, committed as the server is configured) by 1 and by 8
// concurrent writers, each to a topic of its own, through one Store with
// a pool of 16 connections.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := open(b, withOpt(b, newDatabase(b), "pool_max_conns", "16"), nil)
			data := json.RawMessage(`{"counter":12345,"name":"benchmark"}`)
			b.ReportAllocs()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					topic := newTopic("bench")
					ctx := context.Background()
					for next.Add(1) <= int64(b.N) {
						if _, err := s.Write(ctx, statesync.Write{Topic: topic, Data: data}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}
