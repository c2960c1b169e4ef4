package statesync

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// A Revision orders the versions of one topic. Revisions are unsigned 64-bit
// integers; on the wire they are canonical decimal strings ("0", "42", never
// "007", never a JSON number), see docs/PROTOCOL.md.
//
// The zero Revision means "nothing yet": nothing applied, or a topic never
// written. Revisions compare with the
// ordinary operators (<, ==, >); because a Revision can only be made from a
// uint64 or by [ParseRevision], unvalidated strings are never compared.
type Revision uint64

// MaxRevision is the largest revision, 18446744073709551615.
const MaxRevision = Revision(math.MaxUint64)

// ParseRevision parses the canonical decimal form of a revision: "0", or a
// digit 1–9 followed by digits, at most 18446744073709551615. Anything else
// (leading zeros, signs, spaces, other characters, the empty string, values
// out of range) returns an error wrapping [ErrNonCanonicalRevision].
func ParseRevision(s string) (Revision, error) {
	r, ok := parseRevision(s)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrNonCanonicalRevision, s)
	}
	return r, nil
}

// parseRevision is ParseRevision without the error allocation.
func parseRevision(s string) (Revision, bool) {
	n := len(s)
	if n == 0 || n > 20 {
		return 0, false
	}
	if s[0] == '0' {
		return 0, n == 1
	}
	var v uint64
	for i := 0; i < n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return Revision(v), true
}

// String returns the canonical decimal form of r.
func (r Revision) String() string { return strconv.FormatUint(uint64(r), 10) }

// Next returns r+1, or [ErrRevisionOverflow] if r is [MaxRevision]. It never
// saturates (returns r itself), which would freeze every consumer at r.
func (r Revision) Next() (Revision, error) {
	if r == MaxRevision {
		return r, ErrRevisionOverflow
	}
	return r + 1, nil
}

// Compare returns -1 if r < o, 0 if r == o and +1 if r > o.
func (r Revision) Compare(o Revision) int {
	switch {
	case r < o:
		return -1
	case r > o:
		return 1
	}
	return 0
}

// AppendText appends the canonical decimal form of r to b.
func (r Revision) AppendText(b []byte) ([]byte, error) {
	return strconv.AppendUint(b, uint64(r), 10), nil
}

// MarshalText returns the canonical decimal form of r.
func (r Revision) MarshalText() ([]byte, error) { return r.AppendText(nil) }

// UnmarshalText parses the canonical decimal form, as [ParseRevision] does.
func (r *Revision) UnmarshalText(b []byte) error {
	v, ok := parseRevision(string(b))
	if !ok {
		return fmt.Errorf("%w: %q", ErrNonCanonicalRevision, b)
	}
	*r = v
	return nil
}

// MarshalJSON encodes r as a JSON string holding its canonical decimal form.
func (r Revision) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 22)
	b = append(b, '"')
	b = strconv.AppendUint(b, uint64(r), 10)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts only a JSON string holding a canonical revision. A
// JSON number, null, boolean, array or object is an error wrapping
// [ErrNonCanonicalRevision]: 5 is never read as "5".
func (r *Revision) UnmarshalJSON(b []byte) error {
	s, ok := rawJSONString(b)
	if !ok {
		return fmt.Errorf("%w: %s is not a JSON string", ErrNonCanonicalRevision, truncate(b, 64))
	}
	v, ok := parseRevision(s)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNonCanonicalRevision, s)
	}
	*r = v
	return nil
}

// rawJSONString returns the content of a JSON string literal that has no
// escape sequences, the only form a canonical revision can take. Strings
// with escapes are decoded with encoding/json so that "\u0031" is read as "1"
// and then judged like any other string.
func rawJSONString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	inner := b[1 : len(b)-1]
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			return decodeJSONString(b)
		}
	}
	if !utf8.Valid(inner) {
		return decodeJSONString(b)
	}
	return string(inner), true
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
