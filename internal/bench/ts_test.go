package bench

import (
	"context"
	"encoding/json"
	"github.com/statesync-go/statesync/internal/svc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// standInCore is a tiny engine with the API shape of @statesync/core
// (createRevisionSync({topic, subscriber, provider, applier, onError}) →
// {start, stop, refresh, getLocalRevision}) and its coalescing: a refresh is
// async, and invalidations that arrive while one is in flight queue one
// more. It stands in for a real build, which is not installed here, to
// prove that ts/bench.mjs runs the workloads.
const standInCore = `
const cmp = (a, b) => a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
export function createRevisionSync({ topic, subscriber, provider, applier, onError }) {
  let local = "0", refreshing = false, queued = false, unsub = null, stopped = false;
  async function refresh() {
    if (refreshing) { queued = true; return; }
    refreshing = true;
    try {
      do {
        queued = false;
        try {
          const s = await provider.getSnapshot(topic);
          if (!stopped && cmp(s.revision, local) > 0) { applier.apply(s); local = s.revision; }
        } catch (error) { onError?.({ phase: "getSnapshot", topic, error }); }
      } while (queued && !stopped);
    } finally { refreshing = false; }
  }
  return {
    async start() {
      unsub = await subscriber.subscribe((ev) => {
        if (stopped || ev.topic !== topic || cmp(ev.revision, local) <= 0) return;
        refresh();
      });
      await refresh();
    },
    stop() { stopped = true; unsub?.(); },
    refresh,
    getLocalRevision: () => local,
  };
}
`

// nodeOrSkip returns the path of node, or skips the test.
func nodeOrSkip(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		svc.Missing(t, "node not on PATH: ts/bench.mjs not run")
	}
	return node
}

// runTSBench runs ts/bench.mjs with args and returns its stdout, stderr
// and exit code.
func runTSBench(t *testing.T, node string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("ts", "bench.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("node bench.mjs: %v", err)
	}
	return out.String(), errb.String(), 0
}

// writeStandIn writes the stand-in engine as a package whose package.json
// names its entry through "exports", as a real build does.
func writeStandIn(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pkg := `{"name":"@statesync/core","type":"module","exports":{".":{"import":"./dist/index.js"}}}`
	if err := os.MkdirAll(filepath.Join(dir, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"package.json": pkg, "dist/index.js": standInCore} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The script runs every workload on an engine given by path and prints
// the Go scenarios' JSON lines, with their invariants: no provider call for
// stale events, every revision applied in the cycle, every handle converged
// in fanout with the TS engine's coalescing (at most 2 fetches per 10
// updates per window).
func TestTSBenchRunsOnAStandInEngine(t *testing.T) {
	node := nodeOrSkip(t)
	dir := writeStandIn(t)
	out, errOut, code := runTSBench(t, node, dir, "-n", "gate_stale_events=1000,cycle_sequential=300,fanout=20x50,fanout=5x10")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), out)
	}
	var gate struct {
		Name          string   `json:"name"`
		Engine        string   `json:"engine"`
		NsPerOp       float64  `json:"ns_per_op"`
		AllocsPerOp   *float64 `json:"allocs_per_op"`
		ProviderCalls *int64   `json:"provider_calls"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &gate); err != nil {
		t.Fatal(err)
	}
	if gate.Name != NameGateStaleEvents || gate.Engine != "typescript" || gate.NsPerOp <= 0 ||
		gate.AllocsPerOp != nil || gate.ProviderCalls == nil || *gate.ProviderCalls != 0 {
		t.Errorf("gate line %s", lines[0])
	}
	var cycle struct {
		Name    string  `json:"name"`
		NsPerOp float64 `json:"ns_per_op"`
		Applied int64   `json:"applied"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &cycle); err != nil {
		t.Fatal(err)
	}
	if cycle.Name != NameCycleSequential || cycle.NsPerOp <= 0 || cycle.Applied != 300 {
		t.Errorf("cycle line %s", lines[1])
	}
	for i, want := range [][2]int{{20, 50}, {5, 10}} {
		var f FanoutResult
		if err := json.Unmarshal([]byte(lines[2+i]), &f); err != nil {
			t.Fatal(err)
		}
		maxFetches := float64(2 * (want[1] / 10)) // the engine's coalescing: 2 per 10 updates
		if f.Name != NameFanout || f.Windows != want[0] || f.Updates != want[1] || f.Ms <= 0 ||
			f.Fetches <= 0 || f.FetchesPerWindow != float64(f.Fetches)/float64(f.Windows) ||
			f.FetchesPerWindow > maxFetches {
			t.Errorf("fanout line %s (at most %v fetches per window)", lines[2+i], maxFetches)
		}
	}
	// The lines carry every field of the Go scenarios' lines.
	for i, r := range []any{GateResult{}, CycleResult{}, FanoutResult{}} {
		b, _ := json.Marshal(r)
		var goFields, tsFields map[string]any
		_ = json.Unmarshal(b, &goFields)
		if err := json.Unmarshal([]byte(lines[i]), &tsFields); err != nil {
			t.Fatal(err)
		}
		for k := range goFields {
			if _, ok := tsFields[k]; !ok {
				t.Errorf("line %d has no field %q: %s", i, k, lines[i])
			}
		}
	}
}

// Bad arguments and bad builds end with exit status 2 and a message that
// says what is wrong, before any workload runs.
func TestTSBenchBadArguments(t *testing.T) {
	node := nodeOrSkip(t)
	good := writeStandIn(t)
	empty := t.TempDir()
	badPkg := t.TempDir()
	if err := os.WriteFile(filepath.Join(badPkg, "package.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	noExport := t.TempDir()
	if err := os.WriteFile(filepath.Join(noExport, "index.mjs"), []byte("export const x = 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing CORE_DIR"},
		{[]string{empty}, "no package.json entry"},
		{[]string{badPkg}, "package.json"},
		{[]string{noExport}, "no createRevisionSync export"},
		{[]string{good, "nope"}, `unknown scenario "nope"`},
		{[]string{good, "-n"}, "-n needs a value"},
		{[]string{good, "-n", "fanout=10"}, "WINDOWSxUPDATES"},
		{[]string{good, "-n", "gate_stale_events=0"}, "bad size"},
		{[]string{good, "-n", "gate_stale_events=1e9"}, "bad size"},
		{[]string{good, "-n", "0"}, "bad scale factor"},
		{[]string{good, "-n", "cycle_sequential=5x5"}, "bad size"},
		{[]string{good, "-n", "__proto__=1"}, "bad size"},
	} {
		out, errOut, code := runTSBench(t, node, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("bench.mjs %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
