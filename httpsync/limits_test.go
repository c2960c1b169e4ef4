package httpsync_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/poll"
)

// closeBound bounds how long a test waits for the server to close a
// connection that it should close at once: generous on a loaded machine,
// far below the read deadlines of the tests that need "at once".
const closeBound = 10 * time.Second

// rawReply is the answer to a request written on a raw connection.
type rawReply struct {
	resp   *http.Response
	body   string
	closed bool          // the server closed the connection after the response
	after  time.Duration // when it did, from the request
}

// rawRequest writes head (a request head, maybe announcing a body it does
// not send) on a new connection to addr, reads the response and waits
// until the server closes the connection or bound passes.
func rawRequest(t *testing.T, addr, head string, bound time.Duration) rawReply {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(start.Add(bound))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v (after %v)", head, err, time.Since(start))
	}
	b, _ := io.ReadAll(resp.Body)
	var rr rawReply
	rr.resp, rr.body = resp, string(b)
	var one [1]byte
	_, err = br.Read(one[:])
	var ne net.Error
	rr.closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	rr.after = time.Since(start)
	return rr
}

// stalledHead is a request head announcing a body of 100,000 bytes.
func stalledHead(method, path string, hdr ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n")
	for i := 0; i+1 < len(hdr); i += 2 {
		b.WriteString(hdr[i] + ": " + hdr[i+1] + "\r\n")
	}
	return b.String() + "\r\n"
}

// TestRefusalDoesNotReadTheBody pins issue 9 item 1: a request refused
// before its body is read (401, 403, 404, 405, and 413 once the body is
// over the limit) is answered at once with
// "Connection: close", and the server closes the connection instead of
// waiting for the body, which net/http used to read first, with no
// deadline, so that a client announcing a body it never sent held the
// connection forever.
func TestRefusalDoesNotReadTheBody(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{Auth: mustTokens(t), ReadTimeout: time.Hour, MaxBody: 10})
	addr := s.ts.Listener.Addr().String()
	for _, tc := range []struct {
		head   string
		status int
	}{
		{stalledHead("PUT", "/v1/topics/x"), 401},
		{stalledHead("PUT", "/v1/topics/x", "Authorization", "Bearer wrong"), 401},
		{stalledHead("PUT", "/v1/topics/settings?access_token=admin-secret"), 401},
		{stalledHead("PATCH", "/v1/topics/secret", "Authorization", "Bearer worker-secret"), 403},
		{stalledHead("PUT", "/v1/topics/bad%0Atopic", "Authorization", "Bearer admin-secret"), 400},
		{stalledHead("POST", "/v1/topics/x"), 405},
		{stalledHead("POST", "/v1/topics"), 405},
		{stalledHead("PUT", "/v1/nothing"), 404},
		// Refused by a header of its own: If-Match, X-Source-Id, Content-Type.
		{stalledHead("PUT", "/v1/topics/x", "Authorization", "Bearer admin-secret", "If-Match", "W/\"1\""), 400},
		{stalledHead("PUT", "/v1/topics/x", "Authorization", "Bearer admin-secret", "X-Source-Id", "worker"), 403},
		{strings.Replace(stalledHead("PATCH", "/v1/topics/x", "Authorization", "Bearer admin-secret"), "application/json", "text/plain", 1), 415},
		// Over MaxBody, then nothing.
		{stalledHead("PUT", "/v1/topics/x", "Authorization", "Bearer admin-secret") + `{"a":"0123456789"`, 413},
	} {
		rr := rawRequest(t, addr, tc.head, closeBound)
		line := strings.SplitN(tc.head, "\r\n", 2)[0]
		t.Logf("%s: %d, closed after %v", line, rr.resp.StatusCode, rr.after)
		if rr.resp.StatusCode != tc.status || !rr.resp.Close || !rr.closed {
			t.Errorf("%s = %d, Connection: close %v, closed %v after %v; want %d, close, closed at once",
				line, rr.resp.StatusCode, rr.resp.Close, rr.closed, rr.after, tc.status)
		}
	}
}

// TestSlowBody408 pins issue 9 item 1: a body that does not arrive within
// HandlerOptions.ReadTimeout is refused with 408 and the connection
// closed; the handler used to wait for it forever.
func TestSlowBody408(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	s := newTestServer(t, &httpsync.HandlerOptions{Auth: mustTokens(t), ReadTimeout: readTimeout})
	addr := s.ts.Listener.Addr().String()
	for _, head := range []string{
		stalledHead("PUT", "/v1/topics/settings", "Authorization", "Bearer admin-secret"),
		stalledHead("PATCH", "/v1/topics/settings", "Authorization", "Bearer admin-secret", "Content-Type", "application/merge-patch+json"),
		// Part of a chunked body, then nothing.
		"PUT /v1/topics/settings HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer admin-secret\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":",
	} {
		rr := rawRequest(t, addr, head, closeBound)
		line := strings.SplitN(head, "\r\n", 2)[0]
		if rr.resp.StatusCode != http.StatusRequestTimeout || !rr.resp.Close || !rr.closed {
			t.Errorf("%s, body stalled = %d, Connection: close %v, closed %v; want 408, close, closed", line,
				rr.resp.StatusCode, rr.resp.Close, rr.closed)
		}
		if e := decodeError(t, []byte(rr.body)).Error; e.Code != httpsync.CodeTimeout {
			t.Errorf("%s: error %+v; want code %q", line, e, httpsync.CodeTimeout)
		}
		if rr.after < readTimeout {
			t.Errorf("%s: answered after %v; want after the read timeout %v", line, rr.after, readTimeout)
		}
	}
	if got := s.get(t, "settings"); got.Revision != 0 {
		t.Errorf("settings after stalled writes = revision %v; want nothing stored", got.Revision)
	}
	// A body that arrives in time, slowly, is taken, and the connection
	// kept for the next request.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(closeBound))
	br := bufio.NewReader(c)
	for i := range 2 {
		_, _ = io.WriteString(c, "PUT /v1/topics/settings HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer admin-secret\r\nContent-Length: 7\r\n\r\n{\"a\"")
		time.Sleep(readTimeout / 3)
		_, _ = io.WriteString(c, ":1}")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("write %d = %d (close %v); want 200 on a kept connection", i, resp.StatusCode, resp.Close)
		}
	}
}

// TestStreamsOutliveReadDeadlines: neither HandlerOptions.ReadTimeout nor
// the http.Server's ReadTimeout cuts an event stream, hijacked or not.
func TestStreamsOutliveReadDeadlines(t *testing.T) {
	const readTimeout = 200 * time.Millisecond
	for _, hijack := range []bool{false, true} {
		store := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: testEpoch, FirstRevision: 1})
		src, err := statesync.NewSource(store, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := httpsync.NewHandler(src, &httpsync.HandlerOptions{ReadTimeout: readTimeout, HijackStreams: hijack})
		ts := httptest.NewUnstartedServer(h)
		ts.Config.ReadTimeout = readTimeout
		ts.Config.ReadHeaderTimeout = readTimeout
		ts.Start()
		s := &testServer{store: store, src: src, h: h, ts: ts, hc: &http.Client{}}
		t.Cleanup(s.stop)
		st := s.openStream(t, "/v1/events?topic=a")
		st.nextEvent(t)
		time.Sleep(5 * readTimeout)
		want := s.put(t, "a", `1`)
		if inv := decodeInv(t, st.nextEvent(t)); inv.Revision != want.Revision {
			t.Errorf("hijack %v: frame after %v = %+v; want revision %v", hijack, 5*readTimeout, inv, want.Revision)
		}
	}
}

// TestStreamsPerToken pins issue 9 item 1: a token may hold at most
// HandlerOptions.MaxStreamsPerToken event streams; one more is refused
// with 429 until one of them ends. Other tokens are not affected.
func TestStreamsPerToken(t *testing.T) {
	s := newTestServer(t, &httpsync.HandlerOptions{Auth: mustTokens(t), MaxStreamsPerToken: 2})
	worker := []string{"Authorization", "Bearer worker-secret"}
	a := s.openStream(t, "/v1/events?topic=settings", worker...)
	s.openStream(t, "/v1/events?topic=settings&access_token=worker-secret")
	resp, err := s.hc.Do(mustRequest(t, s.ts.URL+"/v1/events?topic=settings", worker...))
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	if resp.StatusCode != http.StatusOK { // an error body, not a stream
		body, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || decodeError(t, body).Error.Code != httpsync.CodeTooManyStreams {
		t.Fatalf("third stream of a token = %d %s; want 429 %s", resp.StatusCode, body, httpsync.CodeTooManyStreams)
	}
	s.openStream(t, "/v1/events?topic=settings", "Authorization", "Bearer admin-secret")
	a.resp.Body.Close()
	poll.Until(t, "a stream slot freed", func() bool {
		resp, err := s.hc.Do(mustRequest(t, s.ts.URL+"/v1/events?topic=settings", worker...))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Without Auth nothing is counted.
	open := newTestServer(t, &httpsync.HandlerOptions{MaxStreamsPerToken: 1})
	for range 3 {
		open.openStream(t, "/v1/events?topic=a")
	}
}

func mustRequest(t *testing.T, url string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// mustTokens returns the Tokens of tokenFile.
func mustTokens(t *testing.T) *httpsync.Tokens {
	t.Helper()
	toks, err := httpsync.ParseTokens(strings.NewReader(tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// TestAccessTokenOnlyOnStream pins issue 9 item 6: the access_token query
// parameter is taken on the event stream only; elsewhere it is refused
// with 401 and a message pointing to the Authorization header, since URLs
// end up in logs.
func TestAccessTokenOnlyOnStream(t *testing.T) {
	s := newAuthServer(t)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/topics/settings?access_token=admin-secret", ""},
		{"PUT", "/v1/topics/settings?access_token=admin-secret", "2"},
		{"GET", "/v1/topics?access_token=admin-secret", ""},
	} {
		resp, body := s.do(t, r.method, r.path, r.body)
		if e := decodeError(t, body).Error; resp.StatusCode != 401 || !strings.Contains(e.Message, "Authorization") || !strings.Contains(e.Message, "/v1/events") {
			t.Errorf("%s %s = %d %+v; want 401 pointing to the Authorization header", r.method, r.path, resp.StatusCode, e)
		}
	}
	// The header still wins where both are given.
	if resp, _ := s.do(t, "GET", "/v1/topics/settings?access_token=nope", "", "Authorization", "Bearer admin-secret"); resp.StatusCode != 200 {
		t.Errorf("GET with a header and a query token = %d; want 200", resp.StatusCode)
	}
	st := s.openStream(t, "/v1/events?topic=settings&access_token=admin-secret")
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "settings" {
		t.Errorf("stream with access_token: frame %+v; want settings", inv)
	}
}

// TestTokensSameGrants: a Tokens returns the same *TokenGrants for every
// request of a token, the identity streams are counted by.
func TestTokensSameGrants(t *testing.T) {
	toks := mustTokens(t)
	auth := func(tok string) httpsync.Grants {
		r := httptest.NewRequest("GET", "/v1/topics", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		g, err := toks.Authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	if a, b := auth("worker-secret"), auth("worker-secret"); a != b {
		t.Errorf("two requests of one token: grants %p and %p; want the same", a, b)
	}
	if a, b := auth("worker-secret"), auth("admin-secret"); a == b {
		t.Errorf("two tokens share grants %p", a)
	}
	r := httptest.NewRequest("GET", "/v1/topics?access_token=admin-secret", nil)
	if _, err := toks.Authenticate(r); !errors.Is(err, httpsync.ErrNoToken) {
		t.Errorf("Authenticate with a query token outside the stream = %v; want ErrNoToken", err)
	}
}
