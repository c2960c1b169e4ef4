package boltstore_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// (B-GO-06). When the crash test re-executes the test binary as its child
// (crashChildEnv set), TestMain runs the child's writer instead of the
// tests.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	goleak.VerifyTestMain(m)
}
