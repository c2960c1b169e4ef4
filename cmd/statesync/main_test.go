package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"runtime/debug"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a command leaves a goroutine
// running (B-GO-06).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run runs the program with args and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	code = m.exitCode(m.Run(t.Context(), args))
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		toStdout bool
	}{
		{nil, 2, false},
		{[]string{"help"}, 0, true},
		{[]string{"-h"}, 0, true},
		{[]string{"--help"}, 0, true},
	}
	for _, tt := range tests {
		code, stdout, stderr := run(t, tt.args...)
		text := stderr
		if tt.toStdout {
			text = stdout
		}
		if code != tt.code || !strings.Contains(text, "Commands:") {
			t.Errorf("Run(%q) = exit %d, stdout %q, stderr %q; want exit %d and the usage on %s",
				tt.args, code, stdout, stderr, tt.code, map[bool]string{true: "stdout", false: "stderr"}[tt.toStdout])
		}
		for _, cmd := range []string{"bench", "version", "help"} {
			if !strings.Contains(text, "\t"+cmd+" ") {
				t.Errorf("Run(%q) usage does not list %q:\n%s", tt.args, cmd, text)
			}
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	code, stdout, stderr := run(t, "frobnicate", "x")
	if code != 2 || stdout != "" || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("Run(frobnicate) = exit %d, stdout %q, stderr %q; want exit 2 and an unknown command error", code, stdout, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := run(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "statesync ") || stderr != "" {
		t.Errorf("Run(version) = exit %d, stdout %q, stderr %q; want exit 0 and a version line", code, stdout, stderr)
	}
	if code, _, _ := run(t, "version", "extra"); code != 2 {
		t.Errorf("Run(version extra) = exit %d; want 2", code)
	}
}

func TestVersionString(t *testing.T) {
	tests := []struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{nil, false, "statesync (unknown version)"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, true, "statesync v1.2.3 (go1.26.8)"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
		}}, true, "statesync (devel) (go1.26.8, commit 0123456789ab, modified)"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"},
		}}, true, "statesync (devel) (go1.26.8, commit abc)"},
	}
	for _, tt := range tests {
		if got := versionString(tt.info, tt.ok); got != tt.want {
			t.Errorf("versionString(%+v) = %q; want %q", tt.info, got, tt.want)
		}
	}
}

// benchLine is the union of the fields of the bench scenarios' JSON lines.
type benchLine struct {
	Name             string   `json:"name"`
	Refresh          *string  `json:"refresh"`
	NsPerOp          *float64 `json:"ns_per_op"`
	AllocsPerOp      *float64 `json:"allocs_per_op"`
	ProviderCalls    *int64   `json:"provider_calls"`
	Applied          *int64   `json:"applied"`
	Final            *string  `json:"final"`
	Windows          *int     `json:"windows"`
	Updates          *int     `json:"updates"`
	Ms               *float64 `json:"ms"`
	Fetches          *int64   `json:"fetches"`
	FetchesPerWindow *float64 `json:"fetches_per_window"`
}

// parseBench parses bench output strictly: one JSON object per line, with
// no field outside the scenarios' figures.
func parseBench(t *testing.T, out string) []benchLine {
	t.Helper()
	var lines []benchLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		var b benchLine
		if err := dec.Decode(&b); err != nil {
			t.Fatalf("bench line %q: %v", l, err)
		}
		lines = append(lines, b)
	}
	return lines
}

func TestBenchAll(t *testing.T) {
	// The in-process scenarios; the SSE ones start a server process of
	// their own and are tested in internal/bench.
	code, stdout, stderr := run(t, "bench", "-n", "gate_stale_events=1000,cycle_sequential=100,burst_coalescing=50,fanout=20x10,fanout=50x2",
		"gate_stale_events", "cycle_sequential", "burst_coalescing", "fanout")
	if code != 0 || stderr != "" {
		t.Fatalf("Run(bench) = exit %d, stderr %q; want exit 0 and no stderr", code, stderr)
	}
	lines := parseBench(t, stdout)
	var names []string
	for _, l := range lines {
		names = append(names, l.Name)
	}
	const want = "gate_stale_events cycle_sequential cycle_sequential burst_coalescing fanout fanout fanout fanout"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("bench scenarios = %s; want %s", got, want)
	}
	gate, burst := lines[0], lines[3]
	if gate.NsPerOp == nil || gate.AllocsPerOp == nil || gate.ProviderCalls == nil || *gate.ProviderCalls != 0 {
		t.Errorf("gate line = %+v; want ns_per_op, allocs_per_op and provider_calls 0", gate)
	}
	for i, mode := range []string{"goroutine", "inline"} {
		cycle := lines[1+i]
		if cycle.Refresh == nil || *cycle.Refresh != mode || cycle.NsPerOp == nil || cycle.AllocsPerOp == nil ||
			cycle.Applied == nil || *cycle.Applied != 100 {
			t.Errorf("cycle line %d = %+v; want refresh %q, ns_per_op, allocs_per_op and applied 100", i, cycle, mode)
		}
	}
	if burst.ProviderCalls == nil || *burst.ProviderCalls != 2 || burst.Final == nil || *burst.Final != "51" {
		t.Errorf("burst line = %+v; want provider_calls 2 and final \"51\"", burst)
	}
	for i, f := range []struct {
		w, u int
		mode string
	}{{20, 10, "goroutine"}, {20, 10, "inline"}, {50, 2, "goroutine"}, {50, 2, "inline"}} {
		l := lines[4+i]
		if l.Refresh == nil || *l.Refresh != f.mode || l.Windows == nil || *l.Windows != f.w || l.Updates == nil ||
			*l.Updates != f.u || l.Ms == nil || l.Fetches == nil || l.FetchesPerWindow == nil ||
			*l.FetchesPerWindow != float64(*l.Fetches)/float64(f.w) {
			t.Errorf("fanout line = %+v; want refresh %q, windows %d, updates %d, ms, fetches and fetches_per_window",
				l, f.mode, f.w, f.u)
		}
	}
}

func TestBenchNamesAndRuns(t *testing.T) {
	// Flags may follow names; fanout selects both sizes, each in both
	// refresh modes.
	code, stdout, stderr := run(t, "bench", "burst_coalescing", "fanout", "-runs", "3", "-n", "0.001")
	if code != 0 || stderr != "" {
		t.Fatalf("Run(bench burst_coalescing fanout) = exit %d, stderr %q; want exit 0", code, stderr)
	}
	lines := parseBench(t, stdout)
	if len(lines) != 5 || lines[0].Name != "burst_coalescing" || lines[1].Name != "fanout" || lines[4].Name != "fanout" {
		t.Errorf("bench output = %q; want a burst_coalescing line then four fanout lines", stdout)
	}
}

func TestBenchErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bench", "no_such_scenario"}, `unknown scenario "no_such_scenario"`},
		{[]string{"bench", "-n", "0"}, "-n"},
		{[]string{"bench", "-n", "fanout=3"}, "WINDOWSxUPDATES"},
		{[]string{"bench", "-runs", "0"}, "-runs"},
		{[]string{"bench", "-bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		code, stdout, stderr := run(t, tt.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("Run(%q) = exit %d, stdout %q, stderr %q; want exit 2 and %q on stderr", tt.args, code, stdout, stderr, tt.want)
		}
	}
}

func TestBenchHelp(t *testing.T) {
	code, _, stderr := run(t, "bench", "-h")
	if code != 0 || !strings.Contains(stderr, "-runs") || !strings.Contains(stderr, "gate_stale_events") {
		t.Errorf("Run(bench -h) = exit %d, stderr %q; want exit 0 and the flags and scenario names", code, stderr)
	}
}

func TestBenchCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	err := m.Run(ctx, []string{"bench", "-n", "0.01"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run(bench) with a cancelled context = %v; want context.Canceled", err)
	}
	if code := m.exitCode(err); code != 1 || !strings.Contains(errOut.String(), "context canceled") {
		t.Errorf("exitCode(%v) = %d, stderr %q; want 1 and the error reported", err, code, errOut.String())
	}
}

func TestExitCode(t *testing.T) {
	m := &Main{Stderr: new(bytes.Buffer)}
	for _, tt := range []struct {
		err  error
		want int
	}{{nil, 0}, {flag.ErrHelp, 0}, {errUsage, 2}, {errors.New("boom"), 1}} {
		if got := m.exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d; want %d", tt.err, got, tt.want)
		}
	}
}
