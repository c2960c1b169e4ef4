package pgstore_test

import (
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/pgtest"
	"github.com/statesync-go/statesync/statesynctest"
)

// The Store conformance suite, each subtest on its own handle on one
// database.
func TestConformance(t *testing.T) {
	db := pgtest.NewDatabase(t)
	statesynctest.TestStore(t, func(t *testing.T) statesync.Store { return open(t, db, nil) })
}

// The shared-store suite: two handles on one schema, as two daemons hold.
func TestConformanceShared(t *testing.T) {
	db := pgtest.NewDatabase(t)
	statesynctest.TestSharedStore(t, func(t *testing.T) (a, b statesync.Store) {
		return open(t, db, nil), open(t, db, nil)
	})
}
