package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDurableWrites measures PUTs over loopback HTTP to a daemon on
// its default bbolt store (fsync at each commit) by 1, 4, 8 and 16
// concurrent writers, each to a topic of its own, with keep-alive
// connections: writes/s and the 99th percentile latency (p99-ms).
// Concurrent writes share bbolt transactions, so writes/s grows with the
// writers.
func BenchmarkDurableWrites(b *testing.B) {
	for _, writers := range []int{1, 4, 8, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			d := startDaemon(b, testConfig(b))
			tr := &http.Transport{MaxIdleConnsPerHost: writers}
			hc := &http.Client{Transport: tr}
			defer tr.CloseIdleConnections()
			body := `{"counter":12345,"name":"benchmark"}`
			var next atomic.Int64
			var wg sync.WaitGroup
			lats := make([][]time.Duration, writers)
			b.ResetTimer()
			for i := range writers {
				wg.Go(func() {
					url := fmt.Sprintf("%s/v1/topics/bench%d", d.url, i)
					lat := make([]time.Duration, 0, b.N/writers+1)
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						req, err := http.NewRequestWithContext(context.Background(), http.MethodPut, url, strings.NewReader(body))
						if err != nil {
							b.Error(err)
							return
						}
						resp, err := hc.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("PUT %s = %d; want 200", url, resp.StatusCode)
							return
						}
						lat = append(lat, time.Since(start))
					}
					lats[i] = lat
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			if all := slices.Concat(lats...); len(all) > 0 {
				slices.Sort(all)
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
