package httpsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

func TestParseIfMatch(t *testing.T) {
	good := map[string]precondition{
		`*`:                      {any: true},
		`"0"`:                    {rev: 0},
		`"42"`:                   {rev: 42},
		` "42" `:                 {rev: 42},
		`"ep.42"`:                {rev: 42, epoch: "ep", hasEpoch: true},
		`"a.b.7"`:                {rev: 7, epoch: "a.b", hasEpoch: true},
		`"k7Qx-_A.1"`:            {rev: 1, epoch: "k7Qx-_A", hasEpoch: true},
		`"18446744073709551615"`: {rev: statesync.MaxRevision},
	}
	for in, want := range good {
		if got, err := parseIfMatch(in); err != nil || got != want {
			t.Errorf("parseIfMatch(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{``, `42`, `"042"`, `"-1"`, `"+1"`, `"1 "`, `W/"1"`, `"1","2"`, `"1", "2"`, `""`, `"."`, `".1"`, `"e."`,
		`"18446744073709551616"`, `"e.x"`, `"1`, `1"`, `**`, `"a"b.1"`} {
		if got, err := parseIfMatch(in); err == nil {
			t.Errorf("parseIfMatch(%q) = %+v; want an error", in, got)
		}
	}
}

func TestNoneMatch(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{`"e.1"`, true}, {`W/"e.1"`, true}, {`*`, true}, {`"a", "e.1"`, true}, {`"a",W/"e.1"`, true},
		{`"e.2"`, false}, {`e.1`, false}, {`"e.1`, false}, {``, false}, {`"a", garbage, "e.1"`, false}, {`,,`, false},
	} {
		if got := noneMatch(tc.header, `"e.1"`); got != tc.want {
			t.Errorf("noneMatch(%q, \"e.1\") = %v; want %v", tc.header, got, tc.want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"gzip": true, "GZIP": true, "deflate, gzip;q=0.5": true, "x-gzip": true, "*": true, "br, *;q=0.1": true,
		"": false, "identity": false, "gzip;q=0": false, "gzip; q=0.000": false, "*;q=0": false, "gzip;q=x": false, "br": false,
		"*, gzip;q=0": false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v; want %v", header, got, want)
		}
	}
}

// FuzzIfMatch: whatever If-Match parses formats back to itself, and the
// parsed revision is canonical.
func FuzzIfMatch(f *testing.F) {
	for _, s := range []string{`*`, `"0"`, `"ep.42"`, `W/"1"`, `"1", "2"`, `"a.b.c.9"`, `"007"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := parseIfMatch(in)
		if err != nil {
			return
		}
		if p.any {
			if strings.TrimSpace(in) != "*" {
				t.Fatalf("parseIfMatch(%q) = any", in)
			}
			return
		}
		epoch := ""
		if p.hasEpoch {
			epoch = p.epoch
			if epoch == "" {
				t.Fatalf("parseIfMatch(%q): empty epoch", in)
			}
		}
		if got := etag(epoch, p.rev); got != strings.TrimSpace(in) {
			t.Fatalf("parseIfMatch(%q) = %+v, which formats as %s", in, p, got)
		}
		if _, err := statesync.ParseRevision(p.rev.String()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzHeaders: the If-None-Match and Accept-Encoding parsers never panic,
// and an If-None-Match holding the tag always matches.
func FuzzHeaders(f *testing.F) {
	f.Add(`"a", W/"e.1"`, "gzip;q=0.5, *")
	f.Fuzz(func(t *testing.T, inm, ae string) {
		_ = acceptsGzip(ae)
		_ = noneMatch(inm, `"e.1"`)
		if !noneMatch(`"e.1", `+inm, `"e.1"`) {
			t.Fatalf("noneMatch(%q) with the tag first = false", `"e.1", `+inm)
		}
	})
}

// readAll parses a whole stream, returning its events (not comments).
func readAll(t testing.TB, in []byte, max int) ([]sseEvent, error) {
	p := newSSEReader(bytes.NewReader(in), max)
	var out []sseEvent
	for {
		ev, err := p.next()
		if err != nil {
			return out, err
		}
		if len(ev.data) > max {
			t.Fatalf("event data of %d bytes; limit %d", len(ev.data), max)
		}
		if !ev.comment {
			ev.data = bytes.Clone(ev.data)
			out = append(out, ev)
		}
	}
}

func TestSSEReader(t *testing.T) {
	in := "\xEF\xBB\xBFretry: 1500\n\n: hi\r\nevent: invalidation\r\ndata: {\"a\":\r\ndata:1}\r\rid: 7\n\n" +
		"data\n\nevent: x\nid: \x00\nfoo: bar\ndata:  two spaces\n\nevent: lost\n\ndata: unfinished"
	p := newSSEReader(strings.NewReader(in), 1<<10)
	var got []sseEvent
	comments := 0
	for {
		ev, err := p.next()
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.comment {
			comments++
			continue
		}
		ev.data = bytes.Clone(ev.data)
		got = append(got, ev)
	}
	want := []sseEvent{
		{typ: "invalidation", data: []byte("{\"a\":\n1}"), id: ""},
		{typ: "message", data: []byte(""), id: "7"},
		{typ: "x", data: []byte(" two spaces"), id: "7"},
	}
	if len(got) != len(want) {
		t.Fatalf("events = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i].typ != want[i].typ || string(got[i].data) != string(want[i].data) || got[i].id != want[i].id {
			t.Errorf("event %d = %q %q id %q; want %q %q id %q", i, got[i].typ, got[i].data, got[i].id, want[i].typ, want[i].data, want[i].id)
		}
	}
	if comments != 1 || p.retry != 1500*time.Millisecond {
		t.Errorf("comments = %d, retry = %v; want 1 and 1.5s", comments, p.retry)
	}
	if _, err := readAll(t, []byte("data: "+strings.Repeat("x", 100)+"\n\n"), 50); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("over-long line: %v; want errFrameTooLarge", err)
	}
	if _, err := readAll(t, []byte(strings.Repeat("data: xxxxxxxxxx\n", 10)+"\n"), 50); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("over-long event: %v; want errFrameTooLarge", err)
	}
}

// FuzzSSEReader: any input parses without panic within its limits, and
// events written the way the Handler writes them (JSON split over data
// lines at its line breaks) read back as the same JSON.
func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("event: invalidation\ndata: {\"topic\":\"a\",\"revision\":\"1\"}\n\n: heartbeat\n\n"), []byte("{\n\"a\" :\r\n[1,\r2]}"))
	f.Add([]byte("\r\r\n\n:\ndata\ndata:\n\n"), []byte(`"x"`))
	f.Fuzz(func(t *testing.T, stream, doc []byte) {
		_, _ = readAll(t, stream, 256)
		if !json.Valid(doc) {
			return
		}
		var frame []byte
		frame = append(frame, "event: snapshot\ndata: "...)
		frame = appendDataLines(frame, doc)
		frame = append(frame, "\n\n"...)
		evs, err := readAll(t, frame, len(frame)+1)
		if err != io.EOF || len(evs) != 1 {
			t.Fatalf("frame %q read as %d events, %v", frame, len(evs), err)
		}
		// Only white space between tokens may differ (a CR read back as LF).
		var a, b bytes.Buffer
		_ = json.Compact(&a, doc)
		if err := json.Compact(&b, evs[0].data); err != nil || evs[0].typ != "snapshot" || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("document %q framed as %q read back as %q %q (%v)", doc, frame, evs[0].typ, evs[0].data, err)
		}
	})
}

// FuzzParseTokens: a token file either fails or yields tokens that each
// authenticate with exactly their own grants.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(`{"tokens":[{"token":"a","read":["x","c:*"],"write":["*"]}]}`))
	f.Add([]byte(`{"tokens":[{"token":"a"},{"token":"b","read":["*"]}]}`))
	f.Add([]byte(`{"tokens":[{"token":"a","read":["a\\\\*","caf\u00e9/*","\\\\\\\\*"]}]}`))
	f.Fuzz(func(t *testing.T, file []byte) {
		toks, err := ParseTokens(bytes.NewReader(file))
		if err != nil {
			return
		}
		var tf TokenFile
		if err := json.Unmarshal(file, &tf); err != nil {
			t.Fatalf("ParseTokens accepted %q, which json.Unmarshal refuses: %v", file, err)
		}
		if toks.Len() != len(tf.Tokens) {
			t.Fatalf("Len() = %d; the file has %d tokens", toks.Len(), len(tf.Tokens))
		}
		for _, spec := range tf.Tokens {
			r, _ := httpNewRequest(spec.Token)
			g, err := toks.Authenticate(r)
			if err != nil {
				t.Fatalf("token %q of the file: %v", spec.Token, err)
			}
			for _, p := range spec.Read {
				topic, prefix, err := parsePattern(p)
				if err != nil {
					t.Fatalf("ParseTokens accepted pattern %q, which parsePattern refuses: %v", p, err)
				}
				if prefix {
					topic += "any"
				}
				if !g.CanRead(topic) {
					t.Fatalf("token %q cannot read %q despite pattern %q", spec.Token, topic, p)
				}
			}
		}
	})
}

func httpNewRequest(token string) (*http.Request, error) {
	r, err := http.NewRequest("GET", "http://x/v1/topics", nil)
	if err == nil {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r, err
}

// FuzzAppendQuoted: appendQuoted writes what json.Marshal writes.
func FuzzAppendQuoted(f *testing.F) {
	for _, s := range []string{"", "config", "a\"b", "<&>", "é", "\x00\n", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendQuoted([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("appendQuoted(%q) = %s; want x%s", s, got, want)
		}
	})
}

// escapePattern is the pattern of topic (of every topic starting with it,
// if prefix): '*' and '\' escaped with '\'.
func escapePattern(topic string, prefix bool) string {
	p := strings.NewReplacer(`\`, `\\`, `*`, `\*`).Replace(topic)
	if prefix {
		p += "*"
	}
	return p
}

// FuzzParsePattern: a grant pattern stands for one name, written one way
// (escaping is a bijection), and every valid topic, '*' and '\' included,
// can be granted alone or as a prefix.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"settings", "cache:*", "*", `a\*`, `a\**`, `\\`, `\\*`, `a*b`, `a\b`, `\`, "**", "café/*", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if name, prefix, err := parsePattern(s); err == nil {
			if back := escapePattern(name, prefix); back != s {
				t.Fatalf("parsePattern(%q) = %q, %v; written back as %q", s, name, prefix, back)
			}
			if !prefix && statesync.CheckTopic(name) != nil {
				t.Fatalf("parsePattern(%q) = invalid topic %q", s, name)
			}
		}
		if statesync.CheckTopic(s) != nil {
			return
		}
		for _, prefix := range []bool{false, true} {
			name, gotPrefix, err := parsePattern(escapePattern(s, prefix))
			if err != nil || name != s || gotPrefix != prefix {
				t.Fatalf("parsePattern(%q) = %q, %v, %v; want %q, %v", escapePattern(s, prefix), name, gotPrefix, err, s, prefix)
			}
			ps, err := parsePatterns([]string{escapePattern(s, prefix)})
			if err != nil || !ps.match(s) || ps.match(s+"x") != prefix {
				t.Fatalf("pattern %q: match(%q) = %v, match(%q) = %v; want true, %v", escapePattern(s, prefix), s, ps.match(s), s+"x", ps.match(s+"x"), prefix)
			}
		}
	})
}
