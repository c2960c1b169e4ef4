package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a scenario leaves a goroutine
// running (B-GO-06).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
