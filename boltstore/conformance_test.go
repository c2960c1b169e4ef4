package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
	"github.com/statesync-go/statesync/statesynctest"
)

// The Store conformance suite, on a new file per subtest (B-TRANS-08,
// B-GO-01).
func TestConformance(t *testing.T) {
	statesynctest.TestStore(t, func(t *testing.T) statesync.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "statesync.db"), &boltstore.Options{NoSync: true})
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// The suite again on one file reopened for each subtest: a store that has
// been closed and reopened (new epoch, old topics) keeps the contract.
func TestConformanceReopened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "statesync.db")
	statesynctest.TestStore(t, func(t *testing.T) statesync.Store {
		s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
		if err != nil {
			t.Fatalf("Open(%q) = %v", path, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
