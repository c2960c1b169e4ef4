package redisstore_test

import (
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/internal/storetest"
)

// BenchmarkWrite measures unconditional writes (each one Lua script, with
// its stream entry) by 1 and by 8 concurrent writers, each to a topic of
// its own, through one Store with a pool of 16 connections, on the server
// of STATESYNC_TEST_REDIS_URL (as configured: .ci/services runs it without
// persistence).
func BenchmarkWrite(b *testing.B) {
	storetest.BenchWrite(b, func(b *testing.B) statesync.Store {
		u, _ := redistest.NewPrefix(b)
		return open(b, storetest.WithOpt(b, u, "pool_size", "16"), nil)
	})
}

// BenchmarkFeedLatency measures the time from a write's call on one store
// to its record's arrival at a watcher of another store on the same
// prefix (the script, XREAD's wake-up, delivery on the feed connection),
// one write at a time.
func BenchmarkFeedLatency(b *testing.B) {
	storetest.BenchFeedLatency(b, func(b *testing.B) (a, c statesync.Store) {
		u, _ := redistest.NewPrefix(b)
		return open(b, u, nil), open(b, u, nil)
	})
}
