package redisstore_test

import (
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/statesynctest"
)

// The Store conformance suite, each subtest on its own handle on one
// prefix.
func TestConformance(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	statesynctest.TestStore(t, func(t *testing.T) statesync.Store { return open(t, u, nil) })
}

// The shared-store suite: two handles on one prefix, as two daemons hold.
func TestConformanceShared(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	statesynctest.TestSharedStore(t, func(t *testing.T) (a, b statesync.Store) {
		return open(t, u, nil), open(t, u, nil)
	})
}
