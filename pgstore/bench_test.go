package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/pgtest"
)

// BenchmarkWrite measures unconditional writes (each one statement with
// its NOTIFY, committed as the server is configured) by 1 and by 8
// concurrent writers, each to a topic of its own, through one Store with
// a pool of 16 connections.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := open(b, withOpt(b, pgtest.NewDatabase(b), "pool_max_conns", "16"), nil)
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
// to its record's arrival at a watcher of another store on the same schema
// (commit, NOTIFY, delivery on the feed connection), one write at a time.
func BenchmarkFeedLatency(b *testing.B) {
	db := pgtest.NewDatabase(b)
	a, c := open(b, db, nil), open(b, db, nil)
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

// BenchmarkNotifyLimit finds the write rate at which NOTIFY becomes the
// limit: PostgreSQL serialises the commits of notifying transactions on
// its notification queue, so unconditional writes through the store
// (each an upsert with its NOTIFY) are set against the same upsert
// without the NOTIFY, as writers are added (each on a topic of its own,
// a pool of 64 connections).
func BenchmarkNotifyLimit(b *testing.B) {
	db := withOpt(b, pgtest.NewDatabase(b), "pool_max_conns", "64")
	s := open(b, db, nil)
	pool, err := pgxpool.New(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	data := json.RawMessage(`{"counter":12345,"name":"benchmark"}`)
	const upsert = `INSERT INTO statesync.topics AS t (topic, revision, data, source_id, updated_at)
		VALUES ($1, 1, $2, '', clock_timestamp())
		ON CONFLICT (topic) DO UPDATE SET revision = t.revision + 1, data = excluded.data, updated_at = excluded.updated_at`
	for _, mode := range []string{"notify", "no-notify"} {
		for _, writers := range []int{1, 8, 32, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range writers {
					wg.Go(func() {
						topic := newTopic("limit")
						ctx := context.Background()
						for next.Add(1) <= int64(b.N) {
							var err error
							if mode == "notify" {
								_, err = s.Write(ctx, statesync.Write{Topic: topic, Data: data})
							} else {
								_, err = pool.Exec(ctx, upsert, topic, []byte(data))
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
