package httpsync

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/statesync-go/statesync"
)

// FuzzSnapshotQuery: any query of a snapshot GET is either taken, and
// then the context asks exactly for the canonical minRevision and valid
// epoch it names, or refused with 400 invalid_parameter; never a panic.
func FuzzSnapshotQuery(f *testing.F) {
	for _, q := range []string{"", "minRevision=5", "minRevision=5&epoch=k7Qx", "minRevision=0&epoch=e",
		"epoch=e", "minRevision=05", "minRevision=1&minRevision=2", "minRevision=18446744073709551616",
		"minRevision=1&epoch=%22", "minRevision=1&epoch=%zz", "other=1&minRevision=3", ";minRevision=1"} {
		f.Add(q)
	}
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		f.Fatal(err)
	}
	h := NewHandler(src, nil)
	f.Cleanup(func() { h.Close(); src.Close() })
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/topics/t", nil)
		r.URL.RawQuery = rawQuery
		w := httptest.NewRecorder()
		ctx, ok := h.readContext(w, r)
		if !ok {
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code != CodeInvalidParameter {
				t.Fatalf("query %q refused with %d %s; want 400 invalid_parameter", rawQuery, w.Code, w.Body)
			}
			return
		}
		q, _ := url.ParseQuery(rawQuery)
		epoch, rev, asked := statesync.MinRevision(ctx)
		if len(q["minRevision"]) == 0 {
			if asked {
				t.Fatalf("query %q without minRevision asks for %q %d", rawQuery, epoch, rev)
			}
			return
		}
		want, err := statesync.ParseRevision(q.Get("minRevision"))
		if err != nil || want != rev || want > 0 != asked {
			t.Fatalf("query %q taken as %d (asked %v); want %d (%v)", rawQuery, rev, asked, want, err)
		}
		if asked && (epoch != q.Get("epoch") || epoch != "" && !validEpoch(epoch)) {
			t.Fatalf("query %q taken with epoch %q", rawQuery, epoch)
		}
	})
}
