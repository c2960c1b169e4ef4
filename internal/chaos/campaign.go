package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Campaign runs its suites over seeds Seed, Seed+1, … in parallel, one
// run per seed, dealt to the suites in turn, until Runs runs are done or
// Budget has passed.
type Campaign struct {
	Root    string        // module root: packages are relative to it
	Suites  []Suite       // at least one
	Runs    int           // runs to do: runs From to Runs-1
	From    int           // the first run (a campaign resumed from run From)
	Budget  time.Duration // no run starts after this much time
	Jobs    int           // runs at a time
	Seed    int64         // seed of run 0
	Timeout time.Duration // limit of one run (passed as -test.timeout too)
	Tail    int           // lines of output kept for a failure
	BinDir  string        // where the test binaries are built
	Log     io.Writer     // progress and failures
	Report  io.Writer     // failures, with their replay command; may be nil
}

// A Result is the outcome of one run.
type Result struct {
	N        int // run number
	Suite    Suite
	Seed     int64
	Duration time.Duration
	Err      error  // nil: passed
	Tail     string // last lines of the output, for a failure
	// Interrupted says the campaign itself was stopped (SIGINT, SIGTERM)
	// while the run was under way, which killed it: it neither passed nor
	// failed, and is not counted.
	Interrupted bool
}

// Failed reports whether the run failed.
func (r *Result) Failed() bool { return r.Err != nil && !r.Interrupted }

// Replay returns the shell command that reruns r's tests with r's seeds,
// from the module root.
func (r *Result) Replay() string { return replayCommand(r.Suite, r.Seed) }

// A Summary is what a campaign did.
type Summary struct {
	Planned  int
	Done     int
	Failures []Result
	Elapsed  time.Duration
	BySuite  map[string]*SuiteStats
	Budgeted bool // the budget ran out before every planned run started
	// Interrupted counts the runs killed because the campaign was
	// stopped; they are not in Done.
	Interrupted int
	// Resume is the first run not done (Planned if all were): a campaign
	// that stopped early goes on with -from Resume.
	Resume int
}

// SuiteStats counts one suite's runs.
type SuiteStats struct {
	Runs, Failures int
	Time           time.Duration // summed over its runs
}

// RunsPerMinute is the campaign's throughput.
func (s *Summary) RunsPerMinute() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Done) / s.Elapsed.Minutes()
}

// binary returns the path of the test binary of pkg.
func (c *Campaign) binary(pkg string) string {
	name := strings.Trim(strings.ReplaceAll(filepath.ToSlash(filepath.Clean(pkg)), "/", "_"), "._")
	if name == "" {
		name = "root"
	}
	return filepath.Join(c.BinDir, name+".test")
}

// Build compiles the test binary of every suite's package once, with -race.
func (c *Campaign) Build(ctx context.Context) error {
	var done []string
	for _, s := range c.Suites {
		if slices.Contains(done, s.Pkg) {
			continue
		}
		done = append(done, s.Pkg)
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "test", "-race", "-c", "-o", c.binary(s.Pkg), s.Pkg)
		cmd.Dir = c.Root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go test -race -c %s: %w\n%s", s.Pkg, err, out)
		}
		fmt.Fprintf(c.Log, "built %s (%s)\n", s.Pkg, time.Since(start).Round(time.Second))
	}
	return nil
}

// Run runs the campaign (after Build) and returns its summary.
func (c *Campaign) Run(ctx context.Context) *Summary {
	start := time.Now()
	sum := &Summary{Planned: c.Runs, BySuite: map[string]*SuiteStats{}}
	for _, s := range c.Suites {
		sum.BySuite[s.Name] = &SuiteStats{}
	}
	jobs := make(chan int)
	results := make(chan Result)
	var wg sync.WaitGroup
	for range max(c.Jobs, 1) {
		wg.Go(func() {
			for n := range jobs {
				results <- c.runOne(ctx, n)
			}
		})
	}
	go func() {
		defer close(jobs)
		deadline := start.Add(c.Budget)
		for n := c.From; n < c.Runs; n++ {
			if c.Budget > 0 && !time.Now().Before(deadline) || ctx.Err() != nil {
				sum.Budgeted = true
				return
			}
			select {
			case jobs <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	lastReport := time.Now()
	done := make([]bool, c.Runs-c.From)
	sum.Resume = c.From
	for r := range results {
		if r.Interrupted {
			sum.Interrupted++
			continue
		}
		done[r.N-c.From] = true
		for sum.Resume < c.Runs && done[sum.Resume-c.From] {
			sum.Resume++
		}
		sum.Done++
		st := sum.BySuite[r.Suite.Name]
		st.Runs++
		st.Time += r.Duration
		if r.Failed() {
			st.Failures++
			sum.Failures = append(sum.Failures, r)
			c.printFailure(c.Log, &r)
			if c.Report != nil {
				c.printFailure(c.Report, &r)
			}
		}
		if time.Since(lastReport) >= 30*time.Second {
			lastReport = time.Now()
			el := time.Since(start)
			fmt.Fprintf(c.Log, "%d/%d runs, %d failed, %s, %.1f runs/min\n",
				sum.Done, c.Runs-c.From, len(sum.Failures), el.Round(time.Second), float64(sum.Done)/el.Minutes())
		}
	}
	sum.Elapsed = time.Since(start)
	return sum
}

// args returns the test binary's arguments for a run of s with seed.
func (c *Campaign) args(s Suite, seed int64) []string {
	a := []string{"-test.count=1", "-test.run=" + s.Run, "-test.shuffle=" + strconv.FormatInt(seed, 10)}
	if c.Timeout > 0 {
		a = append(a, "-test.timeout="+c.Timeout.String())
	}
	if s.Rapid {
		// Without -rapid.nofailfile a failure would leave a file under the
		// package's testdata that rapid replays first in every later run.
		a = append(a, "-rapid.seed="+strconv.FormatUint(uint64(seed), 10), "-rapid.nofailfile")
	}
	return append(a, s.Args...)
}

func seedEnv(s Suite, seed int64) []string {
	var env []string
	for _, v := range s.SeedEnv {
		env = append(env, v+"="+strconv.FormatInt(seed, 10))
	}
	return env
}

// runOne runs run n.
func (c *Campaign) runOne(ctx context.Context, n int) Result {
	s := c.Suites[n%len(c.Suites)]
	seed := c.Seed + int64(n)
	r := Result{N: n, Suite: s, Seed: seed}
	campaign := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		// A little more than -test.timeout, which then reports the hung test.
		ctx, cancel = context.WithTimeout(ctx, c.Timeout+min(c.Timeout/4, 30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.binary(s.Pkg), c.args(s, seed)...)
	cmd.Dir = filepath.Join(c.Root, s.Pkg)
	cmd.Env = append(os.Environ(), seedEnv(s, seed)...)
	out := &tailBuffer{max: 256 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	ownProcessGroup(cmd)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	r.Duration = time.Since(start)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (killed: %w)", err, ctx.Err())
		}
		r.Err = err
		r.Tail = lastLines(out.String(), c.Tail)
		r.Interrupted = campaign.Err() != nil
	}
	return r
}

func (c *Campaign) printFailure(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n--- FAIL run %d: suite %s, seed %d, %s: %v\n", r.N, r.Suite.Name, r.Seed, r.Duration.Round(time.Millisecond), r.Err)
	fmt.Fprintf(w, "replay (from the module root):\n  %s\n", r.Replay())
	fmt.Fprintf(w, "last %d lines of output:\n%s\n", c.Tail, indent(r.Tail))
}

// replayCommand is the go test command that reruns a run of s with seed.
func replayCommand(s Suite, seed int64) string {
	var b strings.Builder
	for _, e := range seedEnv(s, seed) {
		b.WriteString(e + " ")
	}
	fmt.Fprintf(&b, "go test -race -count=1 %s -run %s -shuffle=%d", s.Pkg, shellQuote(s.Run), seed)
	if s.Rapid {
		fmt.Fprintf(&b, " -rapid.seed=%d -rapid.nofailfile", uint64(seed))
	}
	for _, a := range s.Args {
		b.WriteString(" " + shellQuote(strings.Replace(a, "-test.", "-", 1)))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return "(output cut)\n" + t.buf.String()
	}
	return t.buf.String()
}

// errNoSuite is returned by selectSuites for a name that is no suite.
var errNoSuite = errors.New("no such suite")

// selectSuites returns the suites named in the comma-separated list names
// ("" or "all": all of them).
func selectSuites(all []Suite, names string) ([]Suite, error) {
	if names == "" || names == "all" {
		return all, nil
	}
	var out []Suite
	for name := range strings.SplitSeq(names, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(s Suite) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("%w %q", errNoSuite, name)
		}
		out = append(out, all[i])
	}
	return out, nil
}
