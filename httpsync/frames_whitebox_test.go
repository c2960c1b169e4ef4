package httpsync

import (
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/statesync-go/statesync"
)

// oldInlineFrame is the inline frame as the handler built it before
// frames were shared, copying into each stream's buffer: the format the
// clients parse, which must not change by a byte.
func oldInlineFrame(inv statesync.Invalidation, snap statesync.Snapshot, enc []byte) []byte {
	b := append([]byte("event: snapshot\ndata: "), `{"topic":`...)
	b = appendQuoted(b, inv.Topic)
	if snap.Revision == inv.Revision && snap.Epoch == inv.Epoch {
		if inv.SourceID != "" {
			b = append(b, `,"sourceId":`...)
			b = appendQuoted(b, inv.SourceID)
		}
		if inv.TimestampMs != 0 {
			b = strconv.AppendInt(append(b, `,"timestampMs":`...), inv.TimestampMs, 10)
		}
	}
	b = append(b, ',')
	b = appendDataLines(b, enc[1:])
	return append(b, "\n\n"...)
}

// Issue 9, item 4: the streams that send a revision inline write the same
// bytes, byte for byte the frame clients parse, and a large one from one
// shared copy (the handler's encoding of the revision, if it has no line breaks), not
// a copy each.
func TestInlineFramesShared(t *testing.T) {
	src, h := newMemHandler(t, "ep-1")
	ctx := context.Background()
	big := strings.Repeat("x", 100_000)
	for _, tc := range []struct {
		name, data string
		shared     bool // written from the shared bytes rather than copied
	}{
		{"small", `{"theme":"dark"}`, false},
		{"small with line breaks", "{\n  \"a\": [1,\n 2]\n}", false},
		{"large", `{"pad":"` + big + `"}`, true},
		{"large with line breaks", "{\r\n\"pad\":\n\"" + big + "\"\r}", true},
		{"large with escapes", `{"pad":"` + big + `\n\u2028<>&"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := src.Put(ctx, "cfg:main", json.RawMessage(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			enc, _, err := h.encoded(ctx, "cfg:main")
			if err != nil {
				t.Fatal(err)
			}
			for _, inv := range []statesync.Invalidation{
				{Topic: "cfg:main", Revision: snap.Revision, Epoch: snap.Epoch},
				{Topic: "cfg:main", Revision: snap.Revision, Epoch: snap.Epoch, SourceID: "writer-1", TimestampMs: 1700000000000},
				{Topic: "cfg:main", Revision: snap.Revision - 1, Epoch: snap.Epoch, SourceID: "writer-0"}, // the snapshot is newer
			} {
				var writers [3]*frameWriter
				for i := range writers {
					st := &stream{topics: map[string]*streamTopic{"cfg:main": {name: "cfg:main"}}}
					writers[i] = &frameWriter{h: h, st: st, ctx: ctx, inline: 1 << 20}
					writers[i].frame(inv)
					if got, want := string(writers[i].pending()), string(oldInlineFrame(inv, snap, enc)); got != want {
						t.Fatalf("frame of %+v = %.200q; want %.200q", inv, got, want)
					}
				}
				if !tc.shared {
					if len(writers[0].parts) != 0 {
						t.Errorf("a small frame is written from %d shared parts; want copied", len(writers[0].parts))
					}
					continue
				}
				body := func(fw *frameWriter) []byte {
					for _, p := range fw.parts {
						if len(p) > 1000 {
							return p
						}
					}
					t.Fatalf("no large part in the write of a %d-byte frame: %d parts", len(enc), len(fw.parts))
					return nil
				}
				b0 := body(writers[0])
				for _, fw := range writers[1:] {
					if b := body(fw); &b[0] != &b0[0] {
						t.Errorf("two streams write the body of %+v from different copies; want one shared", inv)
					}
				}
				if !strings.ContainsAny(string(enc), "\r\n") && &b0[0] != &enc[1] {
					t.Error("a body without line breaks is a copy of the source's encoding; want the encoding itself")
				}
			}
		})
	}
}

// The bytes allocated to frame a large revision for a stream do not grow
// with the snapshot: 200 streams of a 100 KB snapshot allocate far less
// than one copy of it each.
func TestInlineFrameAllocations(t *testing.T) {
	src, h := newMemHandler(t, "e")
	ctx := context.Background()
	snap, err := src.Put(ctx, "t", json.RawMessage(`{"pad":"`+strings.Repeat("x", 100_000)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	inv := statesync.Invalidation{Topic: "t", Revision: snap.Revision, Epoch: snap.Epoch, SourceID: "w", TimestampMs: 1}
	const n = 200
	writers := make([]*frameWriter, n)
	for i := range writers {
		writers[i] = &frameWriter{h: h, st: &stream{topics: map[string]*streamTopic{"t": {name: "t"}}}, ctx: ctx, inline: 1 << 20}
	}
	writers[0].frame(inv) // the shared frame is built once
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, fw := range writers[1:] {
		fw.frame(inv)
	}
	runtime.ReadMemStats(&after)
	perStream := (after.TotalAlloc - before.TotalAlloc) / (n - 1)
	t.Logf("%d bytes allocated per stream to frame a %d-byte snapshot", perStream, len(snap.Data))
	if perStream > 4<<10 {
		t.Errorf("%d bytes allocated per stream to frame a %d-byte snapshot; want < 4 KiB (the frame shared)", perStream, len(snap.Data))
	}
}

// The handler encodes each revision's snapshot once and shares the bytes
// between requests and streams; a newer revision gets new bytes and leaves
// the old ones untouched.
func TestHandlerEncoded(t *testing.T) {
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 41, Epoch: `e"q`}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := NewHandler(src, nil)
	defer h.Close()
	ctx := context.Background()

	b0, s0, err := h.encoded(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"revision":"0","epoch":"e\"q","data":null}`; string(b0) != want || s0.Revision != 0 {
		t.Errorf("encoded(never written) = %s, revision %d; want %s, revision 0", b0, s0.Revision, want)
	}

	if _, err := src.Put(ctx, "t", json.RawMessage(`{"a":[1,2]}`)); err != nil {
		t.Fatal(err)
	}
	const want = `{"revision":"41","epoch":"e\"q","data":{"a":[1,2]}}`
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		bufs [][]byte
	)
	for range 8 {
		wg.Go(func() {
			b, s, err := h.encoded(ctx, "t")
			if err != nil || s.Revision != 41 {
				t.Errorf("encoded(t) = %+v, %v; want revision 41", s, err)
				return
			}
			mu.Lock()
			bufs = append(bufs, b)
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, b := range bufs {
		if string(b) != want {
			t.Errorf("encoded(t) #%d = %s; want %s", i, b, want)
		}
		if &b[0] != &bufs[0][0] {
			t.Errorf("encoded(t) #%d has its own backing array; want one encoding per revision shared by every reader", i)
		}
	}

	if _, err := src.Put(ctx, "t", json.RawMessage(`"next"`)); err != nil {
		t.Fatal(err)
	}
	b2, _, err := h.encoded(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if want2 := `{"revision":"42","epoch":"e\"q","data":"next"}`; string(b2) != want2 {
		t.Errorf("encoded(t) after another Put = %s; want %s", b2, want2)
	}
	if string(bufs[0]) != want {
		t.Errorf("earlier encoded bytes changed to %s after a Put; want them untouched (%s)", bufs[0], want)
	}
}

// pending returns the bytes of the next write, copied .
func (fw *frameWriter) pending() []byte {
	var b []byte
	for _, p := range fw.parts {
		b = append(b, p...)
	}
	return append(b, fw.buf[fw.mark:]...)
}

// Issue 14: the frames the fan-out goroutine builds once for every stream
// (fanFrame) are byte for byte those a stream builds itself, inline or
// not, whatever the data, the optional fields and the stream's inline
// bound, and they mark the same revision sent.
func TestFanFrameSameBytes(t *testing.T) {
	src, h := newMemHandler(t, "ep-1")
	ctx := context.Background()
	big := `{"pad":"` + strings.Repeat("x", 10_000) + `"}`
	for _, data := range []string{`{"theme":"dark"}`, "{\n  \"a\": [1,\n 2]\n}", big, "{\r\n\"pad\":\n\"" + big[8:], `"\u2028<>&"`, `null`} {
		snap, err := src.Put(ctx, "cfg:main", json.RawMessage(data))
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range []statesync.Invalidation{
			{Topic: "cfg:main", Revision: snap.Revision, Epoch: snap.Epoch},
			{Topic: "cfg:main", Revision: snap.Revision, Epoch: snap.Epoch, SourceID: "writer-1", TimestampMs: 1700000000000},
			{Topic: "cfg:main", Revision: snap.Revision, Epoch: snap.Epoch, TimestampMs: 1700000000001},
			{Topic: "cfg:main", Revision: snap.Revision - 1, Epoch: snap.Epoch, SourceID: "writer-0"}, // the snapshot is newer
			{Topic: "cfg:main", Revision: snap.Revision + 1, Epoch: snap.Epoch},                       // the snapshot is older: read by the stream
		} {
			for _, inline := range []int{-1, 0, 100, 1 << 20} {
				var got [2]string
				var sent [2]statesync.Invalidation
				for i, fr := range []*fanFrame{nil, h.fanFrame(inv, true)} {
					st := &stream{topics: map[string]*streamTopic{"cfg:main": {name: "cfg:main"}}}
					fw := &frameWriter{h: h, st: st, ctx: ctx, inline: inline}
					fw.frameOf(st.topics["cfg:main"], inv, fr)
					got[i], sent[i] = string(fw.pending()), st.topics["cfg:main"].sent
				}
				if got[1] != got[0] || sent[1] != sent[0] {
					t.Errorf("data %.40q, %+v, inline %d: fan-out frame %.200q (sent %+v); want the stream's own %.200q (sent %+v)",
						data, inv, inline, got[1], sent[1], got[0], sent[0])
				}
			}
		}
	}
	// Without inline streams, the fan-out goroutine builds no snapshot frame.
	if fr := h.fanFrame(statesync.Invalidation{Topic: "cfg:main", Revision: 1, Epoch: "ep-1"}, false); fr.snap != nil || len(fr.invalidation) == 0 {
		t.Errorf("fanFrame(inline false) = snap %v, invalidation %q; want no snapshot frame, an invalidation frame", fr.snap, fr.invalidation)
	}
}
