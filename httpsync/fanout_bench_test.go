package httpsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// frameCounter is the ResponseWriter of an in-process event stream: it
// counts the writes and drops the bytes, so that a benchmark measures the
// handler's own work per frame without the network's (most of it over a
// real connection). The write that makes the count reach target sends
// on done.
type frameCounter struct {
	hdr http.Header
	*writeCount
}

type writeCount struct {
	n, target atomic.Int64
	done      chan struct{}
}

func (w *frameCounter) Header() http.Header              { return w.hdr }
func (w *frameCounter) WriteHeader(int)                  {}
func (w *frameCounter) Flush()                           {}
func (w *frameCounter) SetWriteDeadline(time.Time) error { return nil }
func (w *frameCounter) Write(p []byte) (int, error) {
	if w.n.Add(1) == w.target.Load() {
		w.done <- struct{}{}
	}
	return len(p), nil
}

// BenchmarkStreamFanout measures the handler's work per delivered frame
// (sse_fanout's workload without the network): n inline event streams
// follow one topic; each op is one write of a 100-byte JSON object and
// its frame written by every stream. ns/frame is the wall time per frame
// on all cores; the figure to compare is its ratio run to run.
func BenchmarkStreamFanout(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1}), nil)
			if err != nil {
				b.Fatal(err)
			}
			h := httpsync.NewHandler(src, nil)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() {
				cancel()
				h.Close()
				wg.Wait()
				src.Close()
			}()
			data := json.RawMessage(`{"id":"0123456789","name":"bench","items":[1,2,3,4,5,6,7,8,9,10],"flag":true,"note":"padding to 100 B.."}`)
			if _, err := src.Put(ctx, "bench", data); err != nil {
				b.Fatal(err)
			}
			wc := &writeCount{done: make(chan struct{}, 1)}
			wc.target.Store(int64(n)) // each stream's first write: its retry hint and initial frame
			for range n {
				r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/events?topic=bench&inline=65536", nil)
				w := &frameCounter{hdr: http.Header{}, writeCount: wc}
				wg.Go(func() { h.ServeHTTP(w, r) })
			}
			<-wc.done
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				wc.target.Store(int64(n) * int64(i+2))
				if _, err := src.Put(ctx, "bench", data); err != nil {
					b.Fatal(err)
				}
				<-wc.done
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/frame")
		})
	}
}
