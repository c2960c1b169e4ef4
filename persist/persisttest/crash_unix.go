//go:build unix

package persisttest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/crashtest"
	"github.com/statesync-go/statesync/persist"
)

// TestCrash kills a process that saves records to path in a loop with
// SIGKILL at random points, several times over, and checks after each kill
// that the storage opens, that Load returns a complete record (never an
// error, never garbage), that it is the last acknowledged save or the one
// in flight, and that saving continues above it. The test binary's
// TestMain must call [CrashChild]. It is skipped with -short. The seed of
// the kill points is logged; the environment variable STATESYNC_CRASH_SEED
// replays it.
//
// SIGKILL tests the crash of the process, not of the machine: the page
// cache survives it.
func TestCrash(t *testing.T, path string, open OpenFunc) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	rng := crashtest.NewRand(t)
	var last statesync.Revision // acknowledged or found after the last kill
	acked := 0
	const rounds = 6
	for round := range rounds {
		killAfter := 1 + rng.IntN(40)
		delay := time.Duration(rng.IntN(2000)) * time.Microsecond
		revs := runCrashChild(t, path, killAfter, delay)
		for _, r := range revs {
			if r != last+1 {
				t.Fatalf("round %d: child acknowledged %d after %d; want %d", round, r, last, last+1)
			}
			last = r
		}
		acked += len(revs)

		s, closeFn, err := open(path)
		if err != nil {
			t.Fatalf("round %d: open(%q) after SIGKILL = %v; want a clean open", round, path, err)
		}
		got, ok, err := s.Load(context.Background())
		closeFn()
		if err != nil {
			t.Fatalf("round %d: Load() after SIGKILL = %v; want a complete record", round, err)
		}
		if !ok {
			if last > 0 {
				t.Fatalf("round %d: Load() after SIGKILL = nothing; want revision %d or later", round, last)
			}
			continue
		}
		if got.Meta.Revision < last || got.Meta.Revision > last+1 {
			t.Errorf("round %d: Load() = revision %d; want %d (last acknowledged) or %d (in flight)", round, got.Meta.Revision, last, last+1)
		}
		want := crashRecord(got.Meta.Revision)
		if got.Meta.Hash != want.Meta.Hash || !bytes.Equal(got.Payload, want.Payload) || persist.Hash(got.Payload) != want.Meta.Hash {
			t.Fatalf("round %d: Load() = revision %d with %d payload bytes; want exactly the record saved at that revision (%d bytes)",
				round, got.Meta.Revision, len(got.Payload), len(want.Payload))
		}
		t.Logf("round %d: killed %v after %d acknowledged saves; found revision %d", round, delay, len(revs), got.Meta.Revision)
		last = got.Meta.Revision
	}
	if acked == 0 {
		t.Fatalf("the children acknowledged no save in %d rounds; the test tested nothing", rounds)
	}
}

// runCrashChild runs the child on path, kills it with SIGKILL once it has
// acknowledged killAfter saves and delay has passed, and returns the
// acknowledged revisions.
func runCrashChild(tb testing.TB, path string, killAfter int, delay time.Duration) []statesync.Revision {
	tb.Helper()
	var revs []statesync.Revision
	crashtest.Run(tb, CrashChildEnv, path, killAfter, delay, func(line string) {
		rev, err := statesync.ParseRevision(line)
		if err != nil {
			tb.Fatalf("child wrote %q; want a revision", line)
		}
		revs = append(revs, rev)
	})
	return revs
}
