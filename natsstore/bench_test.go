package natsstore_test

import (
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/internal/storetest"
)

// BenchmarkWrite measures unconditional writes (each one publish
// acknowledged by the stream, on an embedded server in this process) by 1
// and by 8 concurrent writers, each to a topic of its own, through one
// Store.
func BenchmarkWrite(b *testing.B) {
	storetest.BenchWrite(b, func(b *testing.B) statesync.Store { return open(b, natstest.NewServer(b), nil) })
}

// BenchmarkFeedLatency measures the time from a write's call on one store
// to its record's arrival at a watcher of another store on the same bucket
// (publish, acknowledgement, delivery by the ordered consumer on the feed
// connection), one write at a time.
func BenchmarkFeedLatency(b *testing.B) {
	storetest.BenchFeedLatency(b, func(b *testing.B) (a, c statesync.Store) {
		srv := natstest.NewServer(b)
		return open(b, srv, nil), open(b, srv, nil)
	})
}
