package storetest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/storetest"
)

func TestRecorder(t *testing.T) {
	s := statesync.NewMemoryStore(nil)
	w := storetest.Watch(t, s)
	topic := storetest.NewTopic("rec")
	first := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	second := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
	if got := storetest.WaitSeen(t, w, second); got.Revision != second.Revision || string(got.Data) != "2" {
		t.Errorf("WaitSeen = %+v; want %+v", got, second)
	}
	if _, ok := w.Find(topic, first.Revision); !ok {
		t.Errorf("Find(%q, %d) found nothing; want the first write", topic, first.Revision)
	}
	if _, ok := w.Find(topic, second.Revision+1); ok {
		t.Errorf("Find(%q, %d) found a record never written", topic, second.Revision+1)
	}
	if _, ok := w.Find(topic+"x", first.Revision); ok {
		t.Errorf("Find(%q, %d) found a record of another topic", topic+"x", first.Revision)
	}
	recs := w.Records()
	if len(recs) != 2 || recs[0].Revision != first.Revision || recs[1].Revision != second.Revision {
		t.Errorf("Records() = %+v; want the two writes in order", recs)
	}
	recs[0].Topic = "changed"
	if w.Records()[0].Topic != topic {
		t.Error("Records() returned the recorder's own slice")
	}
	if got := w.Resyncs(); got != 0 {
		t.Errorf("Resyncs() = %d; want 0", got)
	}
	if got := storetest.MustGet(t, s, topic); got.Revision != second.Revision {
		t.Errorf("MustGet(%q).Revision = %d; want %d", topic, got.Revision, second.Revision)
	}
}

func TestNewTopic(t *testing.T) {
	a, b := storetest.NewTopic("x"), storetest.NewTopic("x")
	if a == b {
		t.Errorf("NewTopic returned %q twice", a)
	}
	if !strings.HasPrefix(a, "x.") || len(a) != len("x.")+12 {
		t.Errorf("NewTopic(%q) = %q; want x. and 12 hex digits", "x", a)
	}
}

func TestWithOpt(t *testing.T) {
	got := storetest.WithOpt(t, "redis://h:1/0?a=1&b=2", "b", "3")
	if want := "redis://h:1/0?a=1&b=3"; got != want {
		t.Errorf("WithOpt = %q; want %q", got, want)
	}
}

func TestOpContext(t *testing.T) {
	ctx := storetest.OpContext(t)
	if _, ok := ctx.Deadline(); !ok {
		t.Error("OpContext has no deadline")
	}
}

// The benchmarks run against the in-memory store, and report their metrics.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two benchmarks")
	}
	s := statesync.NewMemoryStore(nil)
	r := testing.Benchmark(func(b *testing.B) {
		storetest.BenchWrite(b, func(*testing.B) statesync.Store { return s })
	})
	if r.N == 0 {
		t.Error("BenchWrite ran no iteration")
	}
	r = testing.Benchmark(func(b *testing.B) {
		storetest.BenchFeedLatency(b, func(*testing.B) (a, c statesync.Store) { return s, s })
	})
	if r.N == 0 || r.Extra["p50-µs"] > r.Extra["p99-µs"] {
		t.Errorf("BenchFeedLatency: %d iterations, metrics %v; want some, p50 <= p99", r.N, r.Extra)
	}
}
