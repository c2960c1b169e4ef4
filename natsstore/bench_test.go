package natsstore_test

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
	"github.com/statesync-go/statesync/internal/natstest"
)

// BenchmarkWrite measures unconditional writes (each one publish
// acknowledged by the stream, on an embedded server in this process) by 1
// and by 8 concurrent writers, each to a topic of its own, through one
// Store.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := open(b, natstest.NewServer(b), nil)
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

// BenchmarkFeedLatency measures the time from a write's call on one store
// to its record's arrival at a watcher of another store on the same bucket
// (publish, acknowledgement, delivery by the ordered consumer on the feed
// connection), one write at a time.
func BenchmarkFeedLatency(b *testing.B) {
	srv := natstest.NewServer(b)
	a, c := open(b, srv, nil), open(b, srv, nil)
	topic := newTopic("latency")
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
