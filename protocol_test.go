package statesync_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/statesync-go/statesync"
)

// B-PROTO-01: the JSON keys of an invalidation are exactly topic, revision,
// epoch, sourceId and timestampMs; optional ones are left out when empty, and
// AppendJSON writes what encoding/json writes.
func TestInvalidationJSONKeys(t *testing.T) {
	for _, tc := range []struct {
		inv  statesync.Invalidation
		want string
	}{
		{statesync.Invalidation{Topic: "settings", Revision: 42},
			`{"topic":"settings","revision":"42"}`},
		{statesync.Invalidation{Topic: "settings", Revision: 42, Epoch: "k7Qx", SourceID: "w1", TimestampMs: 1764000000000},
			`{"topic":"settings","revision":"42","epoch":"k7Qx","sourceId":"w1","timestampMs":1764000000000}`},
		{statesync.Invalidation{Topic: "a", Revision: 0, SourceID: "w1"},
			`{"topic":"a","revision":"0","sourceId":"w1"}`},
		{statesync.Invalidation{Topic: "a", Revision: statesync.MaxRevision, TimestampMs: -1},
			`{"topic":"a","revision":"18446744073709551615","timestampMs":-1}`},
		// Strings are escaped as encoding/json escapes them.
		{statesync.Invalidation{Topic: "a\"<b>\n", Revision: 1, Epoch: "é\u2028"},
			`{"topic":"a\"\u003cb\u003e\n","revision":"1","epoch":"é\u2028"}`},
	} {
		got := tc.inv.AppendJSON(nil)
		if string(got) != tc.want {
			t.Errorf("%+v.AppendJSON(nil) = %s; want %s", tc.inv, got, tc.want)
		}
		std, err := json.Marshal(tc.inv)
		if err != nil || string(std) != tc.want {
			t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tc.inv, std, err, tc.want)
		}
		// AppendJSON appends.
		if got := tc.inv.AppendJSON([]byte("x")); string(got) != "x"+tc.want {
			t.Errorf("%+v.AppendJSON(x) = %s; want x%s", tc.inv, got, tc.want)
		}
		back, err := statesync.DecodeInvalidation(got)
		if err != nil || back != tc.inv {
			t.Errorf("DecodeInvalidation(%s) = %+v, %v; want %+v", got, back, err, tc.inv)
		}
	}
}

// B-PROTO-02: a snapshot is {"revision","epoch"?,"data"}; nil data is null;
// the Rust round trip example gives {"revision":"1","data":42}.
func TestSnapshotJSON(t *testing.T) {
	for _, tc := range []struct {
		snap statesync.Snapshot
		want string
	}{
		{statesync.Snapshot{Revision: 1, Data: json.RawMessage(`42`)}, `{"revision":"1","data":42}`},
		{statesync.Snapshot{Revision: 0}, `{"revision":"0","data":null}`},
		{statesync.Snapshot{Revision: 0, Data: json.RawMessage(`null`)}, `{"revision":"0","data":null}`},
		{statesync.Snapshot{Revision: 42, Epoch: "k7Qx", Data: json.RawMessage(`{"theme":"dark"}`)},
			`{"revision":"42","epoch":"k7Qx","data":{"theme":"dark"}}`},
		{statesync.Snapshot{Revision: 3, Data: json.RawMessage(`[1,"two",{"3":null}]`)}, `{"revision":"3","data":[1,"two",{"3":null}]}`},
	} {
		got := tc.snap.AppendJSON(nil)
		if string(got) != tc.want {
			t.Errorf("%v.AppendJSON(nil) = %s; want %s", tc.snap, got, tc.want)
		}
		m, err := tc.snap.MarshalJSON()
		if err != nil || string(m) != tc.want {
			t.Errorf("%v.MarshalJSON() = %s, %v; want %s", tc.snap, m, err, tc.want)
		}
		std, err := json.Marshal(tc.snap)
		if err != nil || string(std) != tc.want {
			t.Errorf("json.Marshal(%v) = %s, %v; want %s", tc.snap, std, err, tc.want)
		}
		back, err := statesync.DecodeSnapshot(got)
		want := tc.snap
		if want.Data == nil {
			want.Data = json.RawMessage("null")
		}
		if err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("DecodeSnapshot(%s) = %+v, %v; want %+v", got, back, err, want)
		}
	}
}

// B-PROTO-04..07, B-PROTO-11: DecodeInvalidation accepts valid events and
// rejects every malformed one with the sentinel and message of the spec.
func TestDecodeInvalidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		want    statesync.Invalidation
	}{
		{"minimal", `{"topic":"settings","revision":"42"}`, statesync.Invalidation{Topic: "settings", Revision: 42}},
		{"full", `{"topic":"settings","revision":"42","epoch":"e","sourceId":"w1","timestampMs":1764000000000}`,
			statesync.Invalidation{Topic: "settings", Revision: 42, Epoch: "e", SourceID: "w1", TimestampMs: 1764000000000}},
		{"zero revision", `{"topic":"t","revision":"0"}`, statesync.Invalidation{Topic: "t"}},
		{"max revision", `{"topic":"t","revision":"18446744073709551615"}`, statesync.Invalidation{Topic: "t", Revision: statesync.MaxRevision}},
		{"whitespace", " {\n\"revision\" : \"5\" ,\t\"topic\":\"t\" } ", statesync.Invalidation{Topic: "t", Revision: 5}},
		// B-PROTO-15: the topic is kept as sent; matching is the engine's job.
		{"topic with spaces kept", `{"topic":" test","revision":"1"}`, statesync.Invalidation{Topic: " test", Revision: 1}},
		// B-PROTO-11: wrong-typed optional fields are dropped silently,
		// unknown fields ignored.
		{"sourceId number", `{"topic":"t","revision":"1","sourceId":5}`, statesync.Invalidation{Topic: "t", Revision: 1}},
		{"sourceId null", `{"topic":"t","revision":"1","sourceId":null}`, statesync.Invalidation{Topic: "t", Revision: 1}},
		{"timestampMs string", `{"topic":"t","revision":"1","timestampMs":"1764000000000"}`, statesync.Invalidation{Topic: "t", Revision: 1}},
		{"timestampMs object", `{"topic":"t","revision":"1","timestampMs":{}}`, statesync.Invalidation{Topic: "t", Revision: 1}},
		{"timestampMs fraction", `{"topic":"t","revision":"1","timestampMs":17.9}`, statesync.Invalidation{Topic: "t", Revision: 1, TimestampMs: 17}},
		{"timestampMs exponent", `{"topic":"t","revision":"1","timestampMs":1.5e3}`, statesync.Invalidation{Topic: "t", Revision: 1, TimestampMs: 1500}},
		{"timestampMs too big", `{"topic":"t","revision":"1","timestampMs":1e300}`, statesync.Invalidation{Topic: "t", Revision: 1}},
		{"epoch array", `{"topic":"t","revision":"1","epoch":["e"]}`, statesync.Invalidation{Topic: "t", Revision: 1}},
		{"unknown fields", `{"topic":"t","revision":"1","data":{"x":1},"extra":[1,2]}`, statesync.Invalidation{Topic: "t", Revision: 1}},
		{"escaped strings", `{"topic":"\u0074","revision":"\u0031","sourceId":"w\u00e9"}`, statesync.Invalidation{Topic: "t", Revision: 1, SourceID: "wé"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := statesync.DecodeInvalidation([]byte(tc.payload))
			if err != nil || got != tc.want {
				t.Errorf("DecodeInvalidation(%s) = %+v, %v; want %+v, nil", tc.payload, got, err, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name    string
		payload string
		is      error
		msg     string // substring of the error message
	}{
		// B-PROTO-04
		{"empty topic", `{"topic":"","revision":"2"}`, statesync.ErrInvalidPayload, "empty topic in invalidation event"},
		{"blank topic", `{"topic":"   ","revision":"2"}`, statesync.ErrInvalidPayload, "empty topic in invalidation event"},
		{"tab topic", `{"topic":"\t\n","revision":"2"}`, statesync.ErrInvalidPayload, "empty topic in invalidation event"},
		// B-PROTO-05
		{"number topic", `{"topic":123,"revision":"2"}`, statesync.ErrInvalidPayload, "topic"},
		{"null topic", `{"topic":null,"revision":"2"}`, statesync.ErrInvalidPayload, "topic"},
		{"missing topic", `{"revision":"2"}`, statesync.ErrInvalidPayload, "topic"},
		// B-PROTO-06
		{"leading zero", `{"topic":"t","revision":"01"}`, statesync.ErrNonCanonicalRevision, `non-canonical revision in invalidation event: "01"`},
		{"letters", `{"topic":"t","revision":"abc"}`, statesync.ErrNonCanonicalRevision, `non-canonical revision in invalidation event: "abc"`},
		{"number revision", `{"topic":"t","revision":5}`, statesync.ErrNonCanonicalRevision, `non-canonical revision in invalidation event: 5`},
		{"null revision", `{"topic":"t","revision":null}`, statesync.ErrNonCanonicalRevision, "non-canonical revision in invalidation event"},
		{"missing revision", `{"topic":"t"}`, statesync.ErrNonCanonicalRevision, "non-canonical revision in invalidation event"},
		{"overflow", `{"topic":"t","revision":"18446744073709551616"}`, statesync.ErrNonCanonicalRevision, `"18446744073709551616"`},
		// B-PROTO-07
		{"garbage object", `{"garbage":true}`, statesync.ErrInvalidPayload, "topic"},
		{"garbage literal", `{garbage:true}`, statesync.ErrInvalidPayload, "not a JSON object"},
		{"array", `[{"topic":"t","revision":"1"}]`, statesync.ErrInvalidPayload, "not a JSON object"},
		{"string", `"t"`, statesync.ErrInvalidPayload, "not a JSON object"},
		{"null", `null`, statesync.ErrInvalidPayload, "topic"},
		{"empty", ``, statesync.ErrInvalidPayload, "not a JSON object"},
		{"truncated", `{"topic":"t","revision":"1"`, statesync.ErrInvalidPayload, "not a JSON object"},
		{"trailing data", `{"topic":"t","revision":"1"}{}`, statesync.ErrInvalidPayload, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := statesync.DecodeInvalidation([]byte(tc.payload))
			if !errors.Is(err, tc.is) {
				t.Fatalf("DecodeInvalidation(%s) = %+v, %v; want error wrapping %v", tc.payload, got, err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("DecodeInvalidation(%s) error = %q; want it to contain %q", tc.payload, err, tc.msg)
			}
		})
	}
}

// B-PROTO-11: a timestampMs beyond int64 must be dropped, never turned into
// a wrong (here negative) time.
func TestDecodeInvalidationTimestampRange(t *testing.T) {
	for _, ts := range []string{"9223372036854775807", "9223372036854775808", "9.3e18"} {
		payload := `{"topic":"t","revision":"1","timestampMs":` + ts + `}`
		got, err := statesync.DecodeInvalidation([]byte(payload))
		if err != nil || got.TimestampMs < 0 {
			t.Errorf("DecodeInvalidation(%s) = %+v, %v; want a non-negative timestamp or none", payload, got, err)
		}
	}
	// The smallest int64 is representable and kept.
	payload := `{"topic":"t","revision":"1","timestampMs":-9223372036854775808}`
	if got, err := statesync.DecodeInvalidation([]byte(payload)); err != nil || got.TimestampMs != math.MinInt64 {
		t.Errorf("DecodeInvalidation(%s) = %+v, %v; want TimestampMs %d", payload, got, err, int64(math.MinInt64))
	}
}

// B-PROTO-12, B-PROTO-13, B-PROTO-14: DecodeSnapshot validates the revision,
// passes data through untouched and returns *SnapshotError on failure, with
// the revision as sent only when it was a string.
func TestDecodeSnapshot(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    statesync.Snapshot
	}{
		{`{"revision":"0","data":null}`, statesync.Snapshot{Revision: 0, Data: json.RawMessage(`null`)}}, // B-PROTO-13
		{`{"revision":"1","data":42}`, statesync.Snapshot{Revision: 1, Data: json.RawMessage(`42`)}},
		{`{"data":{"a": [1, 2]},"revision":"7","epoch":"e1"}`, statesync.Snapshot{Revision: 7, Epoch: "e1", Data: json.RawMessage(`{"a": [1, 2]}`)}},
		{`{"revision":"3","data":"x","extra":1}`, statesync.Snapshot{Revision: 3, Data: json.RawMessage(`"x"`)}},
		{`{"revision":"18446744073709551615","data":[]}`, statesync.Snapshot{Revision: statesync.MaxRevision, Data: json.RawMessage(`[]`)}},
	} {
		got, err := statesync.DecodeSnapshot([]byte(tc.payload))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeSnapshot(%s) = %+v, %v; want %+v, nil", tc.payload, got, err, tc.want)
		}
	}

	for _, tc := range []struct {
		payload  string
		is       error
		msg      string
		rev      string
		revIsStr bool
	}{
		{`{"revision":"01","data":1}`, statesync.ErrNonCanonicalRevision, `non-canonical snapshot revision: "01"`, "01", true},
		{`{"revision":"abc","data":1}`, statesync.ErrNonCanonicalRevision, `non-canonical snapshot revision: "abc"`, "abc", true},
		{`{"revision":"","data":1}`, statesync.ErrNonCanonicalRevision, `non-canonical snapshot revision: ""`, "", true},
		{`{"revision":5,"data":1}`, statesync.ErrNonCanonicalRevision, "non-canonical snapshot revision: 5", "", false},
		{`{"revision":null,"data":1}`, statesync.ErrNonCanonicalRevision, "non-canonical snapshot revision", "", false},
		{`{"data":1}`, statesync.ErrNonCanonicalRevision, "non-canonical snapshot revision", "", false},
		{`{"revision":"1"}`, statesync.ErrInvalidPayload, "no data", "1", true},
		{`{"revision":"1","epoch":5,"data":1}`, statesync.ErrInvalidPayload, "epoch", "1", true},
		{`not json`, statesync.ErrInvalidPayload, "not a JSON object", "", false},
		{`[1]`, statesync.ErrInvalidPayload, "not a JSON object", "", false},
		{``, statesync.ErrInvalidPayload, "not a JSON object", "", false},
		{`{"revision":"1","data":}`, statesync.ErrInvalidPayload, "not a JSON object", "", false},
	} {
		got, err := statesync.DecodeSnapshot([]byte(tc.payload))
		var se *statesync.SnapshotError
		if !errors.As(err, &se) {
			t.Errorf("DecodeSnapshot(%s) = %+v, %v; want a *SnapshotError", tc.payload, got, err)
			continue
		}
		if !errors.Is(err, tc.is) {
			t.Errorf("DecodeSnapshot(%s) = %v; want error wrapping %v", tc.payload, err, tc.is)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("DecodeSnapshot(%s) error = %q; want it to contain %q", tc.payload, err, tc.msg)
		}
		if se.Revision != tc.rev || se.RevisionIsString != tc.revIsStr {
			t.Errorf("DecodeSnapshot(%s) SnapshotError{Revision: %q, RevisionIsString: %v}; want {%q, %v}",
				tc.payload, se.Revision, se.RevisionIsString, tc.rev, tc.revIsStr)
		}
		if se.Unwrap() != se.Err || se.Error() != se.Err.Error() {
			t.Errorf("SnapshotError %v does not unwrap to or read as its Err", se)
		}
	}
}

// DESIGN §4 and docs/PROTOCOL.md "Topic names": any UTF-8 string of 1–256
// bytes without control characters, line separators or bidi controls, not
// only white space, not "." or "..". CheckTopic says why a name is invalid.
func TestCheckTopic(t *testing.T) {
	valid := []string{
		"a", "Z", "0", "settings", "cache:users", "a.b_c-d:e", "9lives", "A-", "x..", "room:42:members",
		"settings/ui", "my topic", "café", "cafe\u0301", "日本語", "🙂", "👩\u200d💻", "a*", "*", "a\\*", "\\",
		"-a", ".a", "_a", ":a", " test", "test ", "a?b", "a#b", "a%20", "%2F", "a+b", "a&b=c", "/", "//", "a/../b",
		"...", ".a.", "/..", "../x", "{tag}", "[x]", "a>b", "a\"b", "<script>", "\ufeffbom", "soft\u00adhyphen",
		"\U0010FFFF", "\uFFFD", "\uE000",
		strings.Repeat("a", statesync.MaxTopicLen),
		strings.Repeat("é", statesync.MaxTopicLen/2),
	}
	for _, name := range valid {
		if err := statesync.CheckTopic(name); err != nil {
			t.Errorf("CheckTopic(%q) = %v; want nil", name, err)
		}
		if err := statesync.CheckTopicPrefix(name); err != nil {
			t.Errorf("CheckTopicPrefix(%q) = %v; want nil", name, err)
		}
	}
	invalid := []struct{ name, why string }{
		{"", "empty"},
		{strings.Repeat("a", statesync.MaxTopicLen+1), "257 bytes"},
		{strings.Repeat("é", statesync.MaxTopicLen/2) + "a", "257 bytes"},
		{".", "URL path segment"}, {"..", "URL path segment"},
		{" ", "white space"}, {"   ", "white space"}, {"\u00a0", "white space"}, {"\u3000\ufeff", "white space"},
		{"a\x00", "U+0000"}, {"a\n", "U+000A"}, {"\tb", "U+0009"}, {"a\r\nb", "U+000D"}, {"a\x1f", "U+001F"},
		{"a\x7f", "U+007F"}, {"a\u0080", "U+0080"}, {"a\u0085", "U+0085"}, {"a\u009f", "U+009F"},
		{"a\u2028b", "U+2028"}, {"a\u2029", "U+2029"},
		{"\u202egnp.exe", "U+202E"}, {"a\u202a", "U+202A"}, {"a\u2066", "U+2066"}, {"a\u2069", "U+2069"},
		{"a\xff", "invalid UTF-8"}, {"caf\xc3", "invalid UTF-8"}, {"\xc3\xa9\xe9", "invalid UTF-8"},
		{"\xed\xa0\x80", "invalid UTF-8"}, // an encoded surrogate
		{"\xc0\xaf", "invalid UTF-8"},     // an overlong '/'
	}
	for _, tc := range invalid {
		err := statesync.CheckTopic(tc.name)
		if !errors.Is(err, statesync.ErrInvalidTopic) {
			t.Errorf("CheckTopic(%q) = %v; want error wrapping ErrInvalidTopic", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("CheckTopic(%q) = %q; want it to contain %q", tc.name, err, tc.why)
		}
	}
	// Every ASCII byte but the controls is valid, in first or later place.
	for c := 0; c < 128; c++ {
		b := string([]byte{byte(c)})
		want := c >= 0x20 && c < 0x7f
		if got := statesync.CheckTopic("a"+b) == nil; got != want {
			t.Errorf("CheckTopic(%q) == nil is %v; want %v", "a"+b, got, want)
		}
		if got := statesync.CheckTopic(b+"a") == nil; got != want {
			t.Errorf("CheckTopic(%q) == nil is %v; want %v", b+"a", got, want)
		}
	}
}

// CheckTopicPrefix accepts what may begin a topic: "" and white space too,
// "." and "..", but not what CheckTopic refuses inside a name.
func TestCheckTopicPrefix(t *testing.T) {
	for _, p := range []string{"", " ", ".", "..", "\u00a0", strings.Repeat("a", statesync.MaxTopicLen)} {
		if err := statesync.CheckTopicPrefix(p); err != nil {
			t.Errorf("CheckTopicPrefix(%q) = %v; want nil", p, err)
		}
	}
	for _, p := range []string{"a\n", "\x7f", "caf\xc3", "\u2028", "\u202e", strings.Repeat("a", statesync.MaxTopicLen+1)} {
		if err := statesync.CheckTopicPrefix(p); !errors.Is(err, statesync.ErrInvalidTopic) {
			t.Errorf("CheckTopicPrefix(%q) = %v; want error wrapping ErrInvalidTopic", p, err)
		}
	}
}

// FuzzCheckTopic checks the rule against a direct statement of it, and
// that a valid name survives the JSON of an invalidation unchanged.
func FuzzCheckTopic(f *testing.F) {
	for _, s := range []string{"settings", "my topic", "café", "a\x00", ".", "..", " ", "a\u2028", "\xff", "a*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := statesync.CheckTopic(name)
		want := len(name) >= 1 && len(name) <= statesync.MaxTopicLen && utf8.ValidString(name) &&
			name != "." && name != ".." && strings.TrimFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r == '\ufeff' }) != "" &&
			!strings.ContainsFunc(name, func(r rune) bool {
				return unicode.Is(unicode.Cc, r) || r == '\u2028' || r == '\u2029' ||
					r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
			})
		if (err == nil) != want {
			t.Fatalf("CheckTopic(%q) = %v; want valid %v", name, err, want)
		}
		if err != nil {
			if !errors.Is(err, statesync.ErrInvalidTopic) {
				t.Fatalf("CheckTopic(%q) = %v; want ErrInvalidTopic", name, err)
			}
			return
		}
		if err := statesync.CheckTopicPrefix(name); err != nil {
			t.Fatalf("CheckTopicPrefix(%q) = %v for a valid topic", name, err)
		}
		b := statesync.Invalidation{Topic: name, Revision: 7}.AppendJSON(nil)
		inv, err := statesync.DecodeInvalidation(b)
		if err != nil || inv.Topic != name {
			t.Fatalf("DecodeInvalidation(%s) = %q, %v; want %q", b, inv.Topic, err, name)
		}
	})
}

// B-PROTO-11: decoding a JSON string gives the same Go string whether or not
// it holds escapes; like encoding/json, invalid UTF-8 becomes U+FFFD, so
// what is decoded survives AppendJSON and decoding again.
func TestDecodeInvalidUTF8(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{"{\"topic\":\"t\",\"revision\":\"1\",\"sourceId\":\"a\xffb\"}", "a\uFFFDb"},
		{"{\"topic\":\"t\",\"revision\":\"1\",\"sourceId\":\"a\xffb\\n\"}", "a\uFFFDb\n"},
	} {
		inv, err := statesync.DecodeInvalidation([]byte(tc.payload))
		if err != nil || inv.SourceID != tc.want {
			t.Errorf("DecodeInvalidation(%q).SourceID = %q, %v; want %q", tc.payload, inv.SourceID, err, tc.want)
		}
		back, err := statesync.DecodeInvalidation(inv.AppendJSON(nil))
		if err != nil || back != inv {
			t.Errorf("round trip of %+v = %+v, %v", inv, back, err)
		}
	}
}

// BenchmarkCheckTopic: the rule is checked on every request and frame.
func BenchmarkCheckTopic(b *testing.B) {
	for _, name := range []string{"settings", "room:42:members", "café/設定", strings.Repeat("a", statesync.MaxTopicLen)} {
		b.Run(fmt.Sprintf("%dB", len(name)), func(b *testing.B) {
			for b.Loop() {
				if statesync.CheckTopic(name) != nil {
					b.Fatal("invalid")
				}
			}
		})
	}
}
