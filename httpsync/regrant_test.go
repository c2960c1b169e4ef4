package httpsync_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync/httpsync"
)

// swapAuth is an Authenticator whose Tokens a test replaces, as a daemon
// does when it reloads its token file.
type swapAuth struct {
	cur atomic.Pointer[httpsync.Tokens]
}

func (a *swapAuth) Authenticate(r *http.Request) (httpsync.Grants, error) {
	return a.cur.Load().Authenticate(r)
}

func parseTokens(t *testing.T, s string) *httpsync.Tokens {
	t.Helper()
	toks, err := httpsync.ParseTokens(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// TestRegrant: after Handler.Regrant with new tokens, a stream whose token
// is gone or may no longer read one of its topics ends (with a comment
// saying why), the others keep receiving and count against their token's
// new grants; Regrant returns the number it closed.
func TestRegrant(t *testing.T) {
	auth := &swapAuth{}
	auth.cur.Store(mustTokens(t))
	s := newTestServer(t, &httpsync.HandlerOptions{Auth: auth, MaxStreamsPerToken: 1})
	kept := s.openStream(t, "/v1/events?topic=settings", "Authorization", "Bearer admin-secret")
	narrowed := s.openStream(t, "/v1/events?topic=settings&topic=cache:a", "Authorization", "Bearer worker-secret")
	for _, st := range []*sseStream{kept, narrowed} {
		st.nextEvent(t)
	}
	narrowed.nextEvent(t)

	next := parseTokens(t, `{"tokens":[
		{"name":"admin","token":"admin-secret","read":["*"],"write":["*"]},
		{"name":"worker","token":"worker-secret","read":["settings"]}]}`)
	if n := s.h.Regrant(next.Regrant); n != 1 {
		t.Errorf("Regrant closed %d streams; want 1 (the worker's, which lost cache:a)", n)
	}
	auth.cur.Store(next)
	var comments []string
	for _, f := range untilEnd(t, narrowed) {
		if f.event != "" {
			t.Errorf("revoked stream sent %+v; want it to end", f)
		}
		comments = append(comments, f.comment)
	}
	if !strings.Contains(strings.Join(comments, "|"), "grants changed") {
		t.Errorf("revoked stream's comments %q; want one saying the grants changed", comments)
	}
	snap := s.put(t, "settings", `1`)
	if f := kept.nextEvent(t); f.event != "invalidation" || !strings.Contains(f.data, `"revision":"`+snap.Revision.String()+`"`) {
		t.Errorf("kept stream after Regrant got %+v; want settings at %v", f, snap.Revision)
	}
	// The kept stream counts against admin's new grants: a second one is
	// over MaxStreamsPerToken.
	resp, err := s.hc.Do(mustRequest(t, s.ts.URL+"/v1/events?topic=settings", "Authorization", "Bearer admin-secret"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("second admin stream after Regrant = %d; want 429 (the kept stream still counts)", resp.StatusCode)
	}
	// A stream authenticated with the old tokens that registers after
	// Regrant is mapped too: here, the old worker grants read cache:a,
	// the new ones do not, so it is refused before any frame (503: trying
	// again meets the new tokens).
	old := mustTokens(t)
	auth.cur.Store(old)
	resp, err = s.hc.Do(mustRequest(t, s.ts.URL+"/v1/events?topic=cache:a", "Authorization", "Bearer worker-secret"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "cache:a") {
		t.Errorf("stream authenticated with the old tokens after Regrant = %d %s; want 503 and no frame", resp.StatusCode, body)
	}
}

// untilEnd returns the frames of st until it ends, failing the test if it
// does not end within 20 s.
func untilEnd(t *testing.T, st *sseStream) []frame {
	t.Helper()
	ch := make(chan []frame, 1)
	go func() {
		var fs []frame
		for {
			f, err := readFrame(st)
			if err != nil {
				ch <- fs
				return
			}
			fs = append(fs, f)
		}
	}()
	select {
	case fs := <-ch:
		return fs
	case <-time.After(20 * time.Second):
		st.resp.Body.Close() // ends the reader
		t.Fatal("the event stream did not end within 20 s")
		return nil
	}
}

// readFrame reads a frame, or returns the error that ended the stream.
func readFrame(st *sseStream) (frame, error) {
	var f frame
	for {
		line, err := st.br.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if f != (frame{}) {
				return f, nil
			}
		case strings.HasPrefix(line, ":"):
			f.comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "event: "):
			f.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			f.data += line[len("data: "):]
		case strings.HasPrefix(line, "retry: "):
			f.retry = line[len("retry: "):]
		}
	}
}

// TestTokensRegrant: Tokens.Regrant finds a token's grants by its secret
// in another Tokens; a token not there, or Grants of another kind, give
// nil.
func TestTokensRegrant(t *testing.T) {
	a := mustTokens(t)
	b := parseTokens(t, `{"tokens":[{"name":"renamed","token":"worker-secret","read":["x"]}]}`)
	req := func(tok string) *http.Request {
		r, _ := http.NewRequest("GET", "/v1/topics/x", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	worker, _ := a.Authenticate(req("worker-secret"))
	admin, _ := a.Authenticate(req("admin-secret"))
	g := b.Regrant(worker)
	if tg, ok := g.(*httpsync.TokenGrants); !ok || tg.Name != "renamed" || !g.CanRead("x") || g.CanRead("settings") {
		t.Errorf("Regrant(worker) = %#v; want the new grants of worker-secret", g)
	}
	if g := b.Regrant(g); g == nil {
		t.Errorf("Regrant of its own grants = nil; want them back")
	}
	if g := b.Regrant(admin); g != nil {
		t.Errorf("Regrant(admin) = %#v; want nil (not in the new tokens)", g)
	}
	if g := b.Regrant(&httpsync.TokenGrants{Name: "worker"}); g != nil {
		t.Errorf("Regrant of grants built by hand = %#v; want nil", g)
	}
	if g := b.Regrant(nil); g != nil {
		t.Errorf("Regrant(nil) = %#v; want nil", g)
	}
}
