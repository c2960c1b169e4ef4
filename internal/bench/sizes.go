package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Sizes are the workload sizes of the scenarios.
type Sizes struct {
	// GateEvents is the number of stale invalidations of gate_stale_events.
	GateEvents int
	// Cycles is the number of bump-deliver-apply cycles of cycle_sequential.
	Cycles int
	// BurstEvents is the number of invalidations of burst_coalescing (at
	// least 2: one to start the blocked fetch, the rest to queue behind it).
	BurstEvents int
	// Fanout lists the fan-out runs.
	Fanout []FanoutSize
	// SSE holds the sizes of the SSE scenarios.
	SSE SSESizes
}

// A FanoutSize is the size of one fan-out run.
type FanoutSize struct {
	Windows int // handles on the topic
	Updates int // invalidations delivered
}

func (f FanoutSize) String() string { return fmt.Sprintf("%dx%d", f.Windows, f.Updates) }

// DefaultSizes returns the sizes of scenarios.md.
func DefaultSizes() Sizes {
	return Sizes{
		GateEvents:  1_000_000,
		Cycles:      200_000,
		BurstEvents: 1_000,
		Fanout:      []FanoutSize{{1000, 1000}, {10000, 100}},
		SSE:         DefaultSSESizes(),
	}
}

// Scale returns s with every size multiplied by f, each at least 1 (2 for
// BurstEvents).
func (s Sizes) Scale(f float64) Sizes {
	sc := func(n, min int) int { return max(min, int(math.Round(float64(n)*f))) }
	out := Sizes{
		GateEvents:  sc(s.GateEvents, 1),
		Cycles:      sc(s.Cycles, 1),
		BurstEvents: sc(s.BurstEvents, 2),
		SSE:         s.SSE.Scale(f),
	}
	for _, fs := range s.Fanout {
		out.Fanout = append(out.Fanout, FanoutSize{sc(fs.Windows, 1), sc(fs.Updates, 1)})
	}
	return out
}

// ParseSizes parses the -n flag of `statesync bench`: empty for the
// default sizes; a positive number that scales them all ("0.01"); or a
// comma-separated list of name=size that sets some of them and keeps the
// others, where the size of fanout is WINDOWSxUPDATES, that of sse_fanout
// CONSUMERSxWRITES (both may be repeated) and that of sse_reconnect_herd
// CONSUMERS ("cycle_sequential=5000,fanout=100x100,fanout=1000x10").
func ParseSizes(arg string) (Sizes, error) {
	s := DefaultSizes()
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return s, nil
	}
	if !strings.Contains(arg, "=") {
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return Sizes{}, fmt.Errorf("bad size %q: want a positive scale factor or name=size pairs", arg)
		}
		return s.Scale(f), nil
	}
	fanoutSet, sseFanoutSet := false, false
	for _, kv := range strings.Split(arg, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return Sizes{}, fmt.Errorf("bad size %q: want name=size", kv)
		}
		var err error
		switch name {
		case NameGateStaleEvents:
			s.GateEvents, err = parseCount(val, 1)
		case NameCycleSequential:
			s.Cycles, err = parseCount(val, 1)
		case NameBurstCoalescing:
			s.BurstEvents, err = parseCount(val, 2)
		case NameFanout:
			var f FanoutSize
			w, u, ok := strings.Cut(val, "x")
			if !ok {
				err = fmt.Errorf("%q is not WINDOWSxUPDATES", val)
				break
			}
			if f.Windows, err = parseCount(w, 1); err != nil {
				break
			}
			if f.Updates, err = parseCount(u, 1); err != nil {
				break
			}
			if !fanoutSet {
				s.Fanout, fanoutSet = nil, true
			}
			s.Fanout = append(s.Fanout, f)
		case NameSSEFanout, NameSSEReconnectHerd:
			err = s.SSE.set(name, val, &sseFanoutSet)
		default:
			return Sizes{}, fmt.Errorf("bad size %q: unknown scenario %q", kv, name)
		}
		if err != nil {
			return Sizes{}, fmt.Errorf("bad size %q: %w", kv, err)
		}
	}
	return s, nil
}

func parseCount(s string, min int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		return 0, fmt.Errorf("%q is not an integer ≥ %d", s, min)
	}
	return n, nil
}
