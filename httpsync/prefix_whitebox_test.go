package httpsync

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

// Prefix streams are registered under their prefixes and unregistered
// when they end, leaving no trace in the tables the fan-out goroutine
// reads; a handler without prefix streams matches no prefix at all.
func TestPrefixRegistration(t *testing.T) {
	_, h := newMemHandler(t, "e")
	newStream := func(prefixes ...string) *stream {
		return &stream{wake: make(chan struct{}, 1), topics: map[string]*streamTopic{}, prefixes: prefixes, grants: allGrants{}, maxTopics: 10}
	}
	a, b := newStream("a:", "a:b:"), newStream("a:", "")
	for _, st := range []*stream{a, b} {
		if !h.register(st) {
			t.Fatal("register refused on an open handler")
		}
	}
	h.mu.RLock()
	got := h.prefixStreams("a:b:1", nil)
	none := h.prefixStreams("z", nil)
	lens := len(h.prefixLens)
	h.mu.RUnlock()
	if len(got) != 2 || len(none) != 1 || none[0] != b || lens != 3 {
		t.Fatalf("prefixStreams(a:b:1) = %d streams, (z) = %v, %d lengths; want both streams (each once), b only, 3 lengths", len(got), none, lens)
	}
	h.unregister(a)
	h.unregister(b)
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.byPrefix) != 0 || len(h.prefixLens) != 0 || len(h.fanSeen) != 0 {
		t.Fatalf("after the streams ended: byPrefix %v, prefixLens %v, fanSeen %v; want all empty", h.byPrefix, h.prefixLens, h.fanSeen)
	}
}

// A prefix stream takes a topic in on its first invalidation if its
// grants allow it, and marks itself overflowed, without taking it in,
// beyond its cap.
func TestNotifyPrefixed(t *testing.T) {
	st := &stream{wake: make(chan struct{}, 1), topics: map[string]*streamTopic{}, prefixes: []string{"c:"}, maxTopics: 2, inline: -1,
		grants: grantsOf(func(topic string) bool { return topic != "c:secret" })}
	for i, topic := range []string{"c:secret", "c:1", "c:2", "c:1", "c:3"} {
		st.notifyPrefixed(statesync.Invalidation{Topic: topic, Revision: statesync.Revision(i + 1), Epoch: "e"}, 0, nil)
	}
	if _, ok := st.topics["c:secret"]; ok || len(st.topics) != 2 || st.overflowed() != "c:" {
		t.Fatalf("topics %v, overflow %q; want c:1 and c:2, overflowed on c:", st.topics, st.overflowed())
	}
	batch, _ := st.take(nil)
	if len(batch) != 2 || batch[0].inv.Topic != "c:1" || batch[0].inv.Revision != 4 || batch[1].inv.Topic != "c:2" {
		t.Fatalf("pending %+v; want c:1 at 4, c:2 at 3", batch)
	}
}

type grantsOf func(string) bool

func (f grantsOf) CanRead(topic string) bool { return f(topic) }
func (f grantsOf) CanWrite(string) bool      { return false }

// The prefix table matches a topic to exactly the streams with a prefix
// of it, each once, whatever the prefixes and the topic (any bytes:
// checkPrefix decides which prefixes a request may register, and must
// accept exactly "" and the non-empty prefixes of valid topic names).
func FuzzPrefixMatch(f *testing.F) {
	f.Add("cart:", "cart:a", "cart:alice:1")
	f.Add("", "é", "é")
	f.Add("a\n", "\xff", "a\nb")
	f.Fuzz(func(t *testing.T, p1, p2, topic string) {
		for _, p := range []string{p1, p2} {
			if err := checkPrefix(p); (err == nil) != (p == "" || statesync.CheckTopic(p) == nil || statesync.CheckTopic(p+"0") == nil) {
				t.Fatalf("checkPrefix(%q) = %v", p, err)
			}
			if err := checkPrefix(p); err != nil && !errors.Is(err, statesync.ErrInvalidTopic) {
				t.Fatalf("checkPrefix(%q) = %v; want an ErrInvalidTopic", p, err)
			}
		}
		h := &Handler{byPrefix: map[string]map[*stream]struct{}{}, prefixLens: map[int]int{}, fanSeen: map[*stream]struct{}{}}
		a := &stream{prefixes: []string{p1, p2}}
		b := &stream{prefixes: []string{p2}}
		h.registerPrefixes(a)
		h.registerPrefixes(b)
		got := h.prefixStreams(topic, nil)
		want := 0
		if strings.HasPrefix(topic, p1) || strings.HasPrefix(topic, p2) {
			want++
		}
		if strings.HasPrefix(topic, p2) {
			want++
		}
		if len(got) != want {
			t.Fatalf("prefixes %q, %q, topic %q: %d streams; want %d", p1, p2, topic, len(got), want)
		}
		h.unregisterPrefixes(a)
		h.unregisterPrefixes(b)
		if len(h.byPrefix) != 0 || len(h.prefixLens) != 0 {
			t.Fatalf("left %v, %v", h.byPrefix, h.prefixLens)
		}
	})
}

// BenchmarkPrefixMatch measures what the fan-out goroutine pays per
// invalidation to find the prefix streams of its topic, with n prefix
// streams open on distinct prefixes ("user:<i>:", four distinct lengths):
// one map lookup per distinct length, whatever n; nothing with n = 0.
func BenchmarkPrefixMatch(b *testing.B) {
	for _, n := range []int{0, 1, 10_000} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			h := &Handler{byPrefix: map[string]map[*stream]struct{}{}, prefixLens: map[int]int{}, fanSeen: map[*stream]struct{}{}}
			for i := range n {
				h.registerPrefixes(&stream{prefixes: []string{"user:" + strconv.Itoa(i) + ":"}})
			}
			topics := make([]string, 100)
			for i := range topics {
				topics[i] = "user:" + strconv.Itoa(i) + ":cart"
			}
			var out []*stream
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				topic := topics[i%100]
				out = out[:0]
				if len(h.prefixLens) > 0 {
					out = h.prefixStreams(topic, out)
				}
				if want := min(1, max(0, n-i%100)); len(out) != want {
					b.Fatalf("%d streams for %s; want %d", len(out), topic, want)
				}
			}
		})
	}
}

// BenchmarkPrefixStreamMemory reports the heap a prefix stream holds per
// topic it follows (its streamTopic and map entry; the names are the
// store's strings), measured over a stream that takes in 10,000 topics
// from its listing.
func BenchmarkPrefixStreamMemory(b *testing.B) {
	src, h := benchHandler(b)
	const n = 10_000
	for i := range n {
		if _, err := src.Put(context.Background(), "cart:"+strconv.Itoa(i), []byte(`1`)); err != nil {
			b.Fatal(err)
		}
	}
	var perTopic float64
	for b.Loop() {
		st := &stream{wake: make(chan struct{}, 1), topics: map[string]*streamTopic{}, prefixes: []string{"cart:"}, grants: allGrants{}, maxTopics: n}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		// The initial frames are sent, then dropped: only their count is kept.
		got, err := func() (int, error) {
			initial, err := h.listPrefixes(context.Background(), st, allGrants{})
			return len(initial), err
		}()
		if err != nil || got != n {
			b.Fatalf("listPrefixes = %d topics, %v", got, err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perTopic = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		runtime.KeepAlive(st)
	}
	b.ReportMetric(perTopic, "B/topic")
}
