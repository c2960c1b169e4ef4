package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/httpsync"
)

// jsWatched is what the page's watchPrefix handler recorded.
type jsWatched struct {
	Topic    string          `json:"topic"`
	Revision string          `json:"revision"`
	Data     json.RawMessage `json:"data"`
}

// TestWatchPrefixBrowser: client.watchPrefix in Chromium, on a token
// that may read alice's carts only. The watch, opened before
// cart:alice:new exists, receives its first write with the data inline;
// the handler never hears of bob's carts; a malformed prefix rejects with
// the server's 400; stop ends the watch's EventSource.
func TestWatchPrefixBrowser(t *testing.T) {
	browser := newBrowser(t)
	auth := authFunc(func(r *http.Request) (httpsync.Grants, error) {
		return grantsFunc(func(topic string) bool { return strings.HasPrefix(topic, "cart:alice") }), nil
	})
	s := newServer(t, &httpsync.HandlerOptions{Auth: auth})
	s.put(t, "cart:alice:old", `{"items":0}`)
	s.put(t, "cart:bob:old", `{"items":0}`)
	p := newPage(t, browser, s)
	var opened int
	p.eval(t, `T.client("c", {token: "tok", inline: 1000});
		window.W = [];
		window.stopW = await T.clients.c.watchPrefix("cart:", (ev, snap) => W.push({topic: ev.topic, revision: ev.revision, data: snap?.data}));
		return T.es.open;`, &opened)
	if opened != 1 {
		t.Fatalf("%d EventSources open after watchPrefix; want 1", opened)
	}
	waitFor(t, p, "the watch's first frame", `W`, func(w []jsWatched) bool {
		return len(w) == 1 && w[0].Topic == "cart:alice:old" && string(w[0].Data) == `{"items":0}`
	})
	s.put(t, "cart:bob:new", `{"items":1}`)
	first := s.put(t, "cart:alice:new", `{"items":2}`)
	got := waitFor(t, p, "the first write of cart:alice:new", `W`, func(w []jsWatched) bool { return len(w) >= 2 })
	if len(got) != 2 || got[1].Topic != "cart:alice:new" || got[1].Revision != first.Revision.String() || string(got[1].Data) != `{"items":2}` {
		t.Fatalf("watch recorded %+v; want cart:alice:old, then cart:alice:new at %v with its data", got, first.Revision)
	}
	var a jsAttempt
	p.eval(t, `return await T.attempt(() => T.clients.c.watchPrefix("bad\nprefix", () => {}));`, &a)
	if a.Error == nil || !a.Error.IsStateSyncError || a.Error.Status != http.StatusBadRequest || a.Error.Code != httpsync.CodeInvalidParameter {
		t.Errorf("watchPrefix(bad prefix) = %+v; want a 400 StateSyncError %s", a, httpsync.CodeInvalidParameter)
	}
	p.eval(t, `stopW(); return T.es.open;`, &opened)
	if opened != 0 {
		t.Errorf("%d EventSources open after stop; want 0", opened)
	}
	s.waitStreams(t, 0)
}
