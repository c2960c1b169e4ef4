package httpsync_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// A PATCH answers the merged data only to a token that may read the topic:
// a write-only token learns nothing of the document it patches (issue 9,
// item 3).
func TestPatchDataOnlyForReaders(t *testing.T) {
	s := newAuthServer(t)
	const secret = `{"pin":"4711-SECRET"}`
	s.put(t, "inbox", secret) // write-only may write inbox, not read it
	s.put(t, "settings", `{"theme":"dark"}`)
	bearer := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "Content-Type", "application/merge-patch+json"}
	}
	for _, patch := range []string{`{}`, `{"n":1}`} {
		resp, body := s.do(t, "PATCH", "/v1/topics/inbox", patch, bearer("write-only")...)
		var res writeResult
		mustJSON(t, body, &res)
		if resp.StatusCode != 200 || res.Data != nil || bytes.Contains(body, []byte("4711")) {
			t.Errorf("write-only PATCH %s = %d %s; want 200 without data", patch, resp.StatusCode, body)
		}
	}
	// A token that may read gets the result.
	resp, body := s.do(t, "PATCH", "/v1/topics/settings", `{"lang":"fr"}`, bearer("worker-secret")...)
	var res writeResult
	mustJSON(t, body, &res)
	if resp.StatusCode != 200 || string(res.Data) != `{"theme":"dark","lang":"fr"}` {
		t.Errorf("read-write PATCH = %d %s; want 200 with the data", resp.StatusCode, body)
	}
}

// A PATCH whose result is the current data writes nothing: 200 with the
// current revision, epoch, ETag (and data), no invalidation. A conditional
// one still checks its precondition (issue 9, item 3).
func TestPatchNoOp(t *testing.T) {
	s := newTestServer(t, nil)
	invs := make(chan statesync.Invalidation, 16)
	watchSource(t, s.src, func(inv statesync.Invalidation) { invs <- inv })
	s.put(t, "doc", `{ "a" : 1, "b" : {"c": [1, 2]} }`) // revision 1, not compact
	<-invs
	ct := []string{"Content-Type", "application/merge-patch+json"}
	for _, tc := range []struct {
		patch string
		hdr   []string
	}{
		{`{}`, nil},
		{`{"a":1}`, nil},
		{`{"zz":null}`, nil},
		{`{"b":{"c":[1,2],"d":null}}`, nil},
		{`{}`, []string{"If-Match", `"1"`}},
		{`{}`, []string{"If-Match", `"ep0.1"`}},
	} {
		resp, body := s.do(t, "PATCH", "/v1/topics/doc", tc.patch, append(tc.hdr, ct...)...)
		var res writeResult
		mustJSON(t, body, &res)
		if resp.StatusCode != 200 || res.Revision != "1" || res.Epoch != "ep0" || resp.Header.Get("ETag") != `"ep0.1"` ||
			string(res.Data) != `{"a":1,"b":{"c":[1,2]}}` {
			t.Errorf("no-op PATCH %s %q = %d %s ETag %s; want 200 at revision 1, ETag \"ep0.1\", the data",
				tc.patch, tc.hdr, resp.StatusCode, body, resp.Header.Get("ETag"))
		}
	}
	for _, im := range []string{`"2"`, `"other.1"`} {
		resp, body := s.do(t, "PATCH", "/v1/topics/doc", `{}`, append([]string{"If-Match", im}, ct...)...)
		if e := decodeError(t, body); resp.StatusCode != 412 || e.Error.Revision != "1" {
			t.Errorf("no-op PATCH If-Match %s = %d %s; want 412 at revision 1", im, resp.StatusCode, body)
		}
	}
	// A topic never written stays so under a patch of null.
	if resp, body := s.do(t, "PATCH", "/v1/topics/fresh", `null`, ct...); resp.StatusCode != 200 || !strings.Contains(string(body), `"revision":"0"`) {
		t.Errorf("PATCH null of a fresh topic = %d %s; want 200 at revision 0", resp.StatusCode, body)
	}
	if got := s.get(t, "doc"); got.Revision != 1 {
		t.Errorf("after no-op patches: revision %d; want 1", got.Revision)
	}
	select {
	case inv := <-invs:
		t.Errorf("a no-op PATCH emitted %+v", inv)
	default:
	}
	// A real change still writes.
	resp, body := s.do(t, "PATCH", "/v1/topics/doc", `{"a":2}`, ct...)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"revision":"2"`) {
		t.Errorf("PATCH {\"a\":2} = %d %s; want 200 at revision 2", resp.StatusCode, body)
	}
}

// nest returns a value nested depth deep: objects {"a":…} or arrays [[…]].
func nest(depth int, obj bool) string {
	if obj {
		return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
	}
	return strings.Repeat(`[`, depth) + strings.Repeat(`]`, depth)
}

// PUT and PATCH bodies deeper than MaxDepth (256 by default) are refused
// with 400 invalid_json and store nothing; the 3,000-deep patch is
// refused at once (issue 9, item 2).
func TestBodyDepth(t *testing.T) {
	for _, tc := range []struct {
		max, limit int
	}{{0, 256}, {3, 3}} {
		s := newTestServer(t, &httpsync.HandlerOptions{MaxDepth: tc.max})
		for _, method := range []string{"PUT", "PATCH"} {
			for _, obj := range []bool{true, false} {
				resp, body := s.do(t, method, "/v1/topics/t", nest(tc.limit, obj))
				if resp.StatusCode != 200 {
					t.Errorf("MaxDepth %d: %s %d deep = %d %s; want 200", tc.max, method, tc.limit, resp.StatusCode, body)
				}
				rev := s.get(t, "t").Revision
				resp, body = s.do(t, method, "/v1/topics/t", nest(tc.limit+1, obj))
				if e := decodeError(t, body); resp.StatusCode != 400 || e.Error.Code != "invalid_json" ||
					!strings.Contains(e.Error.Message, strconv.Itoa(tc.limit)) {
					t.Errorf("MaxDepth %d: %s %d deep = %d %s; want 400 invalid_json naming the limit", tc.max, method, tc.limit+1, resp.StatusCode, body)
				}
				if got := s.get(t, "t").Revision; got != rev {
					t.Errorf("a refused deep %s stored revision %d", method, got)
				}
			}
		}
		// Brackets inside strings do not count.
		if resp, body := s.do(t, "PUT", "/v1/topics/t", `["`+strings.Repeat(`[{\"`, 1000)+`"]`); resp.StatusCode != 200 {
			t.Errorf("MaxDepth %d: brackets in a string = %d %s; want 200", tc.max, resp.StatusCode, body)
		}
	}
	// The deep PATCH: 3,000 levels, about 900 KB, refused fast.
	s := newTestServer(t, nil)
	deep := strings.Repeat(`{"a":`, 2999) + `{"pad":"` + strings.Repeat("x", 900<<10) + `"}` + strings.Repeat(`}`, 2999)
	start := time.Now()
	resp, body := s.do(t, "PATCH", "/v1/topics/t", deep, "Content-Type", "application/merge-patch+json")
	if resp.StatusCode != 400 || decodeError(t, body).Error.Code != "invalid_json" {
		t.Errorf("3,000-deep PATCH = %d %s; want 400 invalid_json", resp.StatusCode, body)
	}
	t.Logf("3,000-deep PATCH of %d bytes refused in %v", len(deep), time.Since(start))
}

// Invalid UTF-8 inside JSON strings is refused with 400 invalid_json on PUT
// and PATCH, and nothing is stored (RFC 8259; issue 9, item 6).
func TestBodyInvalidUTF8(t *testing.T) {
	s := newTestServer(t, nil)
	s.put(t, "t", `{"ok":"é"}`)
	for _, method := range []string{"PUT", "PATCH"} {
		for _, body := range []string{"\"\xff\"", "{\"a\":\"\xed\xa0\x80\"}", "{\"\xc3\":1}", "{\"a\":\"ok\xe2\x82\"}"} {
			resp, b := s.do(t, method, "/v1/topics/t", body)
			if e := decodeError(t, b); resp.StatusCode != 400 || e.Error.Code != "invalid_json" {
				t.Errorf("%s %q = %d %s; want 400 invalid_json", method, body, resp.StatusCode, b)
			}
		}
	}
	if got := s.get(t, "t"); got.Revision != 1 {
		t.Errorf("after refused bodies: revision %d; want 1", got.Revision)
	}
	// Escapes and real UTF-8 are fine.
	if resp, b := s.do(t, "PUT", "/v1/topics/t", `{"a":"\udc00 é 日本 \u00e9"}`); resp.StatusCode != 200 {
		t.Errorf("PUT valid UTF-8 = %d %s; want 200", resp.StatusCode, b)
	}
}

// namelessAuth authenticates every request with grants that may do
// everything but have no name.
type namelessAuth struct{}

type namelessGrants struct{}

func (namelessGrants) CanRead(string) bool  { return true }
func (namelessGrants) CanWrite(string) bool { return true }

func (namelessAuth) Authenticate(*http.Request) (httpsync.Grants, error) {
	return namelessGrants{}, nil
}

// Under auth, a write's X-Source-Id must be the token's name or start with
// it followed by "/", so that a writer cannot pose as another; a token
// without a name may send none; without auth any is taken (issue 9, item 6).
func TestSourceIDRule(t *testing.T) {
	s := newAuthServer(t)
	invs := make(chan statesync.Invalidation, 16)
	watchSource(t, s.src, func(inv statesync.Invalidation) { invs <- inv })
	auth := []string{"Authorization", "Bearer worker-secret"}
	for id, ok := range map[string]bool{
		"worker": true, "worker/1": true, "worker/a/b": true,
		"workers": false, "admin": false, "work": false, "/worker": false, "worker-1": false, "dashboard/worker": false,
	} {
		for _, method := range []string{"PUT", "PATCH", "DELETE"} {
			body := map[string]string{"PUT": `{"by":"` + id + `"}`, "PATCH": `{"p":"` + id + method + `"}`}[method]
			resp, b := s.do(t, method, "/v1/topics/settings", body, append([]string{"X-Source-Id", id}, auth...)...)
			if !ok {
				e := decodeError(t, b)
				if resp.StatusCode != 403 || e.Error.Code != "forbidden" || !strings.Contains(e.Error.Message, `"worker/"`) {
					t.Errorf("%s X-Source-Id %q as worker = %d %s; want 403 forbidden stating the rule", method, id, resp.StatusCode, b)
				}
				continue
			}
			if resp.StatusCode != 200 {
				t.Errorf("%s X-Source-Id %q as worker = %d %s; want 200", method, id, resp.StatusCode, b)
				continue
			}
			if inv := <-invs; inv.SourceID != id {
				t.Errorf("%s X-Source-Id %q: invalidation %+v; want that source id", method, id, inv)
			}
		}
	}
	select {
	case inv := <-invs:
		t.Errorf("a refused X-Source-Id wrote: %+v", inv)
	default:
	}

	// Grants without a name may send no X-Source-Id, but may write.
	n := newTestServer(t, &httpsync.HandlerOptions{Auth: namelessAuth{}})
	if resp, b := n.do(t, "PUT", "/v1/topics/t", `1`, "X-Source-Id", "anyone"); resp.StatusCode != 403 || !strings.Contains(string(b), "no name") {
		t.Errorf("nameless PUT with X-Source-Id = %d %s; want 403 saying the token has no name", resp.StatusCode, b)
	}
	if resp, b := n.do(t, "PUT", "/v1/topics/t", `1`); resp.StatusCode != 200 {
		t.Errorf("nameless PUT = %d %s; want 200", resp.StatusCode, b)
	}
	// Without auth, anything goes.
	o := newTestServer(t, nil)
	if resp, b := o.do(t, "PUT", "/v1/topics/t", `1`, "X-Source-Id", "admin"); resp.StatusCode != 200 {
		t.Errorf("open PUT with X-Source-Id = %d %s; want 200", resp.StatusCode, b)
	}
}

// A write-only token's Client.Patch succeeds without the data (the server
// sends none, and a GET is refused); a reader's returns it.
func TestClientPatchWriteOnly(t *testing.T) {
	s := newAuthServer(t)
	s.put(t, "inbox", `{"pin":"4711"}`)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "write-only"})
	snap, err := c.Patch(t.Context(), "inbox", []byte(`{"n":1}`))
	if err != nil || snap.Revision != s.get(t, "inbox").Revision || snap.Data != nil {
		t.Errorf("write-only Patch = %+v, %v; want the new revision, no data", snap, err)
	}
	r := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "worker-secret"})
	snap, err = r.Patch(t.Context(), "settings", []byte(`{"n":1}`))
	if err != nil || string(snap.Data) != `{"n":1}` {
		t.Errorf("read-write Patch = %+v, %v; want the data {\"n\":1}", snap, err)
	}
}
