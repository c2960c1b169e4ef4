package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/pgtest"
	"github.com/statesync-go/statesync/internal/storetest"
)

// BenchmarkWrite measures unconditional writes (each one statement with
// its NOTIFY, committed as the server is configured) by 1 and by 8
// concurrent writers, each to a topic of its own, through one Store with
// a pool of 16 connections.
func BenchmarkWrite(b *testing.B) {
	storetest.BenchWrite(b, func(b *testing.B) statesync.Store {
		return open(b, storetest.WithOpt(b, pgtest.NewDatabase(b), "pool_max_conns", "16"), nil)
	})
}

// BenchmarkFeedLatency measures the time from a write's call on one store
// to its record's arrival at a watcher of another store on the same schema
// (commit, NOTIFY, delivery on the feed connection), one write at a time.
func BenchmarkFeedLatency(b *testing.B) {
	storetest.BenchFeedLatency(b, func(b *testing.B) (a, c statesync.Store) {
		db := pgtest.NewDatabase(b)
		return open(b, db, nil), open(b, db, nil)
	})
}

// BenchmarkNotifyLimit finds the write rate at which NOTIFY becomes the
// limit: PostgreSQL serialises the commits of notifying transactions on
// its notification queue, so unconditional writes through the store
// (each an upsert with its NOTIFY) are set against the same upsert
// without the NOTIFY, as writers are added (each on a topic of its own,
// a pool of 64 connections).
func BenchmarkNotifyLimit(b *testing.B) {
	db := storetest.WithOpt(b, pgtest.NewDatabase(b), "pool_max_conns", "64")
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
						topic := storetest.NewTopic("limit")
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
