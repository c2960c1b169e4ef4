package persisttest_test

import (
	"testing"

	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
)

// A storage backend runs the suite from its own tests: each test of the
// suite gets a fresh backend (here a directory of files), and the Opener
// returns the storage of a key in it.
func ExampleTestStorage() {
	// In the backend's _test.go file:
	TestFileStorage := func(t *testing.T) {
		persisttest.TestStorage(t, func(t *testing.T) persisttest.Opener {
			dir := t.TempDir()
			return func(key string) persist.Storage {
				s, err := persist.NewFileStorage(dir, key, nil)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		})
	}
	_ = TestFileStorage
}
