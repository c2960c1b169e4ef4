package httpsync

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

// TestRegrantGenerations: when two Regrants overlap (or a registration
// races one), a stream keeps the grants of the latest: an older mapping
// arriving late neither replaces them nor closes the stream.
func TestRegrantGenerations(t *testing.T) {
	parse := func(read string) *Tokens {
		t.Helper()
		toks, err := ParseTokens(strings.NewReader(`{"tokens":[{"name":"w","token":"s3cr3t","read":` + read + `}]}`))
		if err != nil {
			t.Fatal(err)
		}
		return toks
	}
	t1, t2, t3 := parse(`["a","b"]`), parse(`["a"]`), parse(`["b","a"]`)
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := NewHandler(src, &HandlerOptions{Auth: t1})
	defer h.Close()
	r := httptest.NewRequest("GET", "/v1/events?topic=b", nil)
	r.Header.Set("Authorization", "Bearer s3cr3t")
	g1, err := t1.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{wake: make(chan struct{}, 1), grants: g1,
		topics: map[string]*streamTopic{"b": {name: "b"}}}
	if !h.register(st) {
		t.Fatal("register = false")
	}
	defer h.unregister(st)

	h.mu.Lock()
	h.regrantGen++ // a first Regrant (to t2, without b) that is slow...
	slow := h.regrantGen
	h.mu.Unlock()
	if n := h.Regrant(t3.Regrant); n != 0 { // ...overtaken by a second one
		t.Errorf("Regrant(t3) closed %d streams; want 0", n)
	}
	want, _ := t3.Authenticate(r)
	if !h.regrantStream(st, t2.Regrant, slow) || st.isRevoked() {
		t.Errorf("the overtaken Regrant closed the stream; want it kept under the latest grants")
	}
	if g := st.currentGrants(); g != want {
		t.Errorf("stream grants = %p; want t3's %p", g, want)
	}
}
