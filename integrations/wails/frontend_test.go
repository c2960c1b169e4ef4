package wailssync_test

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestFrontend runs the node:test suite of frontend/statesync-wails.js
// (B-TRANS-01..04 for the ES module). It is skipped when node is not on
// PATH.
func TestFrontend(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
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
