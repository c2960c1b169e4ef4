package statesync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// Fuzz targets for every wire decoder (DESIGN §8, STYLE rule 13). Run one
// with, for example:
//
//	go test -run='^$' -fuzz=FuzzDecodeInvalidation -fuzztime=10s .

// fuzzRevisionOracle is the canonical revision rule (B-REV-01) written
// independently of ParseRevision: "0", or a digit 1–9 followed by digits,
// whose value fits in a uint64 according to strconv.ParseUint.
func fuzzRevisionOracle(s string) (uint64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false // ParseUint alone would accept "+1" and "1_000"
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// B-REV-01..06, B-REV-09: ParseRevision, UnmarshalText and UnmarshalJSON
// accept exactly the canonical strings, with their numeric value, and the
// canonical form prints back unchanged.
func FuzzParseRevision(f *testing.F) {
	for _, s := range []string{
		"0", "1", "42", "999999999999", "18446744073709551615", "18446744073709551616",
		"99999999999999999999", "999999999999999999999", "00", "01", "007", "", "abc", "12a",
		"-1", "+1", "1.0", " 1", "1 ", "1_000", "0x1", "1e3", "١", "\x00", "0\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wantOK := fuzzRevisionOracle(s)
		r, err := statesync.ParseRevision(s)
		if (err == nil) != wantOK || wantOK && uint64(r) != want {
			t.Fatalf("ParseRevision(%q) = %v, %v; want %v, ok=%v", s, r, err, want, wantOK)
		}
		if err != nil && !errors.Is(err, statesync.ErrNonCanonicalRevision) {
			t.Fatalf("ParseRevision(%q) error %v does not wrap ErrNonCanonicalRevision", s, err)
		}
		if wantOK && r.String() != s {
			t.Fatalf("ParseRevision(%q).String() = %q; want the input", s, r.String())
		}

		var rt statesync.Revision
		if err := rt.UnmarshalText([]byte(s)); (err == nil) != wantOK || wantOK && rt != r {
			t.Fatalf("UnmarshalText(%q) = %v, %v; want %v, ok=%v", s, rt, err, r, wantOK)
		}

		// As a JSON string: the same verdict (for valid UTF-8, which JSON
		// strings hold; invalid bytes are never digits anyway).
		if utf8.ValidString(s) {
			js, _ := json.Marshal(s)
			var rj statesync.Revision
			if err := json.Unmarshal(js, &rj); (err == nil) != wantOK || wantOK && rj != r {
				t.Fatalf("json.Unmarshal(%s) = %v, %v; want %v, ok=%v", js, rj, err, r, wantOK)
			}
		}
		// As a bare JSON value it is never accepted unless it is a string.
		if !strings.HasPrefix(strings.TrimSpace(s), `"`) {
			var rb statesync.Revision
			if err := rb.UnmarshalJSON([]byte(s)); err == nil {
				t.Fatalf("Revision.UnmarshalJSON(%s) = %v, nil; want an error (not a JSON string)", s, rb)
			}
		}
		if wantOK {
			b, err := r.MarshalJSON()
			if err != nil || string(b) != `"`+s+`"` {
				t.Fatalf("Revision(%s).MarshalJSON() = %s, %v; want %q", s, b, err, s)
			}
		}
	})
}

// fuzzSeedPayloads are the seed payloads of the decoder fuzz targets.
var fuzzSeedPayloads = []string{
	`{"topic":"settings","revision":"42"}`,
	`{"topic":"settings","revision":"42","epoch":"k7Qx","sourceId":"w1","timestampMs":1764000000000}`,
	`{"topic":"t","revision":"0","epoch":"e2"}`,
	`{"topic":"t","revision":"18446744073709551615"}`,
	`{"topic":"t","revision":"18446744073709551616"}`,
	`{"topic":"","revision":"2"}`,
	`{"topic":"   ","revision":"2"}`,
	`{"topic":123,"revision":"2"}`,
	`{"topic":"t","revision":"01"}`,
	`{"topic":"t","revision":5}`,
	`{"topic":"t","revision":null}`,
	`{"topic":"t","revision":"1","sourceId":5,"timestampMs":"x","epoch":[]}`,
	`{"topic":"t","revision":"1","timestampMs":1e300}`,
	`{"topic":"t","revision":"1","timestampMs":-1.5}`,
	`{"topic":"\u0074","revision":"\u0031"}`,
	`{"TOPIC":"t","Revision":"1"}`,
	`{"garbage":true}`,
	`{garbage:true}`,
	`null`, `[]`, `""`, `1`, ``, `{`,
	`{"revision":"1","data":42}`,
	`{"revision":"0","data":null}`,
	`{"revision":"7","epoch":"e1","data":{"a":[1,2,{"b":null}]}}`,
	`{"revision":"7","epoch":7,"data":1}`,
	`{"revision":"7","epoch":null,"data":"x"}`,
	`{"revision":"7"}`,
	`{"revision":"7","data":1,"data":2}`,
	"{\"revision\":\"3\",\"data\":\"\xff\"}",
	"{\"topic\":\"t\xff\",\"revision\":\"3\",\"epoch\":\"\xfe\"}",
}

// fuzzStringsValid reports whether every string is valid UTF-8. JSON
// encoding replaces invalid bytes with U+FFFD, so only such values can
// survive a round trip unchanged.
func fuzzStringsValid(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// B-PROTO-01, B-PROTO-03..07, B-PROTO-11: DecodeInvalidation never panics,
// fails only with the documented sentinels, and what it accepts encodes
// and decodes back to the same value.
func FuzzDecodeInvalidation(f *testing.F) {
	for _, p := range fuzzSeedPayloads {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		inv, err := statesync.DecodeInvalidation(payload)
		if err != nil {
			if !errors.Is(err, statesync.ErrInvalidPayload) && !errors.Is(err, statesync.ErrNonCanonicalRevision) {
				t.Fatalf("DecodeInvalidation(%q) = %v; want an error wrapping ErrInvalidPayload or ErrNonCanonicalRevision", payload, err)
			}
			return
		}
		if strings.TrimSpace(inv.Topic) == "" {
			t.Fatalf("DecodeInvalidation(%q) accepted the empty topic %q", payload, inv.Topic)
		}
		enc := inv.AppendJSON(nil)
		if !json.Valid(enc) {
			t.Fatalf("AppendJSON(%+v) = %q; not valid JSON", inv, enc)
		}
		back, err := statesync.DecodeInvalidation(enc)
		if err != nil {
			t.Fatalf("DecodeInvalidation(AppendJSON(%+v)) = %v", inv, err)
		}
		if fuzzStringsValid(inv.Topic, inv.Epoch, inv.SourceID) && back != inv {
			t.Fatalf("DecodeInvalidation(%q) = %+v; re-encoded as %s it decodes to %+v", payload, inv, enc, back)
		}
		// Once through the encoder, values are fixed points.
		if again, err := statesync.DecodeInvalidation(back.AppendJSON(nil)); err != nil || again != back {
			t.Fatalf("round trip of %+v gives %+v, %v", back, again, err)
		}
	})
}

// B-PROTO-02, B-PROTO-12..14: DecodeSnapshot never panics, returns a
// *SnapshotError for every bad payload, and what it accepts encodes and
// decodes back to the same snapshot, data byte for byte.
func FuzzDecodeSnapshot(f *testing.F) {
	for _, p := range fuzzSeedPayloads {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		snap, err := statesync.DecodeSnapshot(payload)
		if err != nil {
			var se *statesync.SnapshotError
			if !errors.As(err, &se) {
				t.Fatalf("DecodeSnapshot(%q) = %v; want a *SnapshotError", payload, err)
			}
			if !errors.Is(err, statesync.ErrInvalidPayload) && !errors.Is(err, statesync.ErrNonCanonicalRevision) {
				t.Fatalf("DecodeSnapshot(%q) = %v; want an error wrapping ErrInvalidPayload or ErrNonCanonicalRevision", payload, err)
			}
			return
		}
		if len(snap.Data) == 0 || !json.Valid(snap.Data) {
			t.Fatalf("DecodeSnapshot(%q).Data = %q; want a JSON value", payload, snap.Data)
		}
		enc := snap.AppendJSON(nil)
		if m, err := snap.MarshalJSON(); err != nil || !bytes.Equal(m, enc) {
			t.Fatalf("MarshalJSON() = %s, %v; AppendJSON = %s", m, err, enc)
		}
		back, err := statesync.DecodeSnapshot(enc)
		if err != nil {
			t.Fatalf("DecodeSnapshot(AppendJSON(%+v)) = %v (encoded %q)", snap, err, enc)
		}
		if back.Revision != snap.Revision || !bytes.Equal(back.Data, snap.Data) ||
			fuzzStringsValid(snap.Epoch) && back.Epoch != snap.Epoch {
			t.Fatalf("DecodeSnapshot(%q) = %+v; re-encoded as %s it decodes to %+v", payload, snap, enc, back)
		}
		if again, err := statesync.DecodeSnapshot(back.AppendJSON(nil)); err != nil || again.Epoch != back.Epoch ||
			again.Revision != back.Revision || !bytes.Equal(again.Data, back.Data) {
			t.Fatalf("round trip of %+v gives %+v, %v", back, again, err)
		}
	})
}

// B-PROTO-03, DESIGN §3 ("bad input never crashes or stalls anything"): a
// started consumer over memsync that receives arbitrary raw payloads, mixed
// with real writes, never panics, never applies a revision that is not newer
// than the last, reports bad payloads only as protocol or invalidation
// errors, and still converges on the source's revision.
//
// The input is split at newlines into up to 16 payloads; bit i of writes
// makes the source write once before payload i is published.
func FuzzInvalidateRaw(f *testing.F) {
	f.Add([]byte(`{"topic":"fz","revision":"99999"}`), uint16(0))
	f.Add([]byte(`{"topic":"fz","revision":"3"}`+"\n"+`{"topic":"fz","revision":"01"}`+"\n"+`{"topic":"","revision":"2"}`), uint16(0b101))
	f.Add([]byte(`{"topic":"fz","revision":"18446744073709551615","epoch":"other"}`+"\n"+`{"topic":"fz","revision":"0","epoch":"x"}`), uint16(0xffff))
	f.Add([]byte(`{"topic":"other","revision":"abc"}`+"\n"+`{"garbage":true}`+"\n"+`{garbage:true}`+"\n"+`null`), uint16(0b1010))
	f.Add([]byte(`{"topic":123,"revision":5}`+"\n"+`{"topic":"fz","revision":"2","sourceId":7}`), uint16(1))
	f.Add([]byte("\n\n\xff"), uint16(0b111))
	for _, p := range fuzzSeedPayloads {
		f.Add([]byte(p), uint16(0b11))
	}
	f.Fuzz(func(t *testing.T, input []byte, writes uint16) {
		const topic = "fz"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1, Epoch: "e"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		bus := memsync.New(src)
		defer bus.Close()

		var (
			mu      sync.Mutex
			last    statesync.Revision
			any     bool
			bad     []string
			errs    []*statesync.Error
			applies int
		)
		app := statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
			mu.Lock()
			defer mu.Unlock()
			if any && s.Revision <= last {
				bad = append(bad, s.Revision.String()+" after "+last.String())
			}
			last, any = s.Revision, true
			applies++
			return nil
		})
		c, err := statesync.NewConsumer(topic, bus, bus, app, &statesync.ConsumerOptions{OnError: func(e *statesync.Error) {
			mu.Lock()
			errs = append(errs, e)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start() = %v", err)
		}
		defer func() {
			c.Stop()
			if err := c.Wait(ctx); err != nil {
				t.Errorf("Wait() = %v", err)
			}
		}()

		payloads := bytes.SplitN(input, []byte("\n"), 16)
		for i, p := range payloads {
			if writes&(1<<i) != 0 {
				if _, err := src.Put(ctx, topic, json.RawMessage(strconv.Itoa(i))); err != nil {
					t.Fatalf("Put() = %v", err)
				}
			}
			bus.PublishRaw(topic, p)
			c.InvalidateRaw(p) // directly too, as a transport without topic routing would
		}
		if err := c.Refresh(ctx); err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
		cur, err := src.Snapshot(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Revision(); got != cur.Revision {
			t.Errorf("consumer at revision %v after Refresh; source at %v", got, cur.Revision)
		}

		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			t.Errorf("applied revisions went backwards or repeated: %v", bad)
		}
		if applies == 0 {
			t.Errorf("nothing applied; Start should apply the initial snapshot")
		}
		for _, e := range errs {
			if e.Phase != statesync.PhaseProtocol && e.Phase != statesync.PhaseInvalidation {
				t.Errorf("reported %v (phase %s); want only protocol or invalidation errors", e, e.Phase)
			}
			if e.Topic != topic || !slices.ContainsFunc(payloads, func(p []byte) bool { return bytes.Equal(p, e.SourceEvent) }) {
				t.Errorf("reported %v with topic %q and source event %q; want topic %q and one of the raw payloads", e, e.Topic, e.SourceEvent, topic)
			}
		}
	})
}

// FuzzSourceTopicRoundTrip: a Source over the MemoryStore keeps any valid
// topic name under exactly its name, lists it by each of its prefixes,
// and emits its invalidation under it; an invalid name is refused
// (docs/PROTOCOL.md "Topic names").
func FuzzSourceTopicRoundTrip(f *testing.F) {
	for _, s := range []string{"settings", "my topic", "café", "cafe\u0301", "a\x00", "\xff", "..", "%_*[", "\U0010FFFF"} {
		f.Add(s)
	}
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { src.Close() })
	var mu sync.Mutex
	last := map[string]statesync.Revision{}
	stop, err := src.Watch(context.Background(), func(inv statesync.Invalidation) {
		mu.Lock()
		last[inv.Topic] = inv.Revision
		mu.Unlock()
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(stop)
	f.Fuzz(func(t *testing.T, name string) {
		ctx := context.Background()
		snap, err := src.Put(ctx, name, json.RawMessage(`1`))
		if statesync.CheckTopic(name) != nil {
			if !errors.Is(err, statesync.ErrInvalidTopic) {
				t.Fatalf("Put(%q) = %v; want ErrInvalidTopic", name, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Put(%q): %v", name, err)
		}
		if got, err := src.Snapshot(ctx, name); err != nil || got.Revision != snap.Revision {
			t.Fatalf("Snapshot(%q) = %+v, %v; want revision %d", name, got, err, snap.Revision)
		}
		mu.Lock()
		emitted := last[name]
		mu.Unlock()
		if emitted != snap.Revision {
			t.Fatalf("invalidation of %q at %d; want %d", name, emitted, snap.Revision)
		}
		for _, k := range []int{0, 1, len(name) / 2, len(name)} {
			prefix := name[:min(k, len(name))]
			list, err := src.ListPrefix(ctx, prefix)
			if err != nil || !slices.ContainsFunc(list, func(ti statesync.TopicInfo) bool { return ti.Topic == name }) {
				t.Fatalf("ListPrefix(%q) = %d topics, %v; want %q among them", prefix, len(list), err, name)
			}
		}
	})
}
