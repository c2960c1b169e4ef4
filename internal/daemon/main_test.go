package daemon_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a daemon leaves a goroutine
// running after Shutdown or Run has returned (B-GO-06).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
