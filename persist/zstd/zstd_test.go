package zstd_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
	"github.com/statesync-go/statesync/persist/zstd"
	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

// TestMain fails the package's tests if any goroutine is left running
// (B-GO-06): a Compressor holds none.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newZstd(t testing.TB, o *zstd.Options) *zstd.Compressor {
	t.Helper()
	c, err := zstd.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// B-COMP-01..04, B-COMP-12, B-COMP-13
func TestCompressor(t *testing.T) {
	persisttest.TestCompressor(t, newZstd(t, nil), true)
	persisttest.TestCompressor(t, newZstd(t, &zstd.Options{Level: 4}), true)
	if _, err := zstd.New(&zstd.Options{Level: 9}); err == nil {
		t.Errorf("New(Level 9) = nil error; want an error")
	}
}

// B-COMP-13: property: any UTF-8 string round-trips.
func TestRoundTripProperty(t *testing.T) {
	c := newZstd(t, nil)
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.String().Draw(t, "s")
		out, err := c.Compress([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Decompress(out)
		if err != nil || string(back) != s {
			t.Fatalf("round trip of %q = %q, %v", s, back, err)
		}
	})
}

// B-PMETA-03: a record compressed with zstd is stored compressed and
// loads back when the loader is given the compressor.
func TestRecordRoundTrip(t *testing.T) {
	c := newZstd(t, nil)
	data := persisttest.UsersJSON(50)
	rec, err := persist.NewRecord(statesync.Snapshot{Revision: 9, Data: data}, &persist.RecordOptions{Compressor: c, Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Meta.Algorithm != "zstd" || len(rec.Payload) >= rec.Meta.SizeBytes {
		t.Fatalf("NewRecord(zstd) = %+v with %d payload bytes; want a smaller zstd payload", rec.Meta, len(rec.Payload))
	}
	m := persist.NewMemoryStorage(nil)
	m.Save(context.Background(), rec)
	got, _, err := persist.Load(context.Background(), m, nil, &persist.LoadOptions{Compressors: []persist.Compressor{c}, VerifyHash: true})
	if err != nil || !bytes.Equal(got.Data, data) {
		t.Errorf("Load() of a zstd record = %.40s, %v; want the data", got.Data, err)
	}
}

// A decompression bomb is refused beyond MaxDecodedSize.
func TestMaxDecodedSize(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 1<<20)
	comp, _ := newZstd(t, nil).Compress(big)
	if _, err := newZstd(t, &zstd.Options{MaxDecodedSize: 1 << 16}).Decompress(comp); err == nil {
		t.Errorf("Decompress(1 MiB) with MaxDecodedSize 64 KiB = nil error; want an error")
	}
}

func BenchmarkCompress100KB(b *testing.B) {
	c := newZstd(b, nil)
	data := persisttest.UsersJSON(900)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.Compress(data)
	}
}
