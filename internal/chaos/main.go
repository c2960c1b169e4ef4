// Command chaos runs the module's property and chaos suites many times
// under the race detector, each run with its own seed, and prints every
// failure with the command that replays it.
//
//	go run ./internal/chaos -runs 10000 -budget 40m
//
// It builds each suite's test binary once (go test -race -c), then runs
// the suites in turn over seeds -seed, -seed+1, …, -j at a time, until
// -runs runs are done or -budget has passed (runs under way then finish).
// A run is one invocation of one suite's test binary with one seed, used
// as the value of the suite's seed variables (STATESYNC_CHAOS_SEED,
// STATESYNC_CRASH_SEED), as -test.shuffle and, for suites that use rapid,
// as -rapid.seed. A failure is printed, and written to -report, with its
// suite, seed, replay command and the tail of its output. The seeds fix
// every random choice the tests make, not the goroutine schedule: a
// failure that depends on a race may need its replay command run with a
// higher -count.
//
// The exit status is 0 if every run passed, 1 if one failed, 2 if the
// campaign could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 100, "number of runs")
	budget := fs.Duration("budget", 10*time.Minute, "no run starts after this much time (0: no limit)")
	jobs := fs.Int("j", runtime.GOMAXPROCS(0), "runs at a time")
	seed := fs.Int64("seed", 0, "seed of run 0 (0: from the clock); run n has seed+n")
	from := fs.Int("from", 0, "first run: resume a campaign stopped after its first N runs with -from N and the same -seed and -runs")
	suites := fs.String("suites", "all", "comma-separated suites to run (see -list)")
	list := fs.Bool("list", false, "list the suites and exit")
	timeout := fs.Duration("timeout", 10*time.Minute, "limit of one run")
	report := fs.String("report", "chaos-report.txt", "file the summary and failures are written to (\"\": none)")
	tail := fs.Int("tail", 80, "lines of a failed run's output to print")
	bindir := fs.String("bindir", "", "directory for the test binaries (default: a temporary one, removed afterwards)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *list {
		for _, s := range defaultSuites() {
			fmt.Fprintf(stdout, "%-12s %s -run %s%s\n", s.Name, s.Pkg, s.Run, seedNote(s))
		}
		return 0
	}
	sel, err := selectSuites(defaultSuites(), *suites)
	if err != nil {
		fmt.Fprintf(stderr, "chaos: -suites: %v\n", err)
		return 2
	}
	if *runs < 1 || *jobs < 1 || *tail < 1 || *budget < 0 || *timeout < 0 || *from < 0 || *from >= *runs {
		fmt.Fprintln(stderr, "chaos: -runs, -j and -tail must be positive, -budget and -timeout not negative, -from in [0, -runs)")
		return 2
	}
	if *seed == 0 {
		*seed = time.Now().UnixNano() % 1e9 * 1000 // leaves room for the runs' offsets
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	c := &Campaign{Root: root, Suites: sel, Runs: *runs, From: *from, Budget: *budget, Jobs: *jobs, Seed: *seed,
		Timeout: *timeout, Tail: *tail, BinDir: *bindir, Log: stdout}
	if c.BinDir == "" {
		dir, err := os.MkdirTemp("", "statesync-chaos-")
		if err != nil {
			fmt.Fprintf(stderr, "chaos: %v\n", err)
			return 2
		}
		defer os.RemoveAll(dir)
		c.BinDir = dir
	}
	var rep *os.File
	if *report != "" {
		if rep, err = os.Create(*report); err != nil {
			fmt.Fprintf(stderr, "chaos: %v\n", err)
			return 2
		}
		defer rep.Close()
		c.Report = rep
	}
	return c.main(ctx, stderr)
}

// main builds, runs and reports; it returns the exit status.
func (c *Campaign) main(ctx context.Context, stderr io.Writer) int {
	names := make([]string, len(c.Suites))
	for i, s := range c.Suites {
		names[i] = s.Name
	}
	header := fmt.Sprintf("chaos campaign: runs %d..%d of %s, seeds %d..%d, -j %d, budget %s, GOMAXPROCS %d",
		c.From, c.Runs-1, strings.Join(names, ","), c.Seed+int64(c.From), c.Seed+int64(c.Runs)-1, c.Jobs, c.Budget, runtime.GOMAXPROCS(0))
	fmt.Fprintln(c.Log, header)
	if c.Report != nil {
		fmt.Fprintln(c.Report, header)
	}
	buildStart := time.Now()
	if err := c.Build(ctx); err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	buildTime := time.Since(buildStart)
	sum := c.Run(ctx)
	for _, w := range []io.Writer{c.Log, c.Report} {
		if w != nil {
			c.printSummary(w, sum, buildTime)
		}
	}
	switch {
	case len(sum.Failures) > 0:
		return 1
	case ctx.Err() != nil || sum.Done == 0:
		fmt.Fprintln(stderr, "chaos: interrupted")
		return 2
	}
	return 0
}

func (c *Campaign) printSummary(w io.Writer, sum *Summary, build time.Duration) {
	fmt.Fprintf(w, "\n%d of %d runs in %s (+%s building), %.1f runs/min, %d failed",
		sum.Done, sum.Planned-c.From, sum.Elapsed.Round(time.Second), build.Round(time.Second), sum.RunsPerMinute(), len(sum.Failures))
	if sum.Budgeted {
		fmt.Fprintf(w, "; the budget of %s ran out", c.Budget)
	}
	if sum.Interrupted > 0 {
		fmt.Fprintf(w, "; stopped, %d runs under way killed (not counted)", sum.Interrupted)
	}
	if sum.Resume < c.Runs {
		fmt.Fprintf(w, "; to resume, with the same -seed and -runs: -from %d", sum.Resume)
	}
	fmt.Fprintln(w)
	for _, s := range c.Suites {
		st := sum.BySuite[s.Name]
		avg := time.Duration(0)
		if st.Runs > 0 {
			avg = st.Time / time.Duration(st.Runs)
		}
		fmt.Fprintf(w, "  %-12s %5d runs %4d failed  %s a run\n", s.Name, st.Runs, st.Failures, avg.Round(10*time.Millisecond))
	}
	if len(sum.Failures) > 0 {
		fmt.Fprintln(w, "replay commands (from the module root):")
		fails := slices.Clone(sum.Failures)
		slices.SortFunc(fails, func(a, b Result) int { return a.N - b.N })
		for _, f := range fails {
			fmt.Fprintf(w, "  %s\n", f.Replay())
		}
	}
}

func seedNote(s Suite) string {
	var seeds []string
	seeds = append(seeds, s.SeedEnv...)
	seeds = append(seeds, "-test.shuffle")
	if s.Rapid {
		seeds = append(seeds, "-rapid.seed")
	}
	return " (seeds: " + strings.Join(seeds, ", ") + ")"
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: run it from the statesync module")
	}
	return strings.TrimSuffix(gomod, string(os.PathSeparator)+"go.mod"), nil
}
