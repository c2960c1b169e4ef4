package httpsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

func benchHandler(b *testing.B) (*statesync.Source, *Handler) {
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1}), nil)
	if err != nil {
		b.Fatal(err)
	}
	h := NewHandler(src, nil)
	b.Cleanup(func() { h.Close(); src.Close() })
	return src, h
}

// BenchmarkFanout measures the source's watch callback, which runs on the
// writer's goroutine, with n streams following the topic (and 10 other
// topics each). The callback only records the invalidation and wakes the
// handler's fan-out goroutine, so ns/op is constant whatever n (and
// ns/stream falls with n); the fan-out goroutine does the per-stream work
// concurrently.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			_, h := benchHandler(b)
			for i := range n {
				st := &stream{wake: make(chan struct{}, 1), topics: map[string]*streamTopic{}}
				st.topics["hot"] = &streamTopic{name: "hot"}
				st.named = append(st.named, "hot")
				for j := range 10 {
					name := fmt.Sprintf("cold%d.%d", i, j)
					st.topics[name] = &streamTopic{name: name}
					st.named = append(st.named, name)
				}
				h.register(st)
				b.Cleanup(func() { h.unregister(st) }) // before Close, which waits for streams
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.invalidated(statesync.Invalidation{Topic: "hot", Revision: statesync.Revision(i + 1), Epoch: "e"})
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/stream")
		})
	}
}

// BenchmarkServeSnapshot measures GET /v1/topics/{topic} without the
// network: 200, 304 and gzip of a 10 KB snapshot.
func BenchmarkServeSnapshot(b *testing.B) {
	src, h := benchHandler(b)
	data := `{"text":"` + strings.Repeat("state sync ", 1000) + `"}`
	snap, err := src.Put(context.Background(), "t", json.RawMessage(data))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		hdr    [2]string
		status int
	}{
		{"200", [2]string{}, 200},
		{"304", [2]string{"If-None-Match", etag(snap.Epoch, snap.Revision)}, 304},
		{"gzip", [2]string{"Accept-Encoding", "gzip"}, 200},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/v1/topics/t", nil)
			if tc.hdr[0] != "" {
				r.Header.Set(tc.hdr[0], tc.hdr[1])
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != tc.status {
					b.Fatalf("status %d; want %d", w.Code, tc.status)
				}
			}
		})
	}
}

// BenchmarkSSEReader measures the client's frame parser on invalidation
// frames.
func BenchmarkSSEReader(b *testing.B) {
	var buf bytes.Buffer
	const frames = 1000
	for i := range frames {
		fmt.Fprintf(&buf, "event: invalidation\ndata: {\"topic\":\"settings\",\"revision\":\"%d\",\"epoch\":\"k7QxAbCdEfGh\"}\n\n", i+1)
	}
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		p := newSSEReader(bytes.NewReader(in), 1<<20)
		n := 0
		for {
			if _, err := p.next(); err != nil {
				break
			}
			n++
		}
		if n != frames {
			b.Fatalf("%d frames; want %d", n, frames)
		}
	}
}

// BenchmarkMergePatch measures a small patch of a 100-member object.
func BenchmarkMergePatch(b *testing.B) {
	var target strings.Builder
	target.WriteString("{")
	for i := range 100 {
		if i > 0 {
			target.WriteString(",")
		}
		fmt.Fprintf(&target, `"k%d":{"v":%d,"tags":["a","b"]}`, i, i)
	}
	target.WriteString("}")
	t, p := []byte(target.String()), []byte(`{"k50":{"v":-1,"tags":null},"new":true}`)
	b.SetBytes(int64(len(t)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MergePatch(t, p); err != nil {
			b.Fatal(err)
		}
	}
}
