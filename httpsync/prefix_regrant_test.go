package httpsync_test

import (
	"testing"

	"github.com/statesync-go/statesync/httpsync"
)

// Handler.Regrant and prefix streams: a stream keeps the topics it took
// in while its new grants cover them, takes in new ones by its new
// grants, and ends if its new grants no longer cover a topic it follows.
func TestRegrantPrefixStream(t *testing.T) {
	auth := &swapAuth{}
	auth.cur.Store(parseTokens(t, prefixTokens))
	s := newTestServer(t, &httpsync.HandlerOptions{Auth: auth})
	s.put(t, "cart:alice:1", `1`)
	st := s.openStream(t, "/v1/events?prefix=cart:", bearer("alice-secret")...)
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "cart:alice:1" {
		t.Fatalf("initial frame %+v", inv)
	}
	// Wider: alice may now read bob's carts too; her stream stays open
	// and takes them in.
	wider := parseTokens(t, `{"tokens": [{"name": "alice", "token": "alice-secret", "read": ["cart:*"]}]}`)
	if n := s.h.Regrant(wider.Regrant); n != 0 {
		t.Fatalf("Regrant to wider grants closed %d streams; want 0", n)
	}
	auth.cur.Store(wider)
	want := s.put(t, "cart:bob:1", `1`)
	if inv := decodeInv(t, st.nextEvent(t)); inv.Topic != "cart:bob:1" || inv.Revision != want.Revision {
		t.Fatalf("frame %+v; want cart:bob:1 at %d", inv, want.Revision)
	}
	// Narrower: no longer bob's, which the stream follows: it ends.
	narrower := parseTokens(t, `{"tokens": [{"name": "alice", "token": "alice-secret", "read": ["cart:alice*"]}]}`)
	if n := s.h.Regrant(narrower.Regrant); n != 1 {
		t.Fatalf("Regrant to narrower grants closed %d streams; want 1", n)
	}
	for _, f := range untilEnd(t, st) {
		if f.event != "" {
			t.Errorf("revoked stream sent %+v; want it to end", f)
		}
	}
}
