package pgstore

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/statesync-go/statesync"
)

func TestDecodePayload(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want payload
		ok   bool
	}{
		{"w|17|1700000000000000|meta|16384|a.b|=node-1", payload{kind: kindWrite, revision: 17, micros: 1700000000000000, metaID: "meta", oid: 16384, topic: "a.b", sourceID: "node-1"}, true},
		{"w|17|-5||1|a|=", payload{kind: kindWrite, revision: 17, micros: -5, oid: 1, topic: "a"}, true},
		{"w|17|5|m|1|a|=x|y=z", payload{kind: kindWrite, revision: 17, micros: 5, metaID: "m", oid: 1, topic: "a", sourceID: "x|y=z"}, true},
		{"w|17|5|m|1|a|+", payload{kind: kindWrite, revision: 17, micros: 5, metaID: "m", oid: 1, topic: "a", longSource: true}, true},
		{"p|abc-1", payload{kind: kindProbe}, true},
		{"p|", payload{kind: kindProbe}, true},
		{"e", payload{kind: kindLostHistory}, true},
		{"", payload{}, false},
		{"hello", payload{}, false},
		{"w|", payload{}, false},
		{"w|0|5|m|1|a|=", payload{}, false},
		{"w|007|5|m|1|a|=", payload{}, false},
		{"w|18446744073709551616|5|m|1|a|=", payload{}, false},
		{"w|1|x|m|1|a|=", payload{}, false},
		{"w|1|5|m|4294967296|a|=", payload{}, false},
		{"w|1|5|m|1|bad\ntopic|=", payload{}, false},
		{"w|1|5|m|1|my topic/caf\u00e9|=s", payload{kind: kindWrite, revision: 1, micros: 5, metaID: "m", oid: 1, topic: "my topic/caf\u00e9", sourceID: "s"}, true},
		// A topic holding '|' comes with its length: kind t.
		{"t|1|5|m|1|7|a|=evil|=s", payload{kind: kindWrite, revision: 1, micros: 5, metaID: "m", oid: 1, topic: "a|=evil", sourceID: "s"}, true},
		{"t|1|5|m|1|3|a||+", payload{}, false}, // no separator after the topic
		{"t|1|5|m|1|2|a||+", payload{kind: kindWrite, revision: 1, micros: 5, metaID: "m", oid: 1, topic: "a|", longSource: true}, true},
		{"t|1|5|m|1|1|a|=s", payload{}, false},        // kind t of a topic without '|'
		{"t|1|5|m|1|07|a|=evil|=s", payload{}, false}, // a length not canonical
		{"t|1|5|m|1|8|a|=evil|=s", payload{}, false},  // a length one too long
		{"t|1|5|m|1|99|a|=evil|=s", payload{}, false}, // a length past the end
		{"t|1|5|m|1|-1|a|=evil|=s", payload{}, false},
		{"t|1|5|m|1|0||=s", payload{}, false},
		{"w|1|5|m|1|a|x", payload{}, false},
		{"w|1|5|m|1|a", payload{}, false},
		{"e|", payload{}, false},
	} {
		got, err := decodePayload(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("decodePayload(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzDecodePayload: a notification of the store's channel may come from
// anyone with access to the database; decoding never panics, and what it
// accepts is a valid record.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"w|17|1700000000000000|meta|16384|a.b|=node-1", "w|1|5|m|1|a|+", "p|x", "e", "w||||||", "w|1|5|m|1|a|=\xff", "t|1|5|m|1|3|a|b|=s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := decodePayload(s)
		if err != nil {
			if p != (payload{}) {
				t.Errorf("decodePayload(%q) = %+v with error %v; want the zero payload", s, p, err)
			}
			return
		}
		if p.kind == kindWrite && (p.revision == 0 || statesync.CheckTopic(p.topic) != nil || strings.Contains(p.metaID, "|")) {
			t.Errorf("decodePayload(%q) accepted %+v", s, p)
		}
	})
}

func TestParseURL(t *testing.T) {
	got, o, err := parseURL("postgres://u:secret@h:5432/db?sslmode=disable&schema=s1&feed_probe=250ms&pool_max_conns=4&feed_url=postgres%3A%2F%2Fh2%2Fdb")
	if err != nil {
		t.Fatal(err)
	}
	if want := (urlOptions{schema: "s1", probe: 250e6, feedURL: "postgres://h2/db"}); o != want {
		t.Errorf("options = %+v; want %+v", o, want)
	}
	if _, o, err := parseURL("postgres://h/db?feed_probe=10ms"); err != nil || o.probe != minProbeInterval {
		t.Errorf("parseURL with the shortest probe: %+v, %v; want it accepted", o, err)
	}
	if _, _, err := parseURL("postgres://h/db?feed_probe=9ms"); err == nil {
		t.Errorf("parseURL with a probe under %v succeeded", minProbeInterval)
	}
	if want := "postgres://u:secret@h:5432/db?pool_max_conns=4&sslmode=disable"; got != want {
		t.Errorf("pgx URL = %q; want %q", got, want)
	}
	if got, _, err := parseURL("host=h user=u"); err != nil || got != "host=h user=u" {
		t.Errorf("parseURL(DSN) = %q, %v; want it unchanged", got, err)
	}
	// A password with an unescaped # / ? or % makes url.Parse quote a piece of it.
	for _, s := range []string{"postgres://u:secret@h:bad port/db", "postgres://u:secret#x@h/db", "postgres://u:secret/x@h/db", "postgres://u:secret%zz@h/db"} {
		if _, _, err := parseURL(s); !errors.Is(err, errBadURL) || strings.Contains(err.Error(), "secret") {
			t.Errorf("parseURL(%q): error %v; want an invalid-URL error without the password", s, err)
		}
	}
}

// FuzzParseURL: parsing never panics, accepted options are valid, and
// none of this package's options reaches pgx.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"postgres://u:p@h/db?schema=a&feed_probe=1s",
		"postgresql://h/db?feed_url=postgres%3A%2F%2Fx",
		"postgres://h/db?schema=&x=%zz",
		"host=h dbname=d",
		"POSTGRES://h/db?schema=A",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, o, err := parseURL(s)
		if err != nil {
			return
		}
		if o.schema != "" && checkSchema(o.schema) != nil {
			t.Errorf("parseURL(%q) accepted schema %q", s, o.schema)
		}
		if o.probe != 0 && o.probe < minProbeInterval {
			t.Errorf("parseURL(%q) accepted probe %v", s, o.probe)
		}
		if got == s {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("parseURL(%q) = %q, which does not parse: %v", s, got, err)
		}
		for _, k := range []string{optSchema, optProbe, optFeedURL} {
			if u.Query().Has(k) {
				t.Errorf("parseURL(%q) = %q: still has %s", s, got, k)
			}
		}
	})
}

// The range of a prefix is the code point successor of its last
// character, valid UTF-8 as PostgreSQL text must be.
func TestPrefixRange(t *testing.T) {
	for _, tt := range []struct{ in, lo, hi string }{
		{"a", "a", "b"}, {"a.", "a.", "a/"}, {"z", "z", "{"}, {"a b", "a b", "a c"}, {"%", "%", "&"}, {"a_", "a_", "a`"},
		{"caf\u00e9", "caf\u00e9", "caf\u00ea"}, {"~", "~", "\x7f"},
		{"a\u00bf", "a\u00bf", "a\u00c0"}, {"\ud7ff", "\ud7ff", "\ue000"}, {"a\U0010ffff", "a\U0010ffff", "b"},
		{"\U0010ffff", "\U0010ffff", ""}, {"\U0010ffff\U0010ffff", "\U0010ffff\U0010ffff", ""},
	} {
		lo, hi, trimmed, ok := prefixRange(tt.in)
		if lo != tt.lo || hi != tt.hi || trimmed || !ok {
			t.Errorf("prefixRange(%q) = %q, %q, %v, %v; want %q, %q, false, true", tt.in, lo, hi, trimmed, ok, tt.lo, tt.hi)
		}
	}
	// A prefix cut inside a character scans the range of what precedes it.
	if lo, hi, trimmed, ok := prefixRange("caf\xc3"); lo != "caf" || hi != "cag" || !trimmed || !ok {
		t.Errorf("prefixRange(%q) = %q, %q, %v, %v; want \"caf\", \"cag\", true, true", "caf\xc3", lo, hi, trimmed, ok)
	}
	for _, in := range []string{"a\x00", "a\nb", "\xff\xff\xff\xffa", "a\u2028"} {
		if _, _, _, ok := prefixRange(in); ok {
			t.Errorf("prefixRange(%q) ok; want no topic to match", in)
		}
	}
}

// FuzzPrefixRange: every valid topic starting with the prefix is in the
// range, and both ends are text PostgreSQL takes.
func FuzzPrefixRange(f *testing.F) {
	f.Add("caf\u00e9", "caf\u00e9 cr\u00e8me")
	f.Add("\ud7ff", "\ud7ffx")
	f.Add("caf\xc3", "caf\u00e9")
	f.Fuzz(func(t *testing.T, prefix, topic string) {
		lo, hi, _, ok := prefixRange(prefix)
		if ok && (!utf8.ValidString(lo) || !utf8.ValidString(hi) || strings.ContainsRune(lo+hi, 0)) {
			t.Fatalf("prefixRange(%q) = %q, %q: not PostgreSQL text", prefix, lo, hi)
		}
		if statesync.CheckTopic(topic) != nil || !strings.HasPrefix(topic, prefix) {
			return
		}
		if !ok || topic < lo || hi != "" && topic >= hi {
			t.Fatalf("prefixRange(%q) = %q, %q, %v: misses topic %q", prefix, lo, hi, ok, topic)
		}
	})
}

func TestNames(t *testing.T) {
	if got := channelName("statesync"); got != "statesync_statesync" {
		t.Errorf("channelName = %q", got)
	}
	// The longest name kept as it is: 53 bytes, a 63-byte channel.
	if fits := strings.Repeat("f", 53); channelName(fits) != "statesync_"+fits {
		t.Errorf("channelName(53 bytes) = %q; want it kept", channelName(fits))
	}
	if over := strings.Repeat("f", 54); channelName(over) == "statesync_"+over || len(channelName(over)) > 63 {
		t.Errorf("channelName(54 bytes) = %q; want a hashed name of at most 63 bytes", channelName(over))
	}
	long := strings.Repeat("s", 63)
	if got := channelName(long); len(got) > 63 || got == channelName(long[:62]) {
		t.Errorf("channelName(63 bytes) = %q; want at most 63 bytes, distinct", got)
	}
	for _, s := range []string{"a", "_x", "s_1", "z", "a09z", strings.Repeat("a", 63)} {
		if err := checkSchema(s); err != nil {
			t.Errorf("checkSchema(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "A", "1a", "pg_x", "a-b", "a\"b", strings.Repeat("a", 64), "é"} {
		if checkSchema(s) == nil {
			t.Errorf("checkSchema(%q) accepted", s)
		}
	}
	e := epochOf("m", 1, ident{"s", "t"})
	if len(e) != len(statesync.NewEpoch()) || e == epochOf("m", 2, ident{"s", "t"}) || e == epochOf("m", 1, ident{"s", "u"}) || e != epochOf("m", 1, ident{"s", "t"}) {
		t.Errorf("epochOf is not a 16-character function of its inputs: %q", e)
	}
}
