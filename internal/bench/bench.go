// Package bench holds the in-process benchmark scenarios of the project's
// bench/scenarios.md, run by `statesync bench` and by this package's
// `go test -bench` benchmarks.
//
// # Model
//
// The in-process scenarios use one topic, a [memsync.Bus] delivering each
// invalidation synchronously to every subscribed [statesync.Consumer], a
// provider that returns the current snapshot {revision, data:{"v":rev}}
// (its data encoded once per revision, as a [statesync.Source] does) and an
// applier that only records what it is given. Each scenario is a function
// returning a result whose JSON form is the scenario's line of output, with
// the field names of scenarios.md plus "name" (and "refresh" for the
// scenarios run in both refresh modes: cycle_sequential and fanout).
//
// The SSE scenarios (sse_fanout, sse_reconnect_herd) go over loopback TCP
// instead: an httpsync server in a process of its own and one
// httpsync.Client per consumer (see sse.go).
//
// Scenarios report; they never fail on a time. They return an error only
// when they could not run (ctx ended, a consumer did not start) or when the
// engine broke the scenario's premise (a fan-out that did not converge).
// Figures that the engine must meet (provider_calls of the gate scenario,
// for one) are reported as measured, and checked by this package's tests.
//
// # The TypeScript engine on the same workloads
//
// ts/bench.mjs runs gate_stale_events, cycle_sequential and fanout on the
// TypeScript engine, with the same bus, provider and applier and the same
// JSON lines (plus "engine":"typescript"), so the two engines can be
// compared in one run, alternated, on one machine. It bundles nothing: it is
// given the directory of an @statesync/core build:
//
//	node internal/bench/ts/bench.mjs PATH/TO/statesync-core [NAME…] [-n SIZES]
//
// SIZES is as in `statesync bench -n`. Its tests run it on a stand-in engine
// of the same API shape (ts_test.go), which reproduces the TypeScript
// engine's fetch counts in fanout (2 per 10 updates per consumer).
//
// # Caveats
//
// The scenarios measure wall time on a shared machine: quote medians of
// several runs (the -runs flag of `statesync bench`).
package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// A Result is the outcome of one run of a scenario. It marshals to the
// scenario's JSON line.
type Result interface {
	// rank is the figure by which runs are ordered to pick the median.
	rank() float64
}

// A Scenario is one benchmark workload at a given size.
type Scenario struct {
	// Name is the scenario's name in scenarios.md. Several scenarios may
	// share a name (fanout runs at two sizes).
	Name string
	// Run runs the scenario once.
	Run func(ctx context.Context) (Result, error)
}

// The scenario names.
const (
	NameGateStaleEvents = "gate_stale_events"
	NameCycleSequential = "cycle_sequential"
	NameBurstCoalescing = "burst_coalescing"
	NameFanout          = "fanout"
)

// Scenarios returns every scenario at the sizes of s, in the order of
// scenarios.md.
//
// To add a scenario, write its function and append it here; [Select] and
// `statesync bench` pick it up by name.
func Scenarios(s Sizes) []Scenario {
	out := []Scenario{
		{NameGateStaleEvents, func(ctx context.Context) (Result, error) { return GateStaleEvents(ctx, s.GateEvents) }},
	}
	for _, inline := range []bool{false, true} {
		out = append(out, Scenario{NameCycleSequential, func(ctx context.Context) (Result, error) {
			return CycleSequential(ctx, s.Cycles, inline)
		}})
	}
	out = append(out, Scenario{NameBurstCoalescing, func(ctx context.Context) (Result, error) { return BurstCoalescing(ctx, s.BurstEvents) }})
	for _, f := range s.Fanout {
		for _, inline := range []bool{false, true} {
			out = append(out, Scenario{NameFanout, func(ctx context.Context) (Result, error) {
				return Fanout(ctx, f.Windows, f.Updates, inline)
			}})
		}
	}
	return append(out, sseScenarios(s.SSE)...)
}

// Select returns the scenarios of all whose names are in names, in the
// order of all; no names selects all of them. A name that matches no
// scenario is an error that lists the known names.
func Select(all []Scenario, names []string) ([]Scenario, error) {
	if len(names) == 0 {
		return all, nil
	}
	var known []string
	for _, s := range all {
		if !slices.Contains(known, s.Name) {
			known = append(known, s.Name)
		}
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	var out []Scenario
	for _, s := range all {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Median returns the median of rs by each scenario's main figure (time per
// operation, or milliseconds); with an even count, the lower of the two
// middle runs. rs must not be empty and must hold results of one scenario.
func Median(rs []Result) Result {
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b Result) int {
		switch x, y := a.rank(), b.rank(); {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return sorted[(len(sorted)-1)/2]
}
