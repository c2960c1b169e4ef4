package boltcache_test

import (
	"testing"

	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/boltcache"
	"github.com/statesync-go/statesync/persist/persisttest"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// (B-GO-06). When the crash test re-executes the test binary as its
// child, TestMain runs the child's writer instead.
func TestMain(m *testing.M) {
	persisttest.CrashChild(openCrash)
	goleak.VerifyTestMain(m)
}

// openCrash opens the crash test's storage: key "topic" of the database
// at path, shared if the path ends in ".shared".
func openCrash(path string) (persist.Storage, func() error, error) {
	shared := len(path) > 7 && path[len(path)-7:] == ".shared"
	db, err := boltcache.Open(path, &boltcache.Options{Shared: shared, LockTimeout: 5e9})
	if err != nil {
		return nil, nil, err
	}
	s, err := db.Storage("topic")
	return s, db.Close, err
}
