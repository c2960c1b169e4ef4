package natsstore_test

import (
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/statesynctest"
)

// The Store conformance suite, each subtest on its own handle on one
// bucket of an embedded server.
func TestConformance(t *testing.T) {
	url := natstest.NewServer(t)
	statesynctest.TestStore(t, func(t *testing.T) statesync.Store { return open(t, url, nil) })
}

// The shared-store suite: two handles on one bucket, as two daemons hold.
func TestConformanceShared(t *testing.T) {
	url := natstest.NewServer(t)
	statesynctest.TestSharedStore(t, func(t *testing.T) (a, b statesync.Store) {
		return open(t, url, nil), open(t, url, nil)
	})
}
