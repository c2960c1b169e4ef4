package web_test

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync/httpsync"
)

// grantsFunc is a Grants that reads what the function allows and writes
// every topic.
type grantsFunc func(topic string) bool

func (f grantsFunc) CanRead(topic string) bool { return f(topic) }
func (f grantsFunc) CanWrite(string) bool      { return true }

// authFunc is an Authenticator made of a function.
type authFunc func(r *http.Request) (httpsync.Grants, error)

func (f authFunc) Authenticate(r *http.Request) (httpsync.Grants, error) { return f(r) }

// TestRefusedTopic: one client, one EventSource, a token that may read a
// (and b, until it is revoked) but not secret. A topic the server refuses
// fails alone: subscriber("secret").subscribe() and follow("secret")
// reject with a 403 StateSyncError (an invalid name with a 400), while
// follow("a") keeps applying every write and the @statesync/core flow
// (subscribe, then getSnapshot) works for a. A topic refused after a
// reconnect goes to its follower's onError(err, "subscribe"); the others
// go on. A dead server does not keep subscribe waiting.
func TestRefusedTopic(t *testing.T) {
	browser := newBrowser(t)
	var revoked atomic.Bool
	auth := authFunc(func(r *http.Request) (httpsync.Grants, error) {
		return grantsFunc(func(topic string) bool { return topic == "a" || (topic == "b" && !revoked.Load()) }), nil
	})
	s := newServer(t, &httpsync.HandlerOptions{Auth: auth})
	s.put(t, "a", `{"n":0}`)
	s.put(t, "b", `{"n":0}`)
	s.put(t, "secret", `{"hidden":true}`)
	p := newPage(t, browser, s)
	p.eval(t, `T.client("c", {token: "tok"}); await T.follow("fa", "c", "a"); await T.follow("fb", "c", "b");`, nil)

	for _, tc := range []struct {
		what, call string
		status     int
		code       string
	}{
		{"subscriber(secret).subscribe()", `T.clients.c.subscriber("secret").subscribe(() => {})`, http.StatusForbidden, httpsync.CodeForbidden},
		{"follow(secret)", `T.clients.c.follow("secret", () => {})`, http.StatusForbidden, httpsync.CodeForbidden},
		{"subscriber(bad name).subscribe()", `T.clients.c.subscriber("b\nad").subscribe(() => {})`, http.StatusBadRequest, httpsync.CodeInvalidTopic},
	} {
		var a jsAttempt
		p.eval(t, `return await T.attempt(() => `+tc.call+`);`, &a)
		if a.Error == nil || !a.Error.IsStateSyncError || a.Error.Status != tc.status || a.Error.Code != tc.code {
			t.Errorf("%s = %+v; want a StateSyncError with status %d, code %s", tc.what, a, tc.status, tc.code)
		}
	}
	// Made in one turn, with a topic of its own: a resolves, secret rejects.
	var both struct {
		A, Secret jsAttempt
	}
	p.eval(t, `const [A, Secret] = await Promise.all([
			T.attempt(async () => typeof await T.clients.c.subscriber("a").subscribe(() => {})),
			T.attempt(async () => typeof await T.clients.c.subscriber("secret").subscribe(() => {}))]);
		return {A, Secret};`, &both)
	if both.A.Error != nil || string(both.A.Value) != `"function"` || both.Secret.Error == nil || both.Secret.Error.Status != http.StatusForbidden {
		t.Errorf("subscribing a and secret together = %+v, %+v; want an unsubscribe function and a 403", both.A, both.Secret)
	}

	for i := 1; i <= 5; i++ {
		s.put(t, "secret", `{"hidden":`+strconv.Itoa(i)+`}`)
		w := s.put(t, "a", `{"n":`+strconv.Itoa(i)+`}`)
		waitFor(t, p, "the follower of a applies "+w.Revision.String(), `T.followers.fa.revision()`, func(r string) bool { return r == w.Revision.String() })
	}

	// The flow of @statesync/core's createRevisionSync: subscribe, then
	// the first snapshot; later changes reach the handler.
	var flow struct {
		Unsub string
		Snap  jsSnap
	}
	p.eval(t, `T.events.engine = [];
		const unsub = await T.clients.c.subscriber("a").subscribe((ev) => T.events.engine.push(ev));
		const snap = await T.clients.c.provider("a").getSnapshot();
		return {Unsub: typeof unsub, Snap: snap};`, &flow)
	if cur := s.get(t, "a"); flow.Unsub != "function" || flow.Snap.Revision != cur.Revision.String() {
		t.Errorf("subscribe then getSnapshot of a = %s, %v; want a function and revision %v", flow.Unsub, flow.Snap, cur.Revision)
	}
	w := s.put(t, "a", `{"n":"engine"}`)
	waitFor(t, p, "the engine-style handler gets "+w.Revision.String(), `T.events.engine.at(-1)?.revision ?? ""`, func(r string) bool { return r == w.Revision.String() })

	// Revoke b and make the client reconnect: b's follower is told, a goes on.
	revoked.Store(true)
	s.serve(s.source(), &httpsync.HandlerOptions{Auth: auth})
	type jsReport struct{ Name, Phase, Message string }
	waitFor(t, p, "the follower of b reports the refusal", `T.errors`, func(errs []jsReport) bool {
		for _, e := range errs {
			if e.Name == "fb" && e.Phase == "subscribe" {
				return true
			}
		}
		return false
	})
	w = s.put(t, "a", `{"n":"after"}`)
	waitFor(t, p, "the follower of a applies "+w.Revision.String()+" after b was refused", `T.followers.fa.revision()`, func(r string) bool { return r == w.Revision.String() })

	// Against a server that is down, subscribe settles (the client keeps
	// retrying) rather than hanging.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	var down string
	p.eval(t, `const d = T.client("dead", {url: `+js(dead)+`});
		const unsub = await d.subscriber("a").subscribe(() => {}); d.close(); return typeof unsub;`, &down)
	if down != "function" {
		t.Errorf("subscribe against a dead server resolved to a %s; want a function", down)
	}
}
