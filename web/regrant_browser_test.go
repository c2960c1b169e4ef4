package web_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync/httpsync"
)

// swapTokens is an Authenticator whose Tokens the test replaces, as the
// daemon does on SIGHUP.
type swapTokens struct {
	cur atomic.Pointer[httpsync.Tokens]
}

func (a *swapTokens) Authenticate(r *http.Request) (httpsync.Grants, error) {
	return a.cur.Load().Authenticate(r)
}

// TestRegrantInBrowser: a page follows a and b with one token over one
// EventSource; the token file changes so that the token no longer reads b
// and Handler.Regrant runs (the daemon's SIGHUP): the stream ends, the
// browser reconnects, b's follower is told through onError(err,
// "subscribe"), and a's follower goes on applying every write.
func TestRegrantInBrowser(t *testing.T) {
	browser := newBrowser(t)
	parse := func(s string) *httpsync.Tokens {
		t.Helper()
		toks, err := httpsync.ParseTokens(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return toks
	}
	auth := &swapTokens{}
	auth.cur.Store(parse(`{"tokens":[{"name":"page","token":"tok","read":["a","b"],"write":["*"]}]}`))
	s := newServer(t, &httpsync.HandlerOptions{Auth: auth})
	s.put(t, "a", `{"n":0}`)
	s.put(t, "b", `{"n":0}`)
	p := newPage(t, browser, s)
	p.eval(t, `T.client("c", {token: "tok"}); await T.follow("fa", "c", "a"); await T.follow("fb", "c", "b");`, nil)
	s.waitStreams(t, 1)

	next := parse(`{"tokens":[{"name":"page","token":"tok","read":["a"],"write":["*"]}]}`)
	if n := s.handler().Regrant(next.Regrant); n != 1 {
		t.Errorf("Regrant closed %d streams; want the page's 1", n)
	}
	auth.cur.Store(next)
	type jsReport struct{ Name, Phase, Message string }
	waitFor(t, p, "the follower of b reports the refusal", `T.errors`, func(errs []jsReport) bool {
		for _, e := range errs {
			if e.Name == "fb" && e.Phase == "subscribe" {
				return true
			}
		}
		return false
	})
	for i := 1; i <= 3; i++ {
		w := s.put(t, "a", `{"n":`+strconv.Itoa(i)+`}`)
		waitFor(t, p, "the follower of a applies "+w.Revision.String(), `T.followers.fa.revision()`, func(r string) bool { return r == w.Revision.String() })
	}
	var bRev string
	before := s.get(t, "b").Revision.String()
	p.eval(t, `return T.followers.fb.revision();`, &bRev)
	s.put(t, "b", `{"n":1}`)
	w := s.put(t, "a", `{"n":"last"}`)
	waitFor(t, p, "the follower of a applies "+w.Revision.String(), `T.followers.fa.revision()`, func(r string) bool { return r == w.Revision.String() })
	var bAfter string
	p.eval(t, `return T.followers.fb.revision();`, &bAfter)
	if bAfter != bRev || bRev != before {
		t.Errorf("b's follower at %s, then %s after a write to b; want it stopped at %s", bRev, bAfter, before)
	}
}
