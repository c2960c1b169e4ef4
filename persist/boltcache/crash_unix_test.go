//go:build unix

package boltcache_test

import (
	"path/filepath"
	"testing"

	"github.com/statesync-go/statesync/persist/persisttest"
)

// TestCrash kills a process saving to a bbolt DB with SIGKILL, six times,
// and checks that Load always returns a complete record, the old or the
// new one, never garbage.
func TestCrash(t *testing.T) {
	persisttest.TestCrash(t, filepath.Join(t.TempDir(), "cache.db"), openCrash)
}

// The same with the file opened per operation.
func TestCrashShared(t *testing.T) {
	persisttest.TestCrash(t, filepath.Join(t.TempDir(), "cache.db.shared"), openCrash)
}
