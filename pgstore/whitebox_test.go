package pgstore

import (
	"net/url"
	"strings"
	"testing"

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
		{"w|1|5|m|1|bad topic|=", payload{}, false},
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
	for _, s := range []string{"w|17|1700000000000000|meta|16384|a.b|=node-1", "w|1|5|m|1|a|+", "p|x", "e", "w||||||", "w|1|5|m|1|a|=\xff"} {
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
	_, _, err = parseURL("postgres://u:secret@h:bad port/db")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("parseURL of a bad URL: error %v; want one without the password", err)
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

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"a": "b", "a.": "a/", "z": "{", "Z9": "Z:", "a_": "a`", "x-": "x."} {
		if got, ok := prefixEnd(in); !ok || got != want {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"%", "a b", "é", "a\x00"} {
		if _, ok := prefixEnd(in); ok {
			t.Errorf("prefixEnd(%q) ok; want no topic to match", in)
		}
	}
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
