package faultproxy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running:
// Close must wait for all of a proxy's goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
