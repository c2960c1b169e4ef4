package httpsync

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
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

// TestWrittenRevs: the client remembers the latest write of the last
// maxWritten topics written, never going back within an epoch.
func TestWrittenRevs(t *testing.T) {
	var w writtenRevs
	if _, _, ok := w.get("a"); ok {
		t.Fatal("the zero writtenRevs holds a")
	}
	w.note("a", "e1", 0) // nothing written: not recorded
	if _, _, ok := w.get("a"); ok {
		t.Error("a write at revision 0 was recorded")
	}
	w.note("a", "e1", 5)
	w.note("a", "e1", 3) // an older response arriving late
	if e, r, ok := w.get("a"); !ok || e != "e1" || r != 5 {
		t.Errorf("get(a) = %q %d %v; want e1 5", e, r, ok)
	}
	w.note("a", "e2", 2) // another epoch: taken whatever its revision
	if e, r, _ := w.get("a"); e != "e2" || r != 2 {
		t.Errorf("get(a) after a write in e2 = %q %d; want e2 2", e, r)
	}
	for i := range maxWritten {
		w.note("t"+strconv.Itoa(i), "e", 1)
	}
	if _, _, ok := w.get("a"); ok {
		t.Errorf("a is still held after %d later topics; want the least recently written out", maxWritten)
	}
	w.note("t0", "e", 2) // t0 is the most recent now
	w.note("new", "e", 1)
	if _, _, ok := w.get("t0"); !ok {
		t.Error("t0, written again, was dropped")
	}
	if _, _, ok := w.get("t1"); ok {
		t.Error("t1, the least recently written, is still held")
	}
	if n := w.order.Len(); n != maxWritten || len(w.byKey) != maxWritten {
		t.Errorf("%d topics held (%d in the map); want %d", n, len(w.byKey), maxWritten)
	}
}

func TestMinRevSatisfiedBy(t *testing.T) {
	for _, tc := range []struct {
		m    minRev
		s    statesync.Snapshot
		want bool
	}{
		{minRev{}, statesync.Snapshot{}, true},
		{minRev{"e", 5, true}, statesync.Snapshot{Revision: 5, Epoch: "e"}, true},
		{minRev{"e", 5, true}, statesync.Snapshot{Revision: 4, Epoch: "e"}, false},
		{minRev{"e", 5, true}, statesync.Snapshot{Revision: 9, Epoch: "f"}, false},
		{minRev{"", 5, true}, statesync.Snapshot{Revision: 9, Epoch: "f"}, true},
		{minRev{"e", 5, true}, statesync.Snapshot{Revision: 6}, true},
	} {
		if got := tc.m.satisfiedBy(tc.s); got != tc.want {
			t.Errorf("%+v.satisfiedBy(%+v) = %v; want %v", tc.m, tc.s, got, tc.want)
		}
	}
}
