package apply_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// (B-GO-06).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
