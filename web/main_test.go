package web_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// (B-GO-06): the browser tests close their tabs, their browser (waiting for
// chromedp's allocator to reap the process) and their servers before they
// return.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
