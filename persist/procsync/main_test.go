package procsync_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv, when set in a re-executed test binary, makes TestMain run
// xprocChild with its value instead of the tests.
const childEnv = "PROCSYNC_TEST_XPROC"

// TestMain fails the package's tests if any goroutine is left running.
func TestMain(m *testing.M) {
	if arg := os.Getenv(childEnv); arg != "" {
		os.Exit(xprocChild(arg))
	}
	goleak.VerifyTestMain(m)
}
