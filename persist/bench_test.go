package persist_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/boltcache"
	"github.com/statesync-go/statesync/persist/persisttest"
	"github.com/statesync-go/statesync/persist/zstd"
)

// jsonOfSize returns a JSON document of users of about size bytes.
func jsonOfSize(size int) []byte {
	n := 1
	for len(persisttest.UsersJSON(n)) < size {
		n *= 2
	}
	lo, hi := n/2, n
	for lo < hi { // the smallest n reaching size
		mid := (lo + hi) / 2
		if len(persisttest.UsersJSON(mid)) < size {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return persisttest.UsersJSON(lo)
}

type benchBackend struct {
	name string
	open func(b *testing.B) persist.Storage
}

func benchBackends() []benchBackend {
	return []benchBackend{
		{"memory", func(b *testing.B) persist.Storage { return persist.NewMemoryStorage(nil) }},
		{"file", func(b *testing.B) persist.Storage {
			s, err := persist.NewFileStorage(b.TempDir(), "bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"bolt", func(b *testing.B) persist.Storage {
			db, err := boltcache.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			s, _ := db.Storage("bench")
			return s
		}},
	}
}

func benchCompressors(b *testing.B) []persist.Compressor {
	z, err := zstd.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	return []persist.Compressor{persist.None, persist.Gzip(0), z}
}

var benchSizes = []struct {
	name string
	size int
}{{"1KB", 1 << 10}, {"100KB", 100 << 10}, {"1MB", 1 << 20}}

// BenchmarkSave measures a save as a Persister's writer does it: encode
// (JSON, compression, SHA-256) and write (fsync'd for file and bolt). The
// stored-B metric is the payload size after compression.
func BenchmarkSave(b *testing.B) {
	for _, sz := range benchSizes {
		data := jsonOfSize(sz.size)
		for _, be := range benchBackends() {
			for _, c := range benchCompressors(b) {
				b.Run(fmt.Sprintf("%s/%s/%s", sz.name, be.name, c.Algorithm()), func(b *testing.B) {
					s := be.open(b)
					ctx := context.Background()
					b.SetBytes(int64(len(data)))
					var stored int
					rev := statesync.Revision(0)
					for b.Loop() {
						rev++
						rec, err := persist.NewRecord(statesync.Snapshot{Revision: rev, Data: data}, &persist.RecordOptions{Compressor: c, Hash: true})
						if err != nil {
							b.Fatal(err)
						}
						if err := s.Save(ctx, rec); err != nil {
							b.Fatal(err)
						}
						stored = len(rec.Payload)
					}
					b.ReportMetric(float64(stored), "stored-B")
				})
			}
		}
	}
}

// BenchmarkLoad measures a load with every check (read, hash,
// decompression, decoding), without an applier.
func BenchmarkLoad(b *testing.B) {
	for _, sz := range benchSizes {
		data := jsonOfSize(sz.size)
		for _, be := range benchBackends() {
			for _, c := range benchCompressors(b) {
				b.Run(fmt.Sprintf("%s/%s/%s", sz.name, be.name, c.Algorithm()), func(b *testing.B) {
					s := be.open(b)
					ctx := context.Background()
					rec, err := persist.NewRecord(statesync.Snapshot{Revision: 1, Data: data}, &persist.RecordOptions{Compressor: c, Hash: true})
					if err != nil {
						b.Fatal(err)
					}
					if err := s.Save(ctx, rec); err != nil {
						b.Fatal(err)
					}
					opts := &persist.LoadOptions{Compressors: []persist.Compressor{c}, VerifyHash: true}
					b.SetBytes(int64(len(data)))
					for b.Loop() {
						snap, _, err := persist.Load(ctx, s, nil, opts)
						if err != nil || len(snap.Data) != len(data) {
							b.Fatalf("Load() = %d bytes, %v", len(snap.Data), err)
						}
					}
					b.ReportMetric(float64(len(rec.Payload)), "stored-B")
				})
			}
		}
	}
}

// The measurement helpers below compare compressors outside testing.B.

// estimateRatio returns len(Compress(data))/len(data): 1 for empty data
// or the identity, below 1 when c shrinks data .
func estimateRatio(data []byte, c persist.Compressor) (float64, error) {
	if len(data) == 0 {
		return 1, nil
	}
	out, err := c.Compress(data)
	if err != nil {
		return 0, err
	}
	return float64(len(out)) / float64(len(data)), nil
}

// defaultmeasureIterations is the default of measure's iterations
// .
const defaultmeasureIterations = 100

// A measurement is the result of measure.
type measurement struct {
	Ratio           float64 // CompressedSize / OriginalSize (1 for empty data)
	AvgCompress     time.Duration
	AvgDecompress   time.Duration
	OriginalSize    int
	CompressedSize  int
	RoundTripsExact bool
}

// measure compresses and decompresses data iterations times (0 means
// [defaultmeasureIterations]) and reports sizes and average times
// .
func measure(data []byte, c persist.Compressor, iterations int) (measurement, error) {
	if iterations <= 0 {
		iterations = defaultmeasureIterations
	}
	m := measurement{OriginalSize: len(data), Ratio: 1}
	var comp []byte
	start := time.Now()
	for range iterations {
		var err error
		if comp, err = c.Compress(data); err != nil {
			return measurement{}, err
		}
	}
	m.AvgCompress = time.Since(start) / time.Duration(iterations)
	var back []byte
	start = time.Now()
	for range iterations {
		var err error
		if back, err = c.Decompress(comp); err != nil {
			return measurement{}, err
		}
	}
	m.AvgDecompress = time.Since(start) / time.Duration(iterations)
	m.CompressedSize = len(comp)
	if len(data) > 0 {
		m.Ratio = float64(len(comp)) / float64(len(data))
	}
	m.RoundTripsExact = bytes.Equal(back, data)
	return m, nil
}
