package natsstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/statesync-go/statesync"
)

func TestKeyEncoding(t *testing.T) {
	for _, tt := range []struct{ topic, key string }{
		{"abc", "abc"},
		{"A-z_09", "A-z_09"},
		{"AZaz09_-", "AZaz09_-"},
		{"orders.eu:1", "orders=2Eeu=3A1"},
		{"a b/c=d", "a=20b=2Fc=3Dd"},
		{"é", "=C3=A9"},
		{"\x00\xff", "=00=FF"},
		{".", "=2E"},
		{"", ""},
	} {
		if got := encodeKey(tt.topic); got != tt.key {
			t.Errorf("encodeKey(%q) = %q; want %q", tt.topic, got, tt.key)
		}
		if tt.topic == "" {
			continue
		}
		if got, ok := decodeKey(tt.key); !ok || got != tt.topic {
			t.Errorf("decodeKey(%q) = %q, %v; want %q, true", tt.key, got, ok, tt.topic)
		}
	}
	for _, key := range []string{"", "a.b", "=", "=2", "a=2e", "=41", "=4G", "=G0", "a b", "=2E=", "x=", "é", "a/b", "=3"} {
		if got, ok := decodeKey(key); ok {
			t.Errorf("decodeKey(%q) = %q, true; want false", key, got)
		}
	}
	// Every byte value: escaped unless it stands for itself.
	for c := range 256 {
		b := byte(c)
		k := encodeKey(string([]byte{b}))
		if plain(b) != (len(k) == 1) {
			t.Errorf("encodeKey(%q) = %q", b, k)
		}
		if got, ok := decodeKey(k); !ok || got != string([]byte{b}) {
			t.Errorf("decodeKey(%q) = %q, %v", k, got, ok)
		}
	}
}

// validKey reports whether key is a valid NATS KV key made of the
// characters every key may hold.
func validKey(key string) bool {
	if key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(plain(c) || c == '=' || c == '/' || c == '.') {
			return false
		}
	}
	return true
}

func FuzzKeyRoundTrip(f *testing.F) {
	for _, s := range []string{"a", "orders.eu:1", "a b", "é/=", "\x00", "=41", "a=2Eb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := encodeKey(s)
		if s != "" {
			if !validKey(k) || strings.Contains(k, ".") {
				t.Fatalf("encodeKey(%q) = %q: not a one-token key", s, k)
			}
			if got, ok := decodeKey(k); !ok || got != s {
				t.Fatalf("decodeKey(encodeKey(%q)) = %q, %v", s, got, ok)
			}
		}
		// s as a key: decoded only if it is one encodeKey makes.
		if d, ok := decodeKey(s); ok {
			if encodeKey(d) != s {
				t.Fatalf("decodeKey(%q) = %q, whose key is %q", s, d, encodeKey(d))
			}
		}
	})
}

func TestParseURL(t *testing.T) {
	o, err := parseURL("nats://u:p@h1:4222,h2:4223,tls://h3?bucket=b-1&replicas=3&feed_probe=2s&timeout=3s&feed_url=nats%3A%2F%2Fp%3A1&creds=%2Fc&token=tk&tls_ca=ca&tls_cert=c&tls_key=k")
	if err != nil {
		t.Fatal(err)
	}
	want := urlOptions{servers: "nats://u:p@h1:4222,nats://h2:4223,tls://h3", bucket: "b-1", replicas: 3, probe: 2 * time.Second,
		timeout: 3 * time.Second, feedURL: "nats://p:1", creds: "/c", token: "tk", tlsCA: "ca", tlsCert: "c", tlsKey: "k"}
	if o != want {
		t.Errorf("parseURL = %+v;\nwant %+v", o, want)
	}
	o, err = parseURL("TLS://h")
	if err != nil || o != (urlOptions{servers: "tls://h"}) {
		t.Errorf("parseURL(TLS://h) = %+v, %v", o, err)
	}
	for _, raw := range []string{
		"", "?bucket=x", "h:4222", "http://h", "nats://h,http://g", "nats://", "nats://:4222", "nats://h/path", "nats://h#f",
		"nats://h:0", "nats://h:65536", "nats://h:x",
		"nats://h?bucket=", "nats://h?bucket=a&bucket=b", "nats://h?bucket=a.b", "nats://h?replicas=0", "nats://h?replicas=6",
		"nats://h?replicas=x", "nats://h?feed_probe=1ms", "nats://h?feed_probe=x", "nats://h?timeout=0s", "nats://h?tls_cert=c",
		"nats://h?tls_key=k", "nats://h?feed_url=http%3A%2F%2Fx", "nats://h?zzz=1", "nats://h?a=%zz",
	} {
		if o, err := parseURL(raw); !errors.Is(err, errBadURL) {
			t.Errorf("parseURL(%q) = %+v, %v; want an invalid-URL error", raw, o, err)
		}
	}
	// Errors never repeat the URL's secrets.
	for _, raw := range []string{"nats://user:secret@h?zzz=1", "nats://h?token=secret&replicas=9", "nats://user:secret@h:99999", "nats://h1,user:secret://x@h2"} {
		if _, err := parseURL(raw); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("parseURL(%q) error %v; want one without the secret", raw, err)
		}
	}
	// The boundaries.
	for _, raw := range []string{"nats://h:1", "nats://h:65535", "nats://h?replicas=1", "nats://h?replicas=5", "nats://h?feed_probe=10ms",
		"nats://h?bucket=" + strings.Repeat("a", 64)} {
		if _, err := parseURL(raw); err != nil {
			t.Errorf("parseURL(%q) error %v", raw, err)
		}
	}
	if _, err := parseURL("nats://h?bucket=" + strings.Repeat("a", 65)); err == nil {
		t.Error("a 65-character bucket name accepted")
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"nats://h:4222?bucket=b", "nats://u:p@h1,h2?replicas=3&feed_probe=1s", "tls://h?tls_cert=a&tls_key=b", "nats://h?feed_url=nats%3A%2F%2Fx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, err := parseURL(raw)
		if err != nil {
			return
		}
		if o.servers == "" || (o.bucket != "" && checkBucket(o.bucket) != nil) || o.replicas < 0 || o.replicas > maxReplicas ||
			(o.probe != 0 && o.probe < minProbeInterval) || (o.timeout != 0 && o.timeout < minProbeInterval) {
			t.Fatalf("parseURL(%q) = %+v", raw, o)
		}
		for _, s := range strings.Split(o.servers, ",") {
			if !strings.HasPrefix(s, "nats://") && !strings.HasPrefix(s, "tls://") {
				t.Fatalf("parseURL(%q): server %q", raw, s)
			}
		}
	})
}

func TestDecodeMsgGet(t *testing.T) {
	hdr := base64Header(t, nats.Header{SourceHeader: []string{"w1"}})
	m, err := decodeMsgGet([]byte(`{"message":{"subject":"$KV.b.k","seq":42,"hdrs":"` + hdr + `","data":"bnVsbA==","time":"2026-01-02T03:04:05.000000006Z"}}`))
	if err != nil || m == nil {
		t.Fatalf("decodeMsgGet = %v, %v", m, err)
	}
	if m.seq != 42 || string(m.data) != "null" || m.header.Get(SourceHeader) != "w1" || !m.time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)) {
		t.Errorf("decodeMsgGet = %+v", m)
	}
	m, err = decodeMsgGet([]byte(`{"message":{"seq":7,"data":"eA=="}}`))
	if err != nil || m.seq != 7 || m.header != nil || string(m.data) != "x" {
		t.Errorf("decodeMsgGet without a header = %+v, %v", m, err)
	}
	if m, err := decodeMsgGet([]byte(`{"error":{"code":404,"err_code":10037,"description":"no message found"}}`)); m != nil || err != nil {
		t.Errorf("no message: %v, %v; want nil, nil", m, err)
	}
	if _, err := decodeMsgGet([]byte(`{"error":{"code":404,"err_code":10059,"description":"stream not found"}}`)); !errors.Is(err, errNoStream) {
		t.Errorf("no stream: %v; want errNoStream", err)
	}
	for _, b := range []string{`{"error":{"code":500,"err_code":10001,"description":"boom"}}`, `{}`, `{"message":{"seq":0}}`, `x`,
		`{"message":{"seq":1,"hdrs":"eA=="}}`} {
		if m, err := decodeMsgGet([]byte(b)); err == nil {
			t.Errorf("decodeMsgGet(%s) = %+v, nil; want an error", b, m)
		}
	}
	_, err = decodeMsgGet([]byte(`{"error":{"code":500,"err_code":10001,"description":"boom"}}`))
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "10001") {
		t.Errorf("server error = %v; want its code and description", err)
	}
}

func base64Header(t testing.TB, h nats.Header) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b64([]byte(b.String()))
}

func FuzzDecodeMsgGet(f *testing.F) {
	f.Add([]byte(`{"message":{"seq":1,"data":"eA==","hdrs":"TkFUUy8xLjANCkE6IGINCg0K"}}`))
	f.Add([]byte(`{"error":{"err_code":10037}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMsgGet(b)
		if err == nil && m != nil && m.seq == 0 {
			t.Fatalf("decodeMsgGet(%q) = a message of sequence 0", b)
		}
	})
}

func TestEpochOf(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	e := epochOf("KV_a", t0)
	if len(e) != 16 {
		t.Errorf("epoch %q; want 16 characters", e)
	}
	if epochOf("KV_a", t0.In(time.FixedZone("x", 3600))) != e {
		t.Error("the epoch depends on the time zone")
	}
	for _, other := range []string{epochOf("KV_b", t0), epochOf("KV_a", t0.Add(time.Nanosecond)), epochOf("KV_a\x00", t0)} {
		if other == e {
			t.Errorf("epochs of different streams are equal: %q", e)
		}
	}
}

func TestFirstSeq(t *testing.T) {
	if got := firstSeq(time.UnixMicro(1_700_000_000_000_123)); got != 1_700_000_000_000_123 {
		t.Errorf("firstSeq = %d", got)
	}
	if got := firstSeq(time.Unix(0, 0)); got != 1 {
		t.Errorf("firstSeq(1970) = %d; want 1", got)
	}
}

func TestIsWrongLastSeq(t *testing.T) {
	for code, want := range map[jetstream.ErrorCode]bool{
		jetstream.JSErrCodeStreamWrongLastSequence:         true,
		jetstream.JSErrCodeStreamWrongLastSequenceConstant: true,
		jetstream.JSErrCodeStreamNotFound:                  false,
	} {
		err := fmtWrap(&jetstream.APIError{ErrorCode: code})
		if got := isWrongLastSeq(err); got != want {
			t.Errorf("isWrongLastSeq(code %d) = %v", code, got)
		}
	}
	if isWrongLastSeq(errors.New("x")) || isWrongLastSeq(nil) {
		t.Error("isWrongLastSeq of a plain error")
	}
}

func TestNotReady(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"request timed out", fmtWrap(context.DeadlineExceeded), true},
		{"nats timeout", fmtWrap(nats.ErrTimeout), true},
		{"no responders", fmtWrap(nats.ErrNoResponders), true},
		{"no stream response", fmtWrap(jetstream.ErrNoStreamResponse), true},
		{"503", fmtWrap(&jetstream.APIError{Code: 503, ErrorCode: 1}), true},
		{"no meta leader", fmtWrap(&jetstream.APIError{Code: 500, ErrorCode: 10008}), true},
		{"no peers", fmtWrap(&jetstream.APIError{Code: 400, ErrorCode: 10005}), true},
		{"replicas unsupported", fmtWrap(&jetstream.APIError{Code: 500, ErrorCode: 10074}), false},
		{"stream not found", fmtWrap(&jetstream.APIError{Code: 404, ErrorCode: jetstream.JSErrCodeStreamNotFound}), false},
		{"canceled", fmtWrap(context.Canceled), false},
		{"plain", errors.New("x"), false},
	} {
		if got := notReady(tt.err); got != tt.want {
			t.Errorf("%s: notReady(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestRecord(t *testing.T) {
	s := &Store{prefix: "$KV.b."}
	s.hist.Store(&history{epoch: "E"})
	ts := time.Unix(5, 0)
	rec, ok := s.record("$KV.b.a=2Eb", nats.Header{SourceHeader: []string{"w"}}, 9, ts)
	want := statesync.Record{Topic: "a.b", Revision: 9, Epoch: "E", SourceID: "w", Time: ts, DataOmitted: true}
	if !ok || rec.Topic != want.Topic || rec.Revision != want.Revision || rec.Epoch != want.Epoch || rec.SourceID != want.SourceID ||
		!rec.Time.Equal(ts) || !rec.DataOmitted || rec.Data != nil {
		t.Errorf("record = %+v, %v; want %+v", rec, ok, want)
	}
	for _, tt := range []struct {
		subj string
		seq  uint64
	}{{"$KV.b.a.b", 1}, {"$KV.b.", 1}, {"$KV.c.a", 1}, {"$KV.b.a", 0}, {"$KV", 1}} {
		if rec, ok := s.record(tt.subj, nil, tt.seq, ts); ok {
			t.Errorf("record(%q, %d) = %+v; want none", tt.subj, tt.seq, rec)
		}
	}
}

func TestCheckBucket(t *testing.T) {
	for _, b := range []string{"a", "A-z_0", "azAZ09", strings.Repeat("x", 64)} {
		if err := checkBucket(b); err != nil {
			t.Errorf("checkBucket(%q) = %v", b, err)
		}
	}
	for _, b := range []string{"", "a.b", "a b", "a*", "a>", strings.Repeat("x", 65), "é", "a@", "a[", "a`", "a{", "a/", "a:"} {
		if err := checkBucket(b); err == nil {
			t.Errorf("checkBucket(%q) = nil", b)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func fmtWrap(err error) error { return fmt.Errorf("publish: %w", err) }

func TestSourceEncoding(t *testing.T) {
	for _, id := range []string{"", "node-a", "a b", "x\r\nY: z", "é/%+", " lead", "\x00\xff"} {
		v := encodeSource(id)
		if strings.ContainsAny(v, "\r\n ") {
			t.Errorf("encodeSource(%q) = %q: not a header value", id, v)
		}
		if got := decodeSource(v); got != id {
			t.Errorf("decodeSource(encodeSource(%q)) = %q", id, got)
		}
	}
	if got := decodeSource("100%"); got != "100%" {
		t.Errorf("decodeSource of a foreign value = %q; want it as is", got)
	}
}

func TestResolveOptions(t *testing.T) {
	o, err := resolveOptions(Options{}, urlOptions{})
	if err != nil || o.Bucket != DefaultBucket || o.Replicas != 1 || o.ProbeInterval != DefaultProbeInterval ||
		o.RequestTimeout != DefaultRequestTimeout || o.FeedURL != "" {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	uo := urlOptions{bucket: "u", replicas: 3, probe: time.Second, timeout: 2 * time.Second, feedURL: "nats://f"}
	o, err = resolveOptions(Options{}, uo)
	if err != nil || o.Bucket != "u" || o.Replicas != 3 || o.ProbeInterval != time.Second || o.RequestTimeout != 2*time.Second || o.FeedURL != "nats://f" {
		t.Errorf("from the URL: %+v, %v", o, err)
	}
	o, err = resolveOptions(Options{Bucket: "o", Replicas: 5, ProbeInterval: minProbeInterval, RequestTimeout: minProbeInterval, FeedURL: "nats://g"}, uo)
	if err != nil || o.Bucket != "o" || o.Replicas != 5 || o.ProbeInterval != minProbeInterval || o.RequestTimeout != minProbeInterval || o.FeedURL != "nats://g" {
		t.Errorf("Options over the URL, at the boundaries: %+v, %v", o, err)
	}
	for _, bad := range []Options{
		{Bucket: "a.b"}, {Replicas: -1}, {Replicas: 6}, {ProbeInterval: minProbeInterval - 1}, {RequestTimeout: minProbeInterval - 1},
	} {
		if o, err := resolveOptions(bad, urlOptions{}); err == nil {
			t.Errorf("resolveOptions(%+v) = %+v, nil; want an error", bad, o)
		}
	}
}

func TestConnectTimeout(t *testing.T) {
	for probe, want := range map[time.Duration]time.Duration{
		time.Second: 10 * time.Second, 5 * time.Second: 10 * time.Second, 6 * time.Second: 12 * time.Second,
	} {
		if got := connectTimeout(probe); got != want {
			t.Errorf("connectTimeout(%v) = %v; want %v", probe, got, want)
		}
	}
}
