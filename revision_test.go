package statesync_test

import (
	"encoding"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

// B-REV-01, B-REV-02, B-REV-03, B-REV-10: canonical strings parse to their
// numeric value and print back unchanged.
func TestParseRevisionAccepts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want statesync.Revision
	}{
		{"0", 0}, // B-REV-02
		{"1", 1},
		{"42", 42},
		{"999999999999", 999999999999},
		{"10", 10},
		{"18446744073709551615", statesync.MaxRevision}, // u64 max
		{"18446744073709551614", statesync.MaxRevision - 1},
		{"10000000000000000000", 10000000000000000000}, // 20 digits, below max
	} {
		got, err := statesync.ParseRevision(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRevision(%q) = %v, %v; want %v, nil", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.in {
			t.Errorf("ParseRevision(%q).String() = %q; want %q", tc.in, s, tc.in)
		}
	}
}

// B-REV-04, B-REV-05, B-REV-10, B-REV-11: everything else is rejected with
// an error wrapping ErrNonCanonicalRevision.
func TestParseRevisionRejects(t *testing.T) {
	for _, in := range []string{
		// B-REV-04: leading zeros
		"00", "01", "007", "0000000000000000000001",
		// the empty string
		"",
		// non-digits
		"abc", "12a", "-1", "1.0", "not_a_number", "1e3", "0x10", "½", "١", // Arabic-Indic one
		// whitespace
		" 1", "1 ", "\t1", "1\n",
		// signs: B-REV-04 [S], B-REV-11 (Rust accepted "+42")
		"+1", "+42", "-0",
		// B-REV-05: out of range
		"18446744073709551616",
		"99999999999999999999",
		"999999999999999999999",
		"100000000000000000000",
		strings.Repeat("9", 40),
	} {
		got, err := statesync.ParseRevision(in)
		if !errors.Is(err, statesync.ErrNonCanonicalRevision) {
			t.Errorf("ParseRevision(%q) = %v, %v; want error wrapping ErrNonCanonicalRevision", in, got, err)
		}
		if got != 0 {
			t.Errorf("ParseRevision(%q) = %v on error; want 0", in, got)
		}
	}
}

// B-REV-07, B-REV-08: Compare is numeric order (not string order: "9" < "10").
func TestRevisionCompare(t *testing.T) {
	mustParse := func(s string) statesync.Revision {
		t.Helper()
		r, err := statesync.ParseRevision(s)
		if err != nil {
			t.Fatalf("ParseRevision(%q) = %v", s, err)
		}
		return r
	}
	var zero statesync.Revision
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"0", "0", 0},
		{"42", "42", 0},
		{"9", "10", -1},
		{"100", "99", 1},
		{"10", "20", -1},
		{"20", "10", 1},
		{"18446744073709551615", "18446744073709551614", 1},
		{"0", "18446744073709551615", -1},
	} {
		a, b := mustParse(tc.a), mustParse(tc.b)
		if got := a.Compare(b); got != tc.want {
			t.Errorf("Revision(%s).Compare(%s) = %d; want %d", tc.a, tc.b, got, tc.want)
		}
		if got := b.Compare(a); got != -tc.want {
			t.Errorf("Revision(%s).Compare(%s) = %d; want %d", tc.b, tc.a, got, -tc.want)
		}
	}
	// The zero value is revision "0" (B-REV-02).
	one := mustParse("1")
	if got := zero.Compare(one); got != -1 {
		t.Errorf("ZERO.Compare(1) = %d; want -1", got)
	}
	if got := one.Compare(zero); got != 1 {
		t.Errorf("1.Compare(ZERO) = %d; want 1", got)
	}
	if got := zero.Compare(zero); got != 0 {
		t.Errorf("ZERO.Compare(ZERO) = %d; want 0", got)
	}
	if got := zero.String(); got != "0" {
		t.Errorf("Revision(0).String() = %q; want %q", got, "0")
	}
}

// B-REV-10, B-REV-12: Next adds one and fails at the maximum instead of
// saturating.
func TestRevisionNext(t *testing.T) {
	for _, r := range []statesync.Revision{0, 1, 41, statesync.MaxRevision - 1} {
		got, err := r.Next()
		if err != nil || got != r+1 {
			t.Errorf("Revision(%d).Next() = %v, %v; want %v, nil", r, got, err, r+1)
		}
	}
	got, err := statesync.MaxRevision.Next()
	if !errors.Is(err, statesync.ErrRevisionOverflow) {
		t.Errorf("MaxRevision.Next() = %v, %v; want ErrRevisionOverflow", got, err)
	}
	if got == 0 {
		t.Errorf("MaxRevision.Next() wrapped around to 0")
	}
	if statesync.MaxRevision != math.MaxUint64 {
		t.Errorf("MaxRevision = %d; want %d", uint64(statesync.MaxRevision), uint64(math.MaxUint64))
	}
}

// B-REV-09, B-REV-11: revisions marshal to JSON strings, never numbers.
func TestRevisionMarshalJSON(t *testing.T) {
	for _, tc := range []struct {
		r    statesync.Revision
		want string
	}{
		{0, `"0"`},
		{42, `"42"`},
		{statesync.MaxRevision, `"18446744073709551615"`},
	} {
		got, err := json.Marshal(tc.r)
		if err != nil || string(got) != tc.want {
			t.Errorf("json.Marshal(Revision(%d)) = %s, %v; want %s", uint64(tc.r), got, err, tc.want)
		}
		// Inside a struct too, and through a pointer.
		got, err = json.Marshal(struct{ R *statesync.Revision }{&tc.r})
		if want := `{"R":` + tc.want + `}`; err != nil || string(got) != want {
			t.Errorf("json.Marshal(struct{&Revision(%d)}) = %s, %v; want %s", uint64(tc.r), got, err, want)
		}
	}
}

// B-REV-06, B-REV-09: JSON decoding accepts only strings holding canonical
// revisions; numbers, null, booleans, arrays and objects are rejected, and 5
// is never coerced into "5".
func TestRevisionUnmarshalJSON(t *testing.T) {
	accept := []struct {
		in   string
		want statesync.Revision
	}{
		{`"0"`, 0},
		{`"42"`, 42},
		{`"18446744073709551615"`, statesync.MaxRevision},
		// An escaped string is judged by its value: "\u0034\u0032" is "42".
		{`"\u0034\u0032"`, 42},
	}
	for _, tc := range accept {
		var r statesync.Revision = 7
		if err := json.Unmarshal([]byte(tc.in), &r); err != nil || r != tc.want {
			t.Errorf("json.Unmarshal(%s) = %v, %v; want %v, nil", tc.in, r, err, tc.want)
		}
	}
	reject := []string{
		`0`, `1`, `5`, `42`, `1.0`, `-1`, `1e2`, // numbers (B-REV-06)
		`null`, `true`, `false`,
		`{}`, `{"revision":"1"}`, `[]`, `["1"]`,
		`""`, `"01"`, `"abc"`, `" 1"`, `"+1"`, `"-1"`, `"18446744073709551616"`,
		`"\u0030\u0031"`, // "01" spelt with escapes
		`"1\u0000"`,
		`'1'`, `"1`, `1"`,
	}
	for _, in := range reject {
		var r statesync.Revision = 7
		err := r.UnmarshalJSON([]byte(in))
		if !errors.Is(err, statesync.ErrNonCanonicalRevision) {
			t.Errorf("Revision.UnmarshalJSON(%s) = %v; want error wrapping ErrNonCanonicalRevision", in, err)
		}
		if r != 7 {
			t.Errorf("Revision.UnmarshalJSON(%s) changed the revision to %v on error", in, r)
		}
	}
	// Through encoding/json, as a field: a numeric or null revision fails the
	// whole decode (B-REV-06: never coerced, never silently zero).
	for _, in := range []string{`{"r":5}`, `{"r":null}`, `{"r":true}`, `{"r":{"n":"1"}}`, `{"r":"007"}`} {
		var v struct {
			R statesync.Revision `json:"r"`
		}
		err := json.Unmarshal([]byte(in), &v)
		if !errors.Is(err, statesync.ErrNonCanonicalRevision) {
			t.Errorf("json.Unmarshal(%s) = %v (R=%v); want error wrapping ErrNonCanonicalRevision", in, err, v.R)
		}
	}
	// And as a top-level null.
	var r statesync.Revision
	if err := json.Unmarshal([]byte(`null`), &r); !errors.Is(err, statesync.ErrNonCanonicalRevision) {
		t.Errorf("json.Unmarshal(null) = %v; want error wrapping ErrNonCanonicalRevision", err)
	}
}

// B-REV-09: the text form is the canonical decimal form, strictly parsed, so
// revisions work as map keys in JSON and in flag/env parsing.
func TestRevisionText(t *testing.T) {
	var _ encoding.TextMarshaler = statesync.Revision(0)
	var _ encoding.TextUnmarshaler = (*statesync.Revision)(nil)
	var _ encoding.TextAppender = statesync.Revision(0)

	for _, r := range []statesync.Revision{0, 7, 1234567890, statesync.MaxRevision} {
		b, err := r.MarshalText()
		if err != nil || string(b) != r.String() {
			t.Errorf("Revision(%d).MarshalText() = %q, %v; want %q", uint64(r), b, err, r.String())
		}
		b, err = r.AppendText([]byte("rev="))
		if want := "rev=" + r.String(); err != nil || string(b) != want {
			t.Errorf("Revision(%d).AppendText(rev=) = %q, %v; want %q", uint64(r), b, err, want)
		}
		var back statesync.Revision
		if err := back.UnmarshalText([]byte(r.String())); err != nil || back != r {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", r.String(), back, err, r)
		}
	}
	for _, in := range []string{"", "01", "x", "-1", "18446744073709551616", `"1"`} {
		var r statesync.Revision = 3
		if err := r.UnmarshalText([]byte(in)); !errors.Is(err, statesync.ErrNonCanonicalRevision) || r != 3 {
			t.Errorf("UnmarshalText(%q) = %v (r=%v); want ErrNonCanonicalRevision and r unchanged", in, err, r)
		}
	}

	// Map keys go through the text form.
	m := map[statesync.Revision]string{9: "a", 10: "b"}
	b, err := json.Marshal(m)
	if want := `{"10":"b","9":"a"}`; err != nil || string(b) != want {
		t.Errorf("json.Marshal(%v) = %s, %v; want %s", m, b, err, want)
	}
	var back map[statesync.Revision]string
	if err := json.Unmarshal([]byte(`{"09":"a"}`), &back); !errors.Is(err, statesync.ErrNonCanonicalRevision) {
		t.Errorf("json.Unmarshal map key \"09\" = %v; want ErrNonCanonicalRevision", err)
	}
}

// B-REV-13 at the decoder level: epochs travel with invalidations and
// snapshots and survive a round trip, so that the engine can tell a source
// that lost its history from a stale one.
func TestRevisionEpochDecoding(t *testing.T) {
	inv, err := statesync.DecodeInvalidation([]byte(`{"topic":"t","revision":"0","epoch":"e2"}`))
	if err != nil || inv.Epoch != "e2" || inv.Revision != 0 {
		t.Errorf("DecodeInvalidation(epoch e2, revision 0) = %+v, %v; want epoch e2, revision 0", inv, err)
	}
	snap, err := statesync.DecodeSnapshot([]byte(`{"revision":"0","epoch":"e2","data":null}`))
	if err != nil || snap.Epoch != "e2" || snap.Revision != 0 {
		t.Errorf("DecodeSnapshot(epoch e2, revision 0) = %+v, %v; want epoch e2, revision 0", snap, err)
	}
	// A snapshot epoch that is not a string is an error (it decides whether
	// the snapshot is applied); null means none.
	if _, err := statesync.DecodeSnapshot([]byte(`{"revision":"1","epoch":7,"data":null}`)); !errors.Is(err, statesync.ErrInvalidPayload) {
		t.Errorf("DecodeSnapshot(epoch 7) = %v; want ErrInvalidPayload", err)
	}
	snap, err = statesync.DecodeSnapshot([]byte(`{"revision":"1","epoch":null,"data":null}`))
	if err != nil || snap.Epoch != "" {
		t.Errorf("DecodeSnapshot(epoch null) = %+v, %v; want no epoch, nil", snap, err)
	}
	// An invalidation epoch of the wrong type is an optional field: dropped.
	inv, err = statesync.DecodeInvalidation([]byte(`{"topic":"t","revision":"1","epoch":7}`))
	if err != nil || inv.Epoch != "" {
		t.Errorf("DecodeInvalidation(epoch 7) = %+v, %v; want no epoch, nil", inv, err)
	}
}
