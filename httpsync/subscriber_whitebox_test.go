package httpsync

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

// decodeInline, the one-pass decoding of an inline snapshot frame, gives
// what statesync.DecodeInvalidation and statesync.DecodeSnapshot give for
// every payload it accepts, and leaves every payload they reject (or
// judge differently) to them (B-PROTO-03, B-PROTO-11, B-REV-06).
func TestDecodeInlineMatchesTwoPass(t *testing.T) {
	payloads := []string{
		`{"topic":"a","revision":"7","epoch":"e","data":{"x":1}}`,
		`{"topic":"a","sourceId":"s","timestampMs":1700000000000,"revision":"7","epoch":"e","data":null}`,
		`{"topic":"a","revision":"7","data":[1,2]}`,
		`{"topic":"a","revision":"7","epoch":null,"sourceId":null,"timestampMs":null,"data":1}`,
		`{"topic":"a\u0062","revision":"\u0037","epoch":"e\n","data":"s"}`,
		`{"topic":"a","revision":"7","timestampMs":1.5e3,"data":{}}`,
		`{"TOPIC":"a","Revision":"7","DATA":true}`,
		`{"topic":"a","revision":"7","data":1,"revision":"8"}`,
		`{"topic":"a","revision":"7","epoch":"e","data":1,"extra":{"y":[1]}}`,
		// Payloads the fast path must leave to the two-pass decoding.
		`{"topic":"a","revision":"7","epoch":"e"}`,
		`{"topic":"a","revision":7,"data":1}`,
		`{"topic":"a","revision":"07","data":1}`,
		`{"topic":"a","revision":null,"data":1}`,
		`{"topic":"a","data":1}`,
		`{"topic":" ","revision":"7","data":1}`,
		`{"topic":5,"revision":"7","data":1}`,
		`{"revision":"7","data":1}`,
		`{"topic":"a","revision":"7","epoch":5,"data":1}`,
		`{"topic":"a","revision":"7","sourceId":5,"data":1}`,
		`{"topic":"a","revision":"7","timestampMs":"5","data":1}`,
		`{"topic":"a","revision":"7","timestampMs":1e300,"data":1}`,
		`{"topic":"a","revision":"7","data":1`,
		`[1]`,
		`null`,
	}
	for _, p := range payloads {
		inv, snap, ok := decodeInline([]byte(p))
		wantInv, ierr := statesync.DecodeInvalidation([]byte(p))
		wantSnap, serr := statesync.DecodeSnapshot([]byte(p))
		if !ok {
			continue // the caller decodes it in two passes: same result by construction
		}
		if ierr != nil || serr != nil {
			t.Errorf("decodeInline(%s) accepted it; DecodeInvalidation = %v, DecodeSnapshot = %v", p, ierr, serr)
			continue
		}
		if inv != wantInv {
			t.Errorf("decodeInline(%s) invalidation = %+v; want %+v", p, inv, wantInv)
		}
		if snap.Revision != wantSnap.Revision || snap.Epoch != wantSnap.Epoch || !bytes.Equal(snap.Data, wantSnap.Data) {
			t.Errorf("decodeInline(%s) snapshot = %+v; want %+v", p, snap, wantSnap)
		}
	}
	// The well-formed frames the server writes take the fast path.
	for _, p := range payloads[:9] {
		if _, _, ok := decodeInline([]byte(p)); !ok {
			t.Errorf("decodeInline(%s) = not ok; want the one-pass decoding of a well-formed frame", p)
		}
	}
	for _, p := range payloads {
		checkInlineDecoding(t, []byte(p))
	}
}

// checkInlineDecoding fails t if decodeInline or scanInline accepts
// payload with a result other than the two-pass decoding's.
func checkInlineDecoding(t *testing.T, payload []byte) {
	t.Helper()
	for name, decode := range map[string]func([]byte) (statesync.Invalidation, statesync.Snapshot, bool){
		"decodeInline": decodeInline, "scanInline": scanInline,
	} {
		inv, snap, ok := decode(bytes.Clone(payload))
		if !ok {
			continue
		}
		wantInv, ierr := statesync.DecodeInvalidation(payload)
		wantSnap, serr := statesync.DecodeSnapshot(payload)
		if ierr != nil || serr != nil {
			t.Fatalf("%s(%q) accepted it; DecodeInvalidation = %v, DecodeSnapshot = %v", name, payload, ierr, serr)
		}
		if inv != wantInv {
			t.Fatalf("%s(%q) invalidation = %+v; want %+v", name, payload, inv, wantInv)
		}
		if snap.Revision != wantSnap.Revision || snap.Epoch != wantSnap.Epoch || !bytes.Equal(snap.Data, wantSnap.Data) {
			t.Fatalf("%s(%q) snapshot = %+v (data %q); want %+v (data %q)", name, payload, snap, snap.Data, wantSnap, wantSnap.Data)
		}
	}
}

// The inline frames the Handler writes take the reflection-free path,
// whatever their data (line breaks included) and optional fields.
func TestScanInlineTakesServerFrames(t *testing.T) {
	src, h := newMemHandler(t, "ep-1")
	ctx := context.Background()
	for i, data := range []string{`{"theme":"dark"}`, "{\n  \"a\": [1,\n 2]\n}", `null`, `"s"`, `[{"k":"\u00e9\n"}]`} {
		snap, err := src.Put(ctx, "cfg:main", json.RawMessage(data))
		if err != nil {
			t.Fatal(err)
		}
		inv := statesync.Invalidation{Topic: "cfg:main", Revision: snap.Revision, Epoch: snap.Epoch}
		if i%2 == 1 {
			inv.SourceID, inv.TimestampMs = "writer-1", 1700000000000+int64(i)
		}
		st := &stream{topics: map[string]*streamTopic{"cfg:main": {name: "cfg:main"}}}
		fw := &frameWriter{h: h, st: st, ctx: ctx, inline: 1 << 20}
		fw.frame(inv)
		frame := string(fw.pending())
		payload, found := strings.CutPrefix(frame, "event: snapshot\ndata: ")
		if !found || !strings.HasSuffix(payload, "\n\n") {
			t.Fatalf("frame = %q; want an inline snapshot frame", frame)
		}
		payload = strings.ReplaceAll(strings.TrimSuffix(payload, "\n\n"), "\ndata: ", "\n")
		got, gotSnap, ok := scanInline([]byte(payload))
		if !ok {
			t.Fatalf("scanInline(%q) = not ok; want the server's frame decoded", payload)
		}
		if got != inv || gotSnap.Revision != snap.Revision || gotSnap.Epoch != snap.Epoch {
			t.Errorf("scanInline(%q) = %+v, %+v; want %+v at %v/%v", payload, got, gotSnap, inv, snap.Epoch, snap.Revision)
		}
		checkInlineDecoding(t, []byte(payload))
	}
}

// FuzzDecodeInline: the fast decodings of an inline frame never disagree
// with the two-pass decoding, and never panic.
func FuzzDecodeInline(f *testing.F) {
	for _, p := range []string{
		`{"topic":"a","revision":"7","epoch":"e","data":{"x":1}}`,
		`{"topic":"a","sourceId":"s","timestampMs":1700000000000,"revision":"7","epoch":"e","data":null}`,
		`{"topic":"a","revision":"7","data":1,"revision":"8"}`,
		`{"topic":"a","revision":"7","data": 1 }`,
		`{"topic":"a","timestampMs":0,"revision":"18446744073709551615","data":"}"}`,
	} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkInlineDecoding(t, payload)
	})
}

func BenchmarkDecodeInline(b *testing.B) {
	p := []byte(`{"topic":"config","sourceId":"w1","timestampMs":1700000000000,"revision":"123","epoch":"e","data":{"theme":"dark","n":[1,2,3]}}`)
	b.Run("one-pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := decodeInline(p); !ok {
				b.Fatal("not ok")
			}
		}
	})
	b.Run("two-pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := statesync.DecodeInvalidation(p); err != nil {
				b.Fatal(err)
			}
			if _, err := statesync.DecodeSnapshot(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
