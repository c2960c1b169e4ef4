package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

// BenchWrite measures unconditional writes by 1 and by 8 concurrent
// writers, as [BenchWriters] does.
func BenchWrite(b *testing.B, open func(b *testing.B) statesync.Store) {
	BenchWriters(b, open, 1, 8)
}

// BenchWriters measures unconditional writes by each number of concurrent
// writers in counts (one sub-benchmark "writers=N" each), each writer to a
// topic of its own, through one store: open is called once per
// sub-benchmark and returns a new store, closed at b's cleanup. It reports
// writes/s and the 99th percentile of one write's latency in
// milliseconds (p99-ms); ns/op is the wall time per write of all writers
// together.
func BenchWriters(b *testing.B, open func(b *testing.B) statesync.Store, counts ...int) {
	for _, writers := range counts {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := open(b)
			data := json.RawMessage(`{"counter":12345,"name":"benchmark"}`)
			b.ReportAllocs()
			var next atomic.Int64
			var wg sync.WaitGroup
			lats := make([][]time.Duration, writers)
			b.ResetTimer()
			for i := range writers {
				wg.Go(func() {
					topic := NewTopic("bench")
					ctx := context.Background()
					lat := make([]time.Duration, 0, b.N/writers+1)
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						if _, err := s.Write(ctx, statesync.Write{Topic: topic, Data: data}); err != nil {
							b.Error(err)
							return
						}
						lat = append(lat, time.Since(start))
					}
					lats[i] = lat
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			all := slices.Concat(lats...)
			if len(all) > 0 {
				slices.Sort(all)
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchFeedLatency measures the time from a write's call on store a to its
// record's arrival at a watcher of store c, one write at a time. open
// returns the two stores, sharing their data and closed at b's cleanup. It
// reports the median and the 99th percentile in microseconds.
func BenchFeedLatency(b *testing.B, open func(b *testing.B) (a, c statesync.Store)) {
	a, c := open(b)
	topic := NewTopic("latency")
	seen := make(chan statesync.Revision, 1)
	stop, err := c.Watch(context.Background(), func(r statesync.Record) {
		if r.Topic == topic {
			select {
			case seen <- r.Revision:
			default:
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rec, err := a.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
		if err != nil {
			b.Fatal(err)
		}
		for r := range seen {
			if r == rec.Revision {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
