package persist_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
	"pgregory.net/rapid"
)

// B-COMP-02, B-COMP-03, B-COMP-04, B-COMP-12, B-COMP-13
func TestGzip(t *testing.T) {
	persisttest.TestCompressor(t, persist.Gzip(0), true)
	persisttest.TestCompressor(t, persist.Gzip(1), true)
}

// B-COMP-06, B-COMP-07
func TestIdentityAndBase64(t *testing.T) {
	persisttest.TestCompressor(t, persist.None, false)
	persisttest.TestCompressor(t, persist.Base64, false)
	in := []byte(`{"a":"Привет"}`)
	if out, _ := persist.None.Compress(in); !bytes.Equal(out, in) {
		t.Errorf("None.Compress(%s) = %s; want the input", in, out)
	}
	if out, _ := persist.Base64.Compress([]byte("test")); string(out) != "dGVzdA==" {
		t.Errorf("Base64.Compress(test) = %s; want dGVzdA== (standard, padded)", out)
	}
}

// B-COMP-05, B-COMP-08: names, and a custom compressor passes the user's
// functions through.
func TestCompressorNames(t *testing.T) {
	custom := funcCompressor{
		name:       "custom",
		compress:   func(b []byte) ([]byte, error) { return []byte("[" + string(b) + "]"), nil },
		decompress: func(b []byte) ([]byte, error) { return bytes.Trim(b, "[]"), nil },
	}
	for _, tt := range []struct {
		c    persist.Compressor
		want string
	}{{persist.None, "none"}, {persist.Base64, "base64"}, {persist.Gzip(0), "gzip"}, {custom, "custom"}} {
		if got, want := tt.c.Algorithm(), tt.want; got != want {
			t.Errorf("Algorithm() = %q; want %q", got, want)
		}
	}
	if out, _ := custom.Compress([]byte("test")); string(out) != "[test]" {
		t.Errorf("custom Compress(test) = %s; want [test]", out)
	}
	if out, _ := custom.Decompress([]byte("[test]")); string(out) != "test" {
		t.Errorf("custom Decompress([test]) = %s; want test", out)
	}
}

// B-COMP-10, B-COMP-11, B-DEF-13
func TestEstimateRatioAndMeasure(t *testing.T) {
	rep := []byte(strings.Repeat("abcdefghij", 100))
	for _, tt := range []struct {
		data []byte
		c    persist.Compressor
		less bool
	}{{nil, persist.Gzip(0), false}, {rep, persist.None, false}, {rep, persist.Gzip(0), true}} {
		r, err := estimateRatio(tt.data, tt.c)
		if err != nil || (tt.less && r >= 1) || (!tt.less && r != 1) {
			t.Errorf("EstimateRatio(%d bytes, %s) = %v, %v; want %s", len(tt.data), tt.c.Algorithm(), r, err, map[bool]string{true: "< 1", false: "1"}[tt.less])
		}
	}
	m, err := measure(rep, persist.None, 0)
	if err != nil || m.Ratio != 1 || m.OriginalSize != m.CompressedSize || m.AvgCompress < 0 || !m.RoundTripsExact {
		t.Errorf("Measure(identity) = %+v, %v; want ratio 1 and equal sizes", m, err)
	}
	m, err = measure(rep, persist.Gzip(0), 3)
	if err != nil || m.Ratio >= 1 || m.CompressedSize >= m.OriginalSize || m.AvgDecompress < 0 || !m.RoundTripsExact {
		t.Errorf("Measure(gzip) = %+v, %v; want ratio < 1", m, err)
	}
}

// B-COMP-13: property: every compressor of this package round-trips any
// UTF-8 string, non-Latin-1 text and emoji included, and so does a save
// and load through a Persister's record.
func TestCompressionRoundTripProperty(t *testing.T) {
	comps := []persist.Compressor{persist.None, persist.Gzip(0), persist.Gzip(9), persist.Base64}
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.StringOf(rapid.OneOf(
			rapid.RuneFrom(nil, unicodeRanges...),
			rapid.RuneFrom([]rune("Привет你好😀🎉€ÿ\u0000\n\"\\")),
		)).Draw(t, "s")
		if !utf8.ValidString(s) {
			t.Fatalf("generator made invalid UTF-8")
		}
		c := comps[rapid.IntRange(0, len(comps)-1).Draw(t, "compressor")]
		out, err := c.Compress([]byte(s))
		if err != nil {
			t.Fatalf("%s: Compress = %v", c.Algorithm(), err)
		}
		back, err := c.Decompress(out)
		if err != nil || string(back) != s {
			t.Fatalf("%s: round trip of %q = %q, %v", c.Algorithm(), s, back, err)
		}
		// Through a record and a load: the data is a JSON string of s.
		data, _ := jsonString(s)
		rec, err := persist.NewRecord(statesync.Snapshot{Revision: 1, Data: data}, &persist.RecordOptions{Compressor: c, Hash: true})
		if err != nil {
			t.Fatal(err)
		}
		m := persist.NewMemoryStorage(nil)
		m.Save(context.Background(), rec)
		got, _, err := persist.Load(context.Background(), m, nil, &persist.LoadOptions{VerifyHash: true})
		if err != nil || !bytes.Equal(got.Data, data) {
			t.Fatalf("%s: Load of %q = %s, %v", c.Algorithm(), s, got.Data, err)
		}
	})
}

var unicodeRanges = []*unicode.RangeTable{unicode.Latin, unicode.Cyrillic, unicode.Han, unicode.Hiragana, unicode.So, unicode.Co, unicode.Cc, unicode.Arabic}

func jsonString(s string) (json.RawMessage, error) { return json.Marshal(s) }

// funcCompressor is a Compressor of two functions and a name.
type funcCompressor struct {
	name                 string
	compress, decompress func([]byte) ([]byte, error)
}

func (c funcCompressor) Algorithm() string                   { return c.name }
func (c funcCompressor) Compress(b []byte) ([]byte, error)   { return c.compress(b) }
func (c funcCompressor) Decompress(b []byte) ([]byte, error) { return c.decompress(b) }
