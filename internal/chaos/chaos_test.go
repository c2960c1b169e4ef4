package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSuites fail for some seeds: fake-seed for STATESYNC_CHAOS_SEED=1004
// only, fake-rapid for the rapid seeds that draw 0.
func fakeSuites() []Suite {
	return []Suite{
		{Name: "fake-seed", Pkg: "./internal/chaos/testdata/fakesuite", Run: "^TestSeeded$", SeedEnv: []string{chaosSeedEnv}},
		{Name: "fake-rapid", Pkg: "./internal/chaos/testdata/fakesuite", Run: "^TestRapid$", Rapid: true,
			Args: []string{"-rapid.checks=2"}},
	}
}

func newFakeCampaign(t *testing.T, runs int) (*Campaign, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	root, err := moduleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var log, report bytes.Buffer
	c := &Campaign{Root: root, Suites: fakeSuites(), Runs: runs, Budget: 10 * time.Minute, Jobs: 2,
		Seed: 1000, Timeout: time.Minute, Tail: 20, BinDir: t.TempDir(), Log: &log, Report: &report}
	return c, &log, &report
}

// replay runs cmd (a printed replay command) with sh from the module root
// and returns its output and whether it failed.
func replay(t *testing.T, root, cmd string) (string, bool) {
	t.Helper()
	sh := exec.CommandContext(t.Context(), "sh", "-c", cmd)
	sh.Dir = root
	out, err := sh.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("sh -c %q: %v", cmd, err)
	}
	return string(out), err != nil
}

// The campaign finds the one failing seed of fake-seed and the failing
// rapid seeds of fake-rapid, reports each with its seed, replay command
// and output, and each replay command reproduces its failure (issue 15,
// "Replay").
func TestCampaignReportsAndReplays(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs test binaries")
	}
	c, log, report := newFakeCampaign(t, 20)
	if err := c.Build(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum := c.Run(t.Context())
	if sum.Done != 20 || sum.Budgeted {
		t.Fatalf("Done = %d, Budgeted = %v; want 20, false", sum.Done, sum.Budgeted)
	}
	var seedFails, rapidFails []Result
	for _, f := range sum.Failures {
		switch f.Suite.Name {
		case "fake-seed":
			seedFails = append(seedFails, f)
		case "fake-rapid":
			rapidFails = append(rapidFails, f)
		}
	}
	if len(seedFails) != 1 || seedFails[0].Seed != 1004 {
		t.Fatalf("fake-seed failures = %+v; want one, seed 1004", seedFails)
	}
	if got := sum.BySuite["fake-rapid"].Runs; len(rapidFails) == 0 || len(rapidFails) == got {
		t.Fatalf("fake-rapid failed %d of %d runs; want some but not all (rapid's seed must vary)", len(rapidFails), got)
	}
	for _, f := range append(seedFails, rapidFails[0]) {
		for name, out := range map[string]string{"log": log.String(), "report": report.String()} {
			for _, want := range []string{f.Replay(), fmt.Sprintf("seed %d,", f.Seed)} {
				if !strings.Contains(out, want) {
					t.Errorf("%s does not contain %q:\n%s", name, want, out)
				}
			}
		}
	}
	if !strings.Contains(report.String(), "fake failure for seed 1004") {
		t.Errorf("report lacks the failed run's output:\n%s", report)
	}

	// Replay: the printed command fails again, with the same failure.
	out, failed := replay(t, c.Root, seedFails[0].Replay())
	if !failed || !strings.Contains(out, "fake failure for seed 1004") {
		t.Errorf("replay of seed 1004: failed = %v, output:\n%s\nwant the same failure", failed, out)
	}
	rf := rapidFails[0]
	out, failed = replay(t, c.Root, rf.Replay())
	if !failed || !strings.Contains(out, "fake rapid failure: x = 1") { // shrunk to 1
		t.Errorf("replay of rapid seed %d: failed = %v, output:\n%s\nwant the same failure", rf.Seed, failed, out)
	}
	// And a seed that passed in the campaign passes again.
	for n := 1; n < 20; n += 2 {
		r := Result{Suite: c.Suites[1], Seed: c.Seed + int64(n)}
		if !containsSeed(rapidFails, r.Seed) {
			if out, failed := replay(t, c.Root, r.Replay()); failed {
				t.Errorf("replay of passing rapid seed %d failed:\n%s", r.Seed, out)
			}
			break
		}
	}
}

func containsSeed(rs []Result, seed int64) bool {
	for _, r := range rs {
		if r.Seed == seed {
			return true
		}
	}
	return false
}

// Once the budget has passed no run starts, and the summary says so.
func TestCampaignBudget(t *testing.T) {
	c, _, _ := newFakeCampaign(t, 5)
	c.Budget = time.Nanosecond // over before Run looks at it (the clock counts nanoseconds)
	sum := c.Run(t.Context())
	if sum.Done != 0 || !sum.Budgeted {
		t.Errorf("Done = %d, Budgeted = %v; want 0, true", sum.Done, sum.Budgeted)
	}
}

// A run that outlives -timeout is killed and reported as a failure.
func TestCampaignKillsHungRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a process")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hang.test")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nsleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	c := &Campaign{Root: dir, Suites: []Suite{{Name: "hang", Pkg: "hang", Run: "."}}, Runs: 1, Jobs: 1,
		Timeout: time.Millisecond, Tail: 5, BinDir: dir, Log: &log}
	if err := os.Mkdir(filepath.Join(dir, "hang"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sum := c.Run(ctx)
	if len(sum.Failures) != 1 || !errors.Is(sum.Failures[0].Err, context.DeadlineExceeded) {
		t.Fatalf("failures = %+v; want one, killed at its deadline", sum.Failures)
	}
}

func TestReplayCommand(t *testing.T) {
	for _, tc := range []struct {
		s    Suite
		seed int64
		want string
	}{
		{Suite{Pkg: ".", Run: "^(TestEngine|TestRetry)"}, 7,
			`go test -race -count=1 . -run '^(TestEngine|TestRetry)' -shuffle=7`},
		{Suite{Pkg: "./internal/e2e", Run: "^TestX$", SeedEnv: []string{chaosSeedEnv}, Rapid: true}, 97000308,
			`STATESYNC_CHAOS_SEED=97000308 go test -race -count=1 ./internal/e2e -run '^TestX$' -shuffle=97000308 -rapid.seed=97000308 -rapid.nofailfile`},
		{Suite{Pkg: "./p", Run: "Test", SeedEnv: []string{chaosSeedEnv, crashSeedEnv}, Args: []string{"-test.short", "-rapid.checks=1"}}, 3,
			`STATESYNC_CHAOS_SEED=3 STATESYNC_CRASH_SEED=3 go test -race -count=1 ./p -run Test -shuffle=3 -short -rapid.checks=1`},
		{Suite{Pkg: "./p", Run: "it's"}, 1, `go test -race -count=1 ./p -run 'it'\''s' -shuffle=1`},
	} {
		if got := replayCommand(tc.s, tc.seed); got != tc.want {
			t.Errorf("replayCommand(%+v, %d) =\n  %s\nwant\n  %s", tc.s, tc.seed, got, tc.want)
		}
	}
}

func TestSelectSuites(t *testing.T) {
	all := defaultSuites()
	if got, err := selectSuites(all, "all"); err != nil || len(got) != len(all) {
		t.Errorf("selectSuites(all) = %d suites, %v; want %d, nil", len(got), err, len(all))
	}
	got, err := selectSuites(all, "e2e, engine")
	if err != nil || len(got) != 2 || got[0].Name != "e2e" || got[1].Name != "engine" {
		t.Errorf("selectSuites(\"e2e, engine\") = %+v, %v; want e2e, engine", got, err)
	}
	for _, bad := range []string{"nope", "e2e,", ",", "e2e,../../etc"} {
		if _, err := selectSuites(all, bad); !errors.Is(err, errNoSuite) {
			t.Errorf("selectSuites(%q) error = %v; want %v", bad, err, errNoSuite)
		}
	}
}

// Every default suite names a package of the module whose tests the -run
// pattern selects.
func TestDefaultSuitesExist(t *testing.T) {
	root, err := moduleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range defaultSuites() {
		files, _ := filepath.Glob(filepath.Join(root, s.Pkg, "*_test.go"))
		if len(files) == 0 {
			t.Errorf("suite %s: no test files in %s", s.Name, s.Pkg)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 10}
	tb.Write([]byte("0123456789"))
	tb.Write([]byte("abc"))
	if got, want := tb.String(), "(output cut)\n3456789abc"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	if got, want := lastLines("a\nb\nc\nd\n", 2), "c\nd"; got != want {
		t.Errorf("lastLines(…, 2) = %q; want %q", got, want)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-runs", "0"}, {"-j", "0"}, {"-suites", "nope"}, {"extra"}, {"-budget", "-1s"}} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d; want 2 (stderr %q)", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"-list"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "e2e") {
		t.Errorf("run(-list) = %d, %q; want 0 and the suites", code, stdout.String())
	}
}

// A campaign resumed with From runs From..Runs-1 only, with the seeds and
// suites a whole campaign would give them: fake-seed's failing seed 1004 is
// run 4's.
func TestCampaignFrom(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the fake suites")
	}
	c, _, _ := newFakeCampaign(t, 6)
	c.From = 3
	if err := c.Build(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum := c.Run(t.Context())
	if sum.Done != 3 || sum.Resume != 6 || sum.Interrupted != 0 {
		t.Errorf("Done, Resume, Interrupted = %d, %d, %d; want 3, 6, 0", sum.Done, sum.Resume, sum.Interrupted)
	}
	var seeds []int64
	for _, f := range sum.Failures {
		if f.Suite.Name == "fake-seed" {
			seeds = append(seeds, f.Seed)
		}
		if f.N < 3 {
			t.Errorf("run %d ran; want runs 3 to 5", f.N)
		}
	}
	if !slices.Equal(seeds, []int64{1004}) {
		t.Errorf("fake-seed failed for seeds %v; want [1004] (run 4)", seeds)
	}
}

// Runs killed because the campaign was stopped are neither passed nor
// failed: counted apart, and the campaign resumes from the first of them.
func TestCampaignInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a process")
	}
	dir := t.TempDir()
	// Each run says it started (a file in the suite's directory), then hangs.
	if err := os.WriteFile(filepath.Join(dir, "hang.test"), []byte("#!/bin/sh\ntouch started.$$\nsleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "hang"), 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	c := &Campaign{Root: dir, Suites: []Suite{{Name: "hang", Pkg: "hang", Run: "."}}, Runs: 2, Jobs: 2,
		Timeout: time.Minute, Tail: 5, BinDir: dir, Log: &log}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { // stop the campaign once both runs are under way
		defer cancel()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if m, _ := filepath.Glob(filepath.Join(dir, "hang", "started.*")); len(m) == 2 {
				return
			}
		}
	}()
	sum := c.Run(ctx)
	if len(sum.Failures) != 0 || sum.Done != 0 || sum.Interrupted != 2 || sum.Resume != 0 {
		t.Errorf("failures %d, Done %d, Interrupted %d, Resume %d; want 0, 0, 2, 0", len(sum.Failures), sum.Done, sum.Interrupted, sum.Resume)
	}
	var out bytes.Buffer
	c.printSummary(&out, sum, 0)
	if !strings.Contains(out.String(), "2 runs under way killed (not counted)") || !strings.Contains(out.String(), "-from 0") {
		t.Errorf("summary %q; want the killed runs and -from 0", out.String())
	}
}
