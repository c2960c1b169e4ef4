package storeurl_test

import (
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/storeurl"
)

var errBad = errors.New("xstore: invalid store URL")

func TestParse(t *testing.T) {
	u, q, err := storeurl.Parse("redis://u:secret@h:1/0?a=b&c=d", errBad)
	if err != nil || u.String() != "redis://u:secret@h:1/0?a=b&c=d" {
		t.Fatalf("Parse = %v, %v; want the URL", u, err)
	}
	if a, err := q.Take("a"); err != nil || a != "b" || q.Rest().Encode() != "c=d" {
		t.Errorf("Parse: Take(a) = %q, %v, rest %v; want b and c=d left", a, err, q.Rest())
	}
	for _, tt := range []struct{ in, want string }{
		// The message of url.Parse, without the URL.
		{"redis://h:badport", `xstore: invalid store URL: invalid port ":badport" after host`},
		{"postgres://u:secret@h:bad port/db", `xstore: invalid store URL: invalid port ":bad port" after host`},
		{"postgres://u:p@h%zz/db", `xstore: invalid store URL: invalid URL escape "%zz"`},
		{"postgres://u:p@h h/db", `xstore: invalid store URL: invalid character " " in host name`},
		{"postgres://u:pa ss@h/db", "xstore: invalid store URL: net/url: invalid userinfo"},
		{"postgres://u:p@[::1/db", "xstore: invalid store URL: missing ']' in host"},
		// The query's.
		{"postgres://u:secret@h/db?a=%zz", `xstore: invalid store URL: query: a % not followed by two hex digits (write a % in a value as %25)`},
	} {
		u, q, err := storeurl.Parse(tt.in, errBad)
		if !errors.Is(err, errBad) || err.Error() != tt.want || u != nil || q != nil {
			t.Errorf("Parse(%q) = %v, %v, %v; want %q", tt.in, u, q, err, tt.want)
		}
	}
}

// A password holding an unescaped / ? # or % makes url.Parse quote a piece
// of it: that message is hidden. The URL itself is never in an error.
func TestParseHidesPassword(t *testing.T) {
	for _, in := range []string{
		"postgres://user:secret/x@h/db",  // url: invalid port ":secret"
		"postgres://user:secret#x@h/db",  // the same, the URL cut at #
		"redis://user:secret?x@h/0",      // the same, the URL cut at ?
		"postgres://u:secret%zz@h/db",    // url: invalid URL escape "%zz"
		"postgres://u:secret@h:bad port", // a bad port: its message stays, without the URL
		"nats://u:secret@h\x7f",          // a control character
	} {
		_, _, err := storeurl.Parse(in, errBad)
		if !errors.Is(err, errBad) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "zz") {
			t.Errorf("Parse(%q) error = %v; want an invalid-URL error without the password", in, err)
		}
		if strings.Contains(in, "/x@") && !strings.Contains(err.Error(), "percent-encode") {
			t.Errorf("Parse(%q) error = %v; want the hint", in, err)
		}
	}
}

func TestQuery(t *testing.T) {
	q, err := storeurl.ParseQuery("a=1&d=250ms&e=10ms&x=y&x=z&empty=&plain", errBad)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key, want string
		err       string
	}{
		{key: "a", want: "1"},
		{key: "a"}, // taken
		{key: "absent"},
		{key: "x", err: "xstore: invalid store URL: option x must be given once, with a value"},
		{key: "empty", err: "xstore: invalid store URL: option empty must be given once, with a value"},
		{key: "plain", err: "option plain must be given once"},
	} {
		got, err := q.Take(tt.key)
		if tt.err != "" {
			if !errors.Is(err, errBad) || !strings.Contains(err.Error(), tt.err) || got != "" {
				t.Errorf("Take(%q) = %q, %v; want an error containing %q", tt.key, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Take(%q) = %q, %v; want %q", tt.key, got, err, tt.want)
		}
	}
	if d, err := q.Duration("d", 10*time.Millisecond); err != nil || d != 250*time.Millisecond {
		t.Errorf("Duration(d) = %v, %v; want 250ms", d, err)
	}
	if d, err := q.Duration("e", 10*time.Millisecond); err != nil || d != 10*time.Millisecond {
		t.Errorf("Duration(e) at the floor = %v, %v; want 10ms", d, err)
	}
	if d, err := q.Duration("d", time.Second); err != nil || d != 0 {
		t.Errorf("Duration of a taken option = %v, %v; want 0, nil", d, err)
	}
	if got := q.Rest(); len(got) != 0 {
		t.Errorf("Rest() = %v; want nothing left", got)
	}
}

func TestQueryDurationErrors(t *testing.T) {
	for _, tt := range []struct{ query, want string }{
		{"p=9ms", `xstore: invalid store URL: p="9ms": want a duration of at least 10ms, such as 5s`},
		{"p=x", `xstore: invalid store URL: p="x": want a duration of at least 10ms, such as 5s`},
		{"p=-1s", `p="-1s": want a duration of at least 10ms`},
		{"p=", "xstore: invalid store URL: option p must be given once, with a value"},
		{"p=1s&p=2s", "option p must be given once"},
	} {
		q, err := storeurl.ParseQuery(tt.query, errBad)
		if err != nil {
			t.Fatal(err)
		}
		d, err := q.Duration("p", 10*time.Millisecond)
		if !errors.Is(err, errBad) || !strings.Contains(err.Error(), tt.want) || d != 0 {
			t.Errorf("Duration(p) of %q = %v, %v; want an error containing %q", tt.query, d, err, tt.want)
		}
	}
}

func TestQueryRest(t *testing.T) {
	q, err := storeurl.ParseQuery("mine=1&sslmode=disable&pool=4&pool=5", errBad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Take("mine"); err != nil {
		t.Fatal(err)
	}
	want := url.Values{"sslmode": {"disable"}, "pool": {"4", "5"}}
	if got := q.Rest(); !reflect.DeepEqual(got, want) {
		t.Errorf("Rest() = %v; want %v", got, want)
	}
	if got := q.Rest().Encode(); got != "pool=4&pool=5&sslmode=disable" {
		t.Errorf("Rest().Encode() = %q", got)
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"password=se%zzcret", `xstore: invalid store URL: query: a % not followed by two hex digits (write a % in a value as %25)`},
		{"a=1;b=2", "xstore: invalid store URL: query: invalid semicolon separator in query"},
	} {
		q, err := storeurl.ParseQuery(tt.in, errBad)
		if !errors.Is(err, errBad) || err.Error() != tt.want || q != nil {
			t.Errorf("ParseQuery(%q) = %v, %v; want %q", tt.in, q, err, tt.want)
		}
	}
}

// FuzzParse: Parse never panics, and a password, correctly escaped or not,
// never shows in an error, whatever the rest of the URL holds.
func FuzzParse(f *testing.F) {
	for _, s := range [][2]string{
		{"secret", "h:5432/db?schema=s"},
		{"se/cret", "h/db"},
		{"se#cr?et", "h:bad port/db"},
		{"secret%zz", "h%zz/db"},
		{"secret", "[::1/db"},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	_, _, hint := storeurl.Parse("p://u:pw/x@h", errBad)
	f.Fuzz(func(t *testing.T, password, rest string, escape bool) {
		if len(password) < 4 || strings.Trim(password, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ") == "" ||
			strings.Contains(strconv.Quote(rest), password) || strings.Contains(rest, password) || strings.Contains(hint.Error(), password) {
			return // could be the message's own words, or is in the rest
		}
		raw := "postgres://user:" + password + "@" + rest
		if escape {
			raw = "postgres://" + url.UserPassword("user", password).String() + "@" + rest
		}
		u, q, err := storeurl.Parse(raw, errBad)
		if err != nil {
			if !errors.Is(err, errBad) || strings.Contains(err.Error(), password) {
				t.Fatalf("Parse(%q) error = %v; want an invalid-URL error without the password", raw, err)
			}
			return
		}
		if u == nil || q == nil {
			t.Fatalf("Parse(%q) = %v, %v, nil", raw, u, q)
		}
		for _, k := range []string{"schema", "feed_probe"} {
			v, err := q.Take(k)
			if err == nil && q.Rest().Has(k) || err == nil && v == "" && u.Query().Has(k) {
				t.Fatalf("Take(%q) on %q = %q, %v; rest %v", k, u.RawQuery, v, err, q.Rest())
			}
		}
	})
}

// FuzzQuery: options taken from any query are given once with a value, or
// an error; durations are at least the floor; the rest holds no taken option.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"a=1&d=1s", "a=&d=x", "a=1&a=2&d=9ms", "d=%zz", "x=1;y=2", "a=%2F&d=10ms&r=1&r=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := storeurl.ParseQuery(raw, errBad)
		if err != nil {
			if !errors.Is(err, errBad) {
				t.Fatalf("ParseQuery(%q) error = %v; want it to wrap errBad", raw, err)
			}
			return
		}
		all, _ := url.ParseQuery(raw)
		a, err := q.Take("a")
		if ok := len(all["a"]) == 1 && all["a"][0] != ""; ok != (err == nil && a != "") || a != "" && a != all["a"][0] {
			t.Errorf("Take(a) on %q = %q, %v", raw, a, err)
		}
		d, err := q.Duration("d", 10*time.Millisecond)
		if err == nil && d != 0 && d < 10*time.Millisecond || err != nil && !errors.Is(err, errBad) {
			t.Errorf("Duration(d) on %q = %v, %v", raw, d, err)
		}
		if q.Rest().Has("a") || q.Rest().Has("d") || len(q.Rest())+btoi(all.Has("a"))+btoi(all.Has("d")) != len(all) {
			t.Errorf("Rest() on %q = %v", raw, q.Rest())
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
