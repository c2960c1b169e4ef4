package redisstore

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		in, out string
		o       urlOptions
		err     string
	}{
		{in: "redis://h:1/0", out: "redis://h:1/0"},
		{in: "REDIS://h:1", out: "redis://h:1"},
		{in: "rediss://u:p@h:1/2?dial_timeout=1s", out: "rediss://u:p@h:1/2?dial_timeout=1s"},
		{in: "redis://h/0?prefix=app.x&feed_probe=1s&stream_maxlen=100&wait=2&wait_timeout=5ms&pool_size=3",
			out: "redis://h/0?pool_size=3",
			o:   urlOptions{prefix: "app.x", probe: time.Second, maxLen: 100, wait: 2, waitTimeout: 5 * time.Millisecond}},
		{in: "redis://h/0?feed_url=redis%3A%2F%2Fo%3A2%2F0", out: "redis://h/0", o: urlOptions{feedURL: "redis://o:2/0"}},
		{in: "redis://h/0?wait=100", out: "redis://h/0", o: urlOptions{wait: 100}},
		{in: "redis://h/0?feed_probe=10ms&wait_timeout=1ms", out: "redis://h/0", o: urlOptions{probe: 10 * time.Millisecond, waitTimeout: time.Millisecond}},
		{in: "http://h", err: "want a redis:// or rediss:// URL"},
		{in: "unix:///tmp/x", err: "want a redis://"},
		{in: "redis://h:badport", err: "invalid port"},
		{in: "redis://h/0?a=%zz", err: "query"},
		{in: "redis://h/0?prefix=", err: "option prefix must be given once, with a value"},
		{in: "redis://h/0?prefix=a&prefix=b", err: "option prefix must be given once"},
		{in: "redis://h/0?prefix=a%7Bb", err: "invalid prefix"},
		{in: "redis://h/0?feed_probe=9ms", err: "feed_probe=\"9ms\": want a duration of at least 10ms"},
		{in: "redis://h/0?feed_probe=x", err: "feed_probe"},
		{in: "redis://h/0?feed_url=", err: "option feed_url must be given once"},
		{in: "redis://h/0?stream_maxlen=99", err: "stream_maxlen=\"99\": want an integer of at least 100"},
		{in: "redis://h/0?stream_maxlen=x", err: "stream_maxlen"},
		{in: "redis://h/0?stream_maxlen=", err: "option stream_maxlen must be given once"},
		{in: "redis://h/0?wait=0", err: "wait=\"0\": want a number of replicas from 1 to 100"},
		{in: "redis://h/0?wait=101", err: "wait=\"101\""},
		{in: "redis://h/0?wait=x", err: "wait=\"x\""},
		{in: "redis://h/0?wait=", err: "option wait must be given once"},
		{in: "redis://h/0?wait_timeout=999us", err: "wait_timeout"},
	} {
		out, o, err := parseURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, errBadURL) && !strings.Contains(err.Error(), "prefix") {
				t.Errorf("parseURL(%q) error = %v; want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || out != tt.out || o != tt.o {
			t.Errorf("parseURL(%q) = %q, %+v, %v; want %q, %+v", tt.in, out, o, err, tt.out, tt.o)
		}
	}
}

// parseURL's errors never repeat the URL, which may hold a password.
func TestParseURLHidesPassword(t *testing.T) {
	for _, in := range []string{"redis://u:secret@h:x/0", "redis://u:secret@h/0?wait=x", "redis://u:secret@h/0?a=%zz",
		"redis://u:secret/x@h/0", "redis://u:secret?x@h/0", "redis://u:secret%zz@h/0"} {
		if _, _, err := parseURL(in); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("parseURL(%q) error = %v; want an error without the password", in, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"a", "A", "0", "Z9", "A-z_0.9:x", strings.Repeat("p", 64)} {
		if err := checkPrefix(p); err != nil {
			t.Errorf("checkPrefix(%q) = %v; want nil", p, err)
		}
	}
	for _, p := range []string{"", strings.Repeat("p", 65), "a{b", "a}b", "a b", "é", "a*", "a/b", "a@", "a[", "a`"} {
		if err := checkPrefix(p); err == nil {
			t.Errorf("checkPrefix(%q) = nil; want an error", p)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct {
		in, end string
		ok      bool
	}{
		{"a", "b", true},
		{"ab", "ac", true},
		{"a.", "a/", true},
		{"z", "{", true},
		{"Z9_:-", "Z9_:.", true},
		{"A", "B", true},
		{"0", "1", true},
		{"9", ":", true},
		{"x.A0", "x.A1", true},
		{"a b", "a c", true},
		{"a{", "a|", true},
		{"a*", "a+", true},
		{"[", "\\", true},
		{"caf\u00e9", "caf\xc3\xaa", true},
		{"a\xbf", "a\xc0", true}, // byte order: not valid UTF-8, no matter
		{"a\xff\xff", "b", true},
		{"\xff", "", false},
		{"", "", false},
	} {
		end, ok := prefixEnd(tt.in)
		if end != tt.end || ok != tt.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", tt.in, end, ok, tt.end, tt.ok)
		}
	}
}

func TestEpochOfReply(t *testing.T) {
	if got, want := epochOfReply("id", "repl"), epochOf("id", "repl"); got != want {
		t.Errorf("epochOfReply = %q; want %q", got, want)
	}
	if got, want := epochOfReply(nil, 3), epochOf("", ""); got != want {
		t.Errorf("epochOfReply(nil, 3) = %q; want %q", got, want)
	}
}

func TestEpochOf(t *testing.T) {
	e := epochOf("id", "repl")
	if len(e) != 16 || e != epochOf("id", "repl") {
		t.Errorf("epochOf = %q; want 16 stable characters", e)
	}
	for _, other := range []string{epochOf("id2", "repl"), epochOf("id", "repl2"), epochOf("idr", "epl"), epochOf("", "")} {
		if other == e {
			t.Errorf("epochOf collides: %q", e)
		}
	}
}

func TestFirst(t *testing.T) {
	if got := first(0, 2, 3); got != 2 {
		t.Errorf("first(0, 2, 3) = %d; want 2", got)
	}
	if got := first("", ""); got != "" {
		t.Errorf("first(\"\", \"\") = %q", got)
	}
	if got := first(1, 2); got != 1 {
		t.Errorf("first(1, 2) = %d", got)
	}
}

func TestMicroTime(t *testing.T) {
	if got := microTime("1700000000123456"); !got.Equal(time.UnixMicro(1700000000123456)) {
		t.Errorf("microTime = %v", got)
	}
	for _, v := range []any{nil, "", "x", 12} {
		if got := microTime(v); !got.IsZero() {
			t.Errorf("microTime(%v) = %v; want zero", v, got)
		}
	}
}

func TestIsNull(t *testing.T) {
	for in, want := range map[string]bool{"null": true, " null\n": true, "nul": false, `"null"`: false, "": false, "nulll": false} {
		if got := isNull([]byte(in)); got != want {
			t.Errorf("isNull(%q) = %v; want %v", in, got, want)
		}
	}
}

func validEntry() map[string]any {
	return map[string]any{"topic": "a.b", "rev": "17", "epoch": "E", "repl": "R", "us": "1700000000000000", "seq": "3", "src": "node"}
}

func TestDecodeEntry(t *testing.T) {
	e, err := decodeEntry(validEntry())
	want := entry{topic: "a.b", rev: 17, epochID: "E", replid: "R", micros: 1700000000000000, seq: 3, src: "node"}
	if err != nil || e != want {
		t.Fatalf("decodeEntry = %+v, %v; want %+v", e, err, want)
	}
	empty := validEntry()
	empty["src"] = ""
	if e, err := decodeEntry(empty); err != nil || e.src != "" {
		t.Errorf("decodeEntry with an empty source id = %+v, %v", e, err)
	}
	for _, tt := range []struct{ field, value, why string }{
		{"topic", "", "topic"}, {"topic", "a\nb", "topic"}, {"topic", "..", "topic"},
		{"rev", "", "revision"}, {"rev", "0", "revision"}, {"rev", "01", "revision"}, {"rev", "-1", "revision"},
		{"epoch", "", "epoch"},
		{"us", "", "time"}, {"us", "x", "time"},
		{"seq", "", "sequence number"}, {"seq", "0", "sequence number"}, {"seq", "-2", "sequence number"},
	} {
		v := validEntry()
		v[tt.field] = tt.value
		if _, err := decodeEntry(v); err == nil || !strings.Contains(err.Error(), "("+tt.why+")") {
			t.Errorf("decodeEntry(%s=%q) error = %v; want a bad %s", tt.field, tt.value, err, tt.why)
		}
		delete(v, tt.field)
		if _, err := decodeEntry(v); err == nil {
			t.Errorf("decodeEntry without %s: no error", tt.field)
		}
	}
	for field, why := range map[string]string{"src": "source id", "repl": "replication id"} {
		v := validEntry()
		delete(v, field)
		if _, err := decodeEntry(v); err == nil || !strings.Contains(err.Error(), "("+why+")") {
			t.Errorf("decodeEntry without %s: error %v", field, err)
		}
		v = validEntry()
		v[field] = ""
		if _, err := decodeEntry(v); err != nil {
			t.Errorf("decodeEntry with an empty %s: %v", field, err)
		}
	}
	v := validEntry()
	v["rev"] = 17
	if _, err := decodeEntry(v); err == nil {
		t.Errorf("decodeEntry with a non-string revision: no error")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add("a.b", "17", "E", "R", "1700000000000000", "3", "node")
	f.Add("", "0", "", "", "x", "0", "")
	f.Add("a", "18446744073709551615", "e", "r", "-1", "18446744073709551615", "|")
	f.Fuzz(func(t *testing.T, topic, rev, epoch, repl, us, seq, src string) {
		e, err := decodeEntry(map[string]any{"topic": topic, "rev": rev, "epoch": epoch, "repl": repl, "us": us, "seq": seq, "src": src})
		if err != nil {
			return
		}
		if e.topic != topic || statesync.CheckTopic(topic) != nil || e.rev == 0 || e.seq == 0 || e.epochID != epoch || e.replid != repl || e.src != src {
			t.Errorf("decodeEntry accepted %q %q %q %q %q %q %q as %+v", topic, rev, epoch, repl, us, seq, src, e)
		}
		if e.rev.String() != rev {
			t.Errorf("revision %q decoded as %d", rev, e.rev)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	f.Add("redis://h:1/0?prefix=a&feed_probe=1s&stream_maxlen=100&wait=1&wait_timeout=1s&feed_url=redis%3A%2F%2Fx")
	f.Add("rediss://u:p@h/0?pool_size=3")
	f.Add("redis://h/0?prefix=a%7B")
	f.Fuzz(func(t *testing.T, in string) {
		out, o, err := parseURL(in)
		if err != nil {
			return
		}
		if o.prefix != "" && checkPrefix(o.prefix) != nil {
			t.Errorf("parseURL(%q) accepted prefix %q", in, o.prefix)
		}
		if o.probe != 0 && o.probe < minProbeInterval || o.maxLen != 0 && o.maxLen < minStreamMaxLen || o.wait < 0 || o.wait > maxWaitReplicas {
			t.Errorf("parseURL(%q) accepted %+v", in, o)
		}
		// What go-redis gets holds none of our options.
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("parseURL(%q) = %q, not a URL: %v", in, out, err)
		}
		for _, k := range []string{optPrefix, optProbe, optFeedURL, optMaxLen, optWait, optWaitTimeout} {
			if u.Query().Has(k) {
				t.Errorf("parseURL(%q) = %q, which still has option %s", in, out, k)
			}
		}
		if out2, o2, err := parseURL(out); err == nil && (out2 != out || o2 != (urlOptions{})) {
			t.Errorf("parseURL(%q) = %q, which parses as %q, %+v", in, out, out2, o2)
		}
	})
}

// FuzzPrefixEnd: every member starting with the prefix lies in the range
// [prefix, end) that ListPrefix reads (Redis compares members as bytes).
func FuzzPrefixEnd(f *testing.F) {
	f.Add("caf\u00e9", "caf\u00e9 cr\u00e8me")
	f.Add("a\xff", "a\xff\xff")
	f.Add("caf\xc3", "caf\u00e9")
	f.Fuzz(func(t *testing.T, prefix, member string) {
		if !strings.HasPrefix(member, prefix) {
			return
		}
		end, ok := prefixEnd(prefix)
		if ok && member >= end {
			t.Fatalf("prefixEnd(%q) = %q: member %q is past it", prefix, end, member)
		}
		if !ok && prefix != strings.Repeat("\xff", len(prefix)) {
			t.Fatalf("prefixEnd(%q) has no end", prefix)
		}
	})
}
