// Package fakesuite is a suite for the tests of the chaos command: it fails
// for one seed of STATESYNC_CHAOS_SEED, and its rapid property fails for
// some of rapid's seeds. Being under testdata, it is not part of ./...
package fakesuite

import (
	"os"
	"testing"

	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// FailSeed is the STATESYNC_CHAOS_SEED for which TestSeeded fails.
const FailSeed = "1004"

func TestSeeded(t *testing.T) {
	seed := os.Getenv("STATESYNC_CHAOS_SEED")
	if seed == "" {
		t.Fatal("STATESYNC_CHAOS_SEED is not set")
	}
	if seed == FailSeed {
		t.Fatalf("fake failure for seed %s", seed)
	}
}

// TestRapid fails when rapid draws an odd number. Rapid's first check
// draws 0, its second a number that depends on its seed: with
// -rapid.checks=2, about half the seeds fail.
func TestRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		if x := rapid.IntRange(0, 1<<20).Draw(t, "x"); x%2 == 1 {
			t.Fatalf("fake rapid failure: x = %d", x)
		}
	})
}
