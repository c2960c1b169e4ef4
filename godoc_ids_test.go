package statesync_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// behaviourID matches a behaviour id such as B-GATE-03 or B-LIFE-*.
var behaviourID = regexp.MustCompile(`\bB-[A-Z0-9]+-(?:[0-9]+|\*)`)

// TestNoBehaviourIDsOutsideTests: behaviour ids live in tests and
// docs/CONFORMANCE.md; the code and its documentation say what they mean
// instead.
func TestNoBehaviourIDsOutsideTests(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if name == "testdata" || name == "node_modules" || path != "." && strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Ext(path) != ".go" || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if id := behaviourID.FindString(line); id != "" {
				t.Errorf("%s:%d cites %s; say what it means (ids belong in tests and docs/CONFORMANCE.md)", path, i+1, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
