package wailssync_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestFrontend runs the node:test suite of frontend/statesync-wails.js
// (B-TRANS-01..04 for the ES module). It is skipped when node is not on
// PATH, and fails then if STATESYNC_REQUIRE_SERVICES is set (as in CI).
func TestFrontend(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("STATESYNC_REQUIRE_SERVICES") != "" {
			t.Fatal("STATESYNC_REQUIRE_SERVICES is set but node is not on PATH: frontend tests not run")
		}
		t.Skip("node not on PATH: frontend tests not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "frontend/statesync-wails.test.mjs")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test frontend/statesync-wails.test.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
