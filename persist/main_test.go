package persist_test

import (
	"testing"

	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
	"go.uber.org/goleak"
)

// openFileStorage opens the crash test's storage: key "topic" in dir.
func openFileStorage(dir string) (persist.Storage, func() error, error) {
	s, err := persist.NewFileStorage(dir, "topic", nil)
	return s, func() error { return nil }, err
}

// TestMain fails the package's tests if any goroutine is left running
// (B-GO-06). When the crash test re-executes the test binary as a child
// process, TestMain runs the child's job instead of the tests.
func TestMain(m *testing.M) {
	persisttest.CrashChild(openFileStorage)
	goleak.VerifyTestMain(m)
}
