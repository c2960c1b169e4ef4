package bench

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

// Tests: each scenario at a small size, with the invariants it must show.

// B-GATE-01: stale invalidations never reach the provider.
func TestGateStaleEventsMakesNoProviderCall(t *testing.T) {
	r, err := GateStaleEvents(t.Context(), 10_000)
	if err != nil {
		t.Fatalf("GateStaleEvents: %v", err)
	}
	if r.ProviderCalls != 0 {
		t.Errorf("GateStaleEvents(10000).ProviderCalls = %d; want 0", r.ProviderCalls)
	}
	if r.Name != NameGateStaleEvents || !(r.NsPerOp > 0) {
		t.Errorf("GateStaleEvents(10000) = %+v; want name %q and a positive ns_per_op", r, NameGateStaleEvents)
	}
}

// The drop path of Consumer.Invalidate, reached through the bus, does not
// allocate (its documentation says so; the gate figure relies on it).
// B-GATE-01.
func TestGateStaleEventsDoesNotAllocate(t *testing.T) {
	s, err := newSingle(t.Context(), 5, false)
	if err != nil {
		t.Fatalf("newSingle: %v", err)
	}
	defer s.close()
	stale := statesync.Invalidation{Topic: topic, Revision: 3}
	if got := testing.AllocsPerRun(1000, func() { s.bus.Publish(stale) }); got != 0 {
		t.Errorf("AllocsPerRun(Publish(stale)) = %v; want 0", got)
	}
}

// B-GATE-05, B-GATE-06: each cycle applies its revision exactly once, in
// both refresh modes.
func TestCycleSequentialAppliesEachRevision(t *testing.T) {
	const n = 2_000
	for _, inline := range []bool{false, true} {
		r, err := CycleSequential(t.Context(), n, inline)
		if err != nil {
			t.Fatalf("CycleSequential(inline=%v): %v", inline, err)
		}
		if r.Applied != n {
			t.Errorf("CycleSequential(%d, %v).Applied = %d; want %d", n, inline, r.Applied, n)
		}
		if r.Name != NameCycleSequential || r.Refresh != refreshMode(inline) || !(r.NsPerOp > 0) || !(r.AllocsPerOp > 0) {
			t.Errorf("CycleSequential(%d, %v) = %+v; want name %q, refresh %q, positive ns_per_op and allocs_per_op",
				n, inline, r, NameCycleSequential, refreshMode(inline))
		}
	}
}

// A cycle whose apply never comes ends when its context does: the waiter
// sleeps on a plain receive, and the end of the context wakes it.
func TestCycleSequentialEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := newSingle(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	s.prov.blocked.Store(true) // the refresh's fetch waits until Stop
	errc := make(chan error, 1)
	go func() { errc <- s.cycles(ctx, 2, 1) }()
	<-s.prov.entered
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cycles with the apply blocked, then ctx cancelled = %v; want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("cycles still waits a minute after its context ended")
	}
}

// B-COAL-02, B-COAL-07: a burst during a blocked fetch collapses into one
// queued refresh.
func TestBurstCoalescingMakesTwoCalls(t *testing.T) {
	for _, n := range []int{2, 10, 1_000} {
		r, err := BurstCoalescing(t.Context(), n)
		if err != nil {
			t.Fatalf("BurstCoalescing(%d): %v", n, err)
		}
		want := BurstResult{Name: NameBurstCoalescing, ProviderCalls: 2, Final: statesync.Revision(n + 1)}
		if r != want {
			t.Errorf("BurstCoalescing(%d) = %+v; want %+v", n, r, want)
		}
	}
}

// The burst result carries the final revision in its canonical string form.
func TestBurstResultJSON(t *testing.T) {
	b, err := json.Marshal(BurstResult{Name: NameBurstCoalescing, ProviderCalls: 2, Final: 1001})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"burst_coalescing","provider_calls":2,"final":"1001"}`; string(b) != want {
		t.Errorf("Marshal(BurstResult) = %s; want %s", b, want)
	}
}

// Every handle converges on the final revision (B-E2E-25 at scale), and
// coalescing (B-COAL-02) and shared fetches (the provider is a
// statesync.SharedProvider) keep the fetches between 1 and one per handle
// per update; inline, the first handle a delivery reaches fetches and the
// others take its snapshot, so there is exactly one fetch per update.
func TestFanoutConverges(t *testing.T) {
	for _, size := range []FanoutSize{{50, 40}, {300, 5}, {1, 1}} {
		for _, inline := range []bool{false, true} {
			t.Run(size.String()+"/"+refreshMode(inline), func(t *testing.T) { testFanoutConverges(t, size, inline) })
		}
	}
}

func testFanoutConverges(t *testing.T, size FanoutSize, inline bool) {
	ctx := t.Context()
	f, err := newFanout(ctx, size.Windows, size.Updates, inline)
	if err != nil {
		t.Fatalf("newFanout: %v", err)
	}
	defer f.close()
	if _, err := f.deliver(ctx); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	if err := f.settle(ctx); err != nil {
		t.Fatalf("settle: %v", err)
	}
	for i, a := range f.apps {
		if got := statesync.Revision(a.last.Load()); got != f.final {
			t.Errorf("handle %d: last applied = %d; want %d", i, got, f.final)
		}
	}
	if got := f.remaining.Load(); got != 0 {
		t.Errorf("handles yet to apply the final revision = %d; want 0", got)
	}
	fetches := f.prov.calls.Load()
	lo, hi := int64(1), int64(size.Windows*size.Updates)
	if inline {
		lo, hi = int64(size.Updates), int64(size.Updates)
	}
	if fetches < lo || fetches > hi {
		t.Errorf("fetches = %d; want between %d and %d", fetches, lo, hi)
	}
}

func TestFanoutResult(t *testing.T) {
	r, err := Fanout(t.Context(), 20, 30, true)
	if err != nil {
		t.Fatalf("Fanout(20, 30): %v", err)
	}
	if r.Name != NameFanout || r.Refresh != RefreshInline || r.Windows != 20 || r.Updates != 30 || !(r.Ms > 0) ||
		r.FetchesPerWindow != float64(r.Fetches)/20 {
		t.Errorf("Fanout(20, 30) = %+v; want name fanout, 20 windows, 30 updates, ms > 0, fetches_per_window = fetches/20", r)
	}
}

// The JSON lines have exactly the field names of scenarios.md, plus name
// (and refresh where a scenario runs in both refresh modes).
func TestResultFieldNames(t *testing.T) {
	tests := []struct {
		r    Result
		want []string
	}{
		{GateResult{}, []string{"name", "ns_per_op", "allocs_per_op", "provider_calls"}},
		{CycleResult{}, []string{"name", "refresh", "ns_per_op", "allocs_per_op", "applied"}},
		{BurstResult{}, []string{"name", "provider_calls", "final"}},
		{FanoutResult{}, []string{"name", "refresh", "windows", "updates", "ms", "fetches", "fetches_per_window"}},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(maps.Keys(m))
		want := slices.Sorted(slices.Values(tt.want))
		if !slices.Equal(got, want) {
			t.Errorf("fields of %T = %v; want %v", tt.r, got, want)
		}
	}
}

func TestParseSizes(t *testing.T) {
	def := DefaultSizes()
	tests := []struct {
		arg  string
		want Sizes
	}{
		{"", def},
		{"1", def},
		{"0.01", Sizes{GateEvents: 10_000, Cycles: 2_000, BurstEvents: 10, Fanout: []FanoutSize{{10, 10}, {100, 1}}}},
		{"0.0000001", Sizes{GateEvents: 1, Cycles: 1, BurstEvents: 2, Fanout: []FanoutSize{{1, 1}, {1, 1}}}},
		{"cycle_sequential=5", Sizes{GateEvents: def.GateEvents, Cycles: 5, BurstEvents: def.BurstEvents, Fanout: def.Fanout}},
		{"gate_stale_events=7, burst_coalescing=3,fanout=10x2,fanout=3x4", Sizes{GateEvents: 7, Cycles: def.Cycles, BurstEvents: 3, Fanout: []FanoutSize{{10, 2}, {3, 4}}}},
	}
	for _, tt := range tests {
		got, err := ParseSizes(tt.arg)
		if err != nil {
			t.Errorf("ParseSizes(%q): %v", tt.arg, err)
			continue
		}
		if !sizesEqual(got, tt.want) {
			t.Errorf("ParseSizes(%q) = %+v; want %+v", tt.arg, got, tt.want)
		}
	}
}

func TestParseSizesErrors(t *testing.T) {
	for _, arg := range []string{"0", "-1", "x", "NaN", "+Inf", "fanout=10", "fanout=0x5", "fanout=5x", "burst_coalescing=1", "cycle_sequential=0", "nope=3", "cycle_sequential"} {
		if got, err := ParseSizes(arg); err == nil {
			t.Errorf("ParseSizes(%q) = %+v; want an error", arg, got)
		}
	}
}

func sizesEqual(a, b Sizes) bool {
	return a.GateEvents == b.GateEvents && a.Cycles == b.Cycles && a.BurstEvents == b.BurstEvents &&
		slices.Equal(a.Fanout, b.Fanout)
}

func TestSelect(t *testing.T) {
	all := Scenarios(DefaultSizes())
	names := func(ss []Scenario) string {
		var n []string
		for _, s := range ss {
			n = append(n, s.Name)
		}
		return strings.Join(n, " ")
	}
	tests := []struct {
		names []string
		want  string
	}{
		{nil, "gate_stale_events cycle_sequential cycle_sequential burst_coalescing fanout fanout fanout fanout sse_fanout sse_fanout sse_fanout sse_fanout sse_fanout sse_fanout sse_reconnect_herd"},
		{[]string{"fanout"}, "fanout fanout fanout fanout"},
		{[]string{"fanout", "gate_stale_events", "fanout"}, "gate_stale_events fanout fanout fanout fanout"},
		{[]string{"burst_coalescing"}, "burst_coalescing"},
	}
	for _, tt := range tests {
		got, err := Select(all, tt.names)
		if err != nil {
			t.Errorf("Select(%q): %v", tt.names, err)
			continue
		}
		if names(got) != tt.want {
			t.Errorf("Select(%q) = %s; want %s", tt.names, names(got), tt.want)
		}
	}
}

func TestSelectUnknown(t *testing.T) {
	_, err := Select(Scenarios(DefaultSizes()), []string{"gate_stale_events", "no_such_scenario"})
	if err == nil || !strings.Contains(err.Error(), `"no_such_scenario"`) || !strings.Contains(err.Error(), "cycle_sequential") {
		t.Errorf(`Select(no_such_scenario) error = %v; want one naming "no_such_scenario" and listing the known scenarios`, err)
	}
}

func TestMedian(t *testing.T) {
	rs := func(ms ...float64) []Result {
		var out []Result
		for _, m := range ms {
			out = append(out, FanoutResult{Ms: m})
		}
		return out
	}
	tests := []struct {
		in   []Result
		want float64
	}{
		{rs(5), 5},
		{rs(9, 1, 5), 5},
		{rs(3, 1, 4, 2), 2},
	}
	for _, tt := range tests {
		if got := Median(tt.in).(FanoutResult).Ms; got != tt.want {
			t.Errorf("Median(%v).Ms = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// Benchmarks: the scenarios under `go test -bench`.

func BenchmarkGateStaleEvents(b *testing.B) {
	s, err := newSingle(b.Context(), 5, false)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	s.prov.calls.Store(0)
	stale := statesync.Invalidation{Topic: topic, Revision: 3}
	b.ReportAllocs()
	for b.Loop() {
		s.bus.Publish(stale)
	}
	b.ReportMetric(float64(s.prov.calls.Load()), "provider_calls")
}

func BenchmarkCycleSequential(b *testing.B) { benchCycle(b, false) }

// BenchmarkGoroutineHandoff is the floor under cycle_sequential's default
// mode: a goroutine started for each round wakes the waiting one, as a
// refresh's goroutine wakes the cycle's waiter, with no refresh at all.
// The default cycle costs at least this plus the inline cycle.
func BenchmarkGoroutineHandoff(b *testing.B) {
	done := make(chan struct{}, 1)
	for b.Loop() {
		go func() { done <- struct{}{} }()
		<-done
	}
}

func BenchmarkCycleSequentialInline(b *testing.B) { benchCycle(b, true) }

func benchCycle(b *testing.B, inline bool) {
	ctx := b.Context()
	s, err := newSingle(ctx, 1, inline)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	s.rec.applies.Store(0)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := s.cycles(ctx, statesync.Revision(2+n), 1); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(s.rec.applies.Load())/float64(n), "applied/op")
}

func BenchmarkBurstCoalescing(b *testing.B) {
	var calls int64
	var final statesync.Revision
	for range b.N {
		r, err := BurstCoalescing(b.Context(), 1_000)
		if err != nil {
			b.Fatal(err)
		}
		calls += r.ProviderCalls
		final = r.Final
	}
	b.ReportMetric(float64(calls)/float64(b.N), "provider_calls/op")
	b.ReportMetric(float64(final), "final")
}

func BenchmarkFanout1000x1000(b *testing.B) { benchFanout(b, 1000, 1000) }

func BenchmarkFanout10000x100(b *testing.B) { benchFanout(b, 10000, 100) }

// benchFanout times the delivery of the updates until every handle has
// applied the final revision; starting the handles and waiting for their
// queued refreshes afterwards are not timed.
func benchFanout(b *testing.B, windows, updates int) {
	ctx := b.Context()
	var fetches int64
	b.StopTimer()
	for range b.N {
		f, err := newFanout(ctx, windows, updates, false)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
		_, err = f.deliver(ctx)
		b.StopTimer()
		if err == nil {
			err = f.settle(ctx)
		}
		fetches += f.prov.calls.Load()
		f.close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fetches)/float64(b.N), "fetches/op")
	b.ReportMetric(float64(fetches)/float64(b.N)/float64(windows), "fetches/window")
}
