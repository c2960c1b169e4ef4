//go:build unix

package persist_test

import (
	"path/filepath"
	"testing"

	"github.com/statesync-go/statesync/persist/persisttest"
)

// TestFileStorageCrash kills a process saving to a FileStorage with
// SIGKILL, six times, and checks that Load always returns a complete
// record, the old or the new one, never a torn one.
func TestFileStorageCrash(t *testing.T) {
	persisttest.TestCrash(t, filepath.Join(t.TempDir(), "cache"), openFileStorage)
}
