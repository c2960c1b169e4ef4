package web_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/web"
)

// TestNodeNoEventSource runs statesync.js in Node, which (in version 20)
// has no global EventSource: connect throws a clear error at once instead of
// a TypeError when the first topic is followed (issue 9, item 13), and
// connects with EventSourceImpl. It is skipped when node is not on PATH.
func TestNodeNoEventSource(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not on PATH: statesync.js not run in Node")
	}
	dir := t.TempDir()
	// The .mjs name makes Node load it as an ES module.
	if err := os.WriteFile(filepath.Join(dir, "statesync.mjs"), web.Module(), 0o644); err != nil {
		t.Fatal(err)
	}
	const script = `import { connect } from "./statesync.mjs";
delete globalThis.EventSource; // Node 22 and later have one
try {
  connect({ url: "http://127.0.0.1:1" });
  console.log("connect did not throw");
} catch (e) {
  console.log("error: " + e.message);
}
class FakeEventSource { addEventListener() {} close() {} }
const c = connect({ url: "http://127.0.0.1:1", EventSourceImpl: FakeEventSource });
console.log("with EventSourceImpl: " + typeof c.subscriber);
`
	if err := os.WriteFile(filepath.Join(dir, "check.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.mjs")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, out)
	}
	want := `error: statesync: no EventSource: pass EventSourceImpl (e.g. from the "eventsource" package) in Node
with EventSourceImpl: function
`
	if got := strings.ReplaceAll(string(out), "\r\n", "\n"); got != want {
		t.Errorf("node check.mjs printed:\n%s\nwant:\n%s", got, want)
	}
}
