package apply_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/statesync-go/statesync"
)

// snap returns a snapshot of data at rev.
func snap(rev statesync.Revision, data string) statesync.Snapshot {
	return statesync.Snapshot{Revision: rev, Data: json.RawMessage(data)}
}

// obj decodes a JSON object the way Map[any] holds it.
func obj(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("obj(%q): %v", s, err)
	}
	return m
}

// applyAll applies each data in turn at revisions 1, 2, … and fails the
// test on the first error.
func applyAll(t testing.TB, a statesync.Applier, data ...string) {
	t.Helper()
	for i, d := range data {
		if err := a.Apply(context.Background(), snap(statesync.Revision(i+1), d)); err != nil {
			t.Fatalf("Apply(%s) = %v; want nil", d, err)
		}
	}
}
