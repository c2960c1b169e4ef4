package e2e_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// (B-HARN-09, B-GO-06).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
