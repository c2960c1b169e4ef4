package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/statesync-go/statesync/internal/bench"
)

// The scenarios are linked into the daemon binary on purpose: `go run
// ./cmd/statesync bench` needs no build tag or second command, and the SSE
// scenarios start this same executable as their server process. They add
// about 0.7 MB (4%) to the binary, no module, and no work at start-up.

// runBench runs `statesync bench [flags] [NAME…]`: the named scenarios (all
// of them without names), each -runs times, printing the median run of
// each as one JSON line on Stdout.
func (m *Main) runBench(ctx context.Context, args []string) error {
	fs := m.newFlagSet("bench", "[-n SIZE] [-runs N] [NAME...]\n\n"+
		"Runs the benchmark scenarios (in-process, and over loopback HTTP for sse_*) and prints one JSON object per line.\n"+
		"NAME is one of gate_stale_events, cycle_sequential, burst_coalescing, fanout, sse_fanout, sse_reconnect_herd;\n"+
		"without NAME, all of them run.")
	size := fs.String("n", "", "sizes: a scale factor of the default sizes (0.01), or\n"+
		"name=size pairs, fanout as WINDOWSxUPDATES and repeatable,\n"+
		"sse_fanout=CONSUMERSxWRITES[/h2] (repeatable; /h2: pull mode over HTTP/2 only),\n"+
		"sse_reconnect_herd=CONSUMERS\n"+
		"(cycle_sequential=5000,fanout=100x100,fanout=1000x10)")
	runs := fs.Int("runs", 1, "runs of each scenario; with more than one, the median run is printed")
	names, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *runs < 1 {
		fmt.Fprintf(m.Stderr, "statesync bench: -runs %d: want at least 1\n", *runs)
		return errUsage
	}
	sizes, err := bench.ParseSizes(*size)
	if err != nil {
		fmt.Fprintf(m.Stderr, "statesync bench: -n: %v\n", err)
		return errUsage
	}
	scenarios, err := bench.Select(bench.Scenarios(sizes), names)
	if err != nil {
		fmt.Fprintf(m.Stderr, "statesync bench: %v\n", err)
		return errUsage
	}

	enc := json.NewEncoder(m.Stdout)
	for _, s := range scenarios {
		results := make([]bench.Result, 0, *runs)
		for range *runs {
			r, err := s.Run(ctx)
			if err != nil {
				return fmt.Errorf("bench %s: %w", s.Name, err)
			}
			results = append(results, r)
		}
		if err := enc.Encode(bench.Median(results)); err != nil {
			return err
		}
	}
	return nil
}
