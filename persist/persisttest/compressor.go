package persisttest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/statesync-go/statesync/persist"
)

// TestCompressor checks that c keeps the contract of
// [persist.Compressor], in subtests:
//
//   - fixed inputs round-trip exactly, among them Cyrillic, CJK, emoji,
//     every byte value and a 50-user JSON document;
//   - empty input gives empty output both ways;
//   - random UTF-8 text drawn from every plane round-trips (a seeded
//     property check; the seed is logged);
//   - if shrinks is true, repetitive input gets smaller;
//   - Decompress of bytes that are not c's output (unless c is the
//     identity) fails with an error
//     wrapping [persist.ErrInvalidCompressedData];
//   - the algorithm name is not empty.
func TestCompressor(t *testing.T, c persist.Compressor, shrinks bool) {
	t.Helper()
	t.Run("Fixed", func(t *testing.T) { testCompressorFixed(t, c) })
	t.Run("Empty", func(t *testing.T) { testCompressorEmpty(t, c) })
	t.Run("RandomUTF8", func(t *testing.T) { testCompressorRandom(t, c) })
	if shrinks {
		t.Run("Shrinks", func(t *testing.T) { testCompressorShrinks(t, c) })
	}
	if c.Algorithm() != persist.None.Algorithm() { // the identity accepts anything
		t.Run("InvalidInput", func(t *testing.T) { testCompressorInvalid(t, c) })
	}
	if c.Algorithm() == "" {
		t.Errorf("Algorithm() = \"\"; want a name")
	}
}

// RoundTrip compresses and decompresses b with c and reports any
// difference.
func RoundTrip(tb testing.TB, c persist.Compressor, b []byte) {
	tb.Helper()
	comp, err := c.Compress(b)
	if err != nil {
		tb.Fatalf("%s: Compress(%.40q) = %v", c.Algorithm(), b, err)
	}
	back, err := c.Decompress(comp)
	if err != nil {
		tb.Fatalf("%s: Decompress(Compress(%.40q)) = %v", c.Algorithm(), b, err)
	}
	if !bytes.Equal(back, b) {
		tb.Fatalf("%s: Decompress(Compress(%.40q)) = %.40q (%d bytes); want the input (%d bytes)", c.Algorithm(), b, back, len(back), len(b))
	}
}

// UsersJSON returns a JSON document of n users.
func UsersJSON(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"users":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"User %d","email":"user%d@example.com","active":%v,"roles":["reader","writer"]}`, i, i, i, i%2 == 0)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func testCompressorFixed(t *testing.T, c persist.Compressor) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	var printable strings.Builder
	for r := rune(32); r <= 126; r++ {
		printable.WriteRune(r)
	}
	inputs := []string{
		"Hello, World!", string(UsersJSON(50)), strings.Repeat("abcdefghij", 100), strings.Repeat(printable.String(), 10),
		strings.Repeat("0123456789", 100), "x", strings.Repeat("a", 1000),
		"Привет мир", "a€b", "Привет мир! 你好世界!", "😀🎉👩‍👩‍👧‍👦 🇺🇦", "\U0010FFFF\U00010000", string(all),
	}
	for _, in := range inputs {
		RoundTrip(t, c, []byte(in))
	}
}

func testCompressorEmpty(t *testing.T, c persist.Compressor) {
	for _, in := range [][]byte{nil, {}} {
		out, err := c.Compress(in)
		if err != nil || len(out) != 0 {
			t.Errorf("Compress(empty) = %q, %v; want empty", out, err)
		}
		back, err := c.Decompress(in)
		if err != nil || len(back) != 0 {
			t.Errorf("Decompress(empty) = %q, %v; want empty", back, err)
		}
	}
}

// randomText returns random UTF-8 text mixing ASCII, Latin-1, Cyrillic,
// CJK, emoji and other supplementary planes, with repeats.
func randomText(rng *rand.Rand) []byte {
	ranges := [][2]rune{{0x20, 0x7e}, {0x00, 0x1f}, {0xa0, 0xff}, {0x400, 0x4ff}, {0x4e00, 0x9fff}, {0x1f300, 0x1faff}, {0x10000, 0x10ffff}, {0xe000, 0xfffd}}
	var b []byte
	n := rng.IntN(2000)
	for len(b) < n {
		if len(b) > 8 && rng.IntN(10) == 0 { // repeat a piece, as JSON does
			start := rng.IntN(len(b))
			end := min(len(b), start+rng.IntN(64))
			for !utf8.Valid(b[start:end]) && start < end {
				start++
			}
			if utf8.Valid(b[start:end]) {
				b = append(b, b[start:end]...)
			}
			continue
		}
		rg := ranges[rng.IntN(len(ranges))]
		r := rg[0] + rune(rng.IntN(int(rg[1]-rg[0]+1)))
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		b = utf8.AppendRune(b, r)
	}
	return b
}

func testCompressorRandom(t *testing.T, c persist.Compressor) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 300 {
		RoundTrip(t, c, randomText(rng))
	}
}

func testCompressorShrinks(t *testing.T, c persist.Compressor) {
	settings := `{"settings":[`
	for i := range 20 {
		if i > 0 {
			settings += ","
		}
		settings += fmt.Sprintf(`{"key":"setting_%d","value":"default","enabled":true}`, i)
	}
	settings += "]}"
	for _, in := range []string{strings.Repeat("abcdefghij", 100), strings.Repeat("a", 1000), settings} {
		out, err := c.Compress([]byte(in))
		if err != nil || len(out) >= len(in) {
			t.Errorf("%s: Compress(%.20q…) = %d bytes, %v; want fewer than %d", c.Algorithm(), in, len(out), err, len(in))
		}
	}
}

func testCompressorInvalid(t *testing.T, c persist.Compressor) {
	good, err := c.Compress([]byte(strings.Repeat("some data ", 50)))
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{[]byte("definitely not compressed!"), {0xff, 0xfe, 0xfd}, good[:len(good)/2]}
	for _, b := range bad {
		if out, err := c.Decompress(b); !errors.Is(err, persist.ErrInvalidCompressedData) {
			t.Errorf("%s: Decompress(%.20q) = %.20q, %v; want ErrInvalidCompressedData", c.Algorithm(), b, out, err)
		}
	}
}
