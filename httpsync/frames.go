package httpsync

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/statesync-go/statesync"
)

// A sharedFrame is the inline snapshot frame of one revision of a topic,
// built once and written by every stream that sends it: streams refer to
// its bytes, which never change, instead of copying them, so a thousand
// stalled streams of a 1 MB topic hold one copy, not a thousand.
//
// The frame of a revision is
//
//	event: snapshot
//	data: {"topic":…,[sourceId,timestampMs,]"revision":…,"epoch":…,"data":…}
//
// (the data lines split where the JSON has line breaks, and a blank line
// after): head, then body, then "\n\n".
type sharedFrame struct {
	version

	once sync.Once
	enc  []byte // the snapshot's encoding, shared with Handler.encoded
	body []byte // the data lines of enc[1:]: enc[1:] itself unless it has line breaks
	bare []byte // the head without sourceId and timestampMs: `event: snapshot\ndata: {"topic":…,`
	// full is the head with the sourceId and timestampMs of the
	// invalidation of the revision (the same for every stream).
	full atomic.Pointer[frameHead]
	// bareWhole is the whole frame with the bare head (see
	// frameHead.whole), once asked for.
	bareWhole atomic.Pointer[[]byte]
}

// frameHead is a frame head with the optional fields of an invalidation.
type frameHead struct {
	sourceID    string
	timestampMs int64
	b           []byte
	whole       []byte // see sharedFrame.whole
}

// whole returns the whole frame of f with head, for the streams that send
// it: head, body and the blank line in one slice, which a stream appends
// at once; nil if the body is larger than sharedCopyMax (streams then
// refer to the body, see frameWriter.addShared).
func (f *sharedFrame) whole(head *frameHead) []byte {
	if head != nil {
		return head.whole
	}
	if b := f.bareWhole.Load(); b != nil {
		return *b
	}
	b := f.appendWhole(nil, f.bare)
	f.bareWhole.Store(&b)
	return b
}

// appendWhole appends the whole frame with head to buf; it appends nothing
// if the body is larger than sharedCopyMax.
func (f *sharedFrame) appendWhole(buf, head []byte) []byte {
	if len(f.body) > sharedCopyMax {
		return buf
	}
	buf = append(buf, head...)
	buf = append(buf, f.body...)
	return append(buf, "\n\n"...)
}

// sharedFrame returns the frame of snap, the snapshot of topic encoded as
// enc (by [Handler.encoded]). The newest revision of each topic
// is kept, so the streams that send it share one frame.
func (h *Handler) sharedFrame(topic string, snap statesync.Snapshot, enc []byte) *sharedFrame {
	f := newestEntry(&h.frames, topic, version{snap.Epoch, snap.Revision}, func(v version) *sharedFrame { return &sharedFrame{version: v} })
	f.once.Do(func() {
		f.enc = enc
		f.body = enc[1:]
		for _, c := range f.body {
			if c == '\n' || c == '\r' {
				f.body = appendDataLines(make([]byte, 0, len(enc)+len(enc)/8), enc[1:])
				break
			}
		}
		b := append([]byte("event: snapshot\ndata: "), `{"topic":`...)
		b = appendQuoted(b, topic)
		f.bare = append(b, ',')
	})
	return f
}

// head returns the frame's head for inv, an invalidation of the frame's
// revision: with inv's sourceId and timestampMs, if it has them.
func (f *sharedFrame) head(inv statesync.Invalidation) []byte {
	if h := f.fullHead(inv); h != nil {
		return h.b
	}
	return f.bare
}

// fullHead returns the frame's head with inv's sourceId and timestampMs,
// or nil if inv has neither (the head is then f.bare).
func (f *sharedFrame) fullHead(inv statesync.Invalidation) *frameHead {
	if inv.SourceID == "" && inv.TimestampMs == 0 {
		return nil
	}
	if h := f.full.Load(); h != nil && h.sourceID == inv.SourceID && h.timestampMs == inv.TimestampMs {
		return h
	}
	b := append([]byte(nil), f.bare[:len(f.bare)-1]...) // without the ','
	if inv.SourceID != "" {
		b = append(b, `,"sourceId":`...)
		b = appendQuoted(b, inv.SourceID)
	}
	if inv.TimestampMs != 0 {
		b = strconv.AppendInt(append(b, `,"timestampMs":`...), inv.TimestampMs, 10)
	}
	b = append(b, ',')
	h := &frameHead{sourceID: inv.SourceID, timestampMs: inv.TimestampMs, b: b, whole: f.appendWhole(nil, b)}
	f.full.Store(h)
	return h
}

// A fanFrame holds the frames of one invalidation, built once by the
// fan-out goroutine for every stream it notifies of it: the streams
// append these bytes instead of each encoding the same frame.
type fanFrame struct {
	// invalidation is `event: invalidation\ndata: {…}\n\n`.
	invalidation []byte
	// snap is the inline snapshot frame if the snapshot was in memory
	// (Source.PeekSnapshot) and not older than the invalidation; else nil,
	// and the streams that send it inline read it themselves.
	snap *sharedFrame
	head []byte // snap's head for the invalidation
	// whole is the whole snapshot frame (sharedFrame.whole); nil if the
	// body is large.
	whole []byte
	sent  statesync.Invalidation // the snapshot's revision, which snap sends
}

// fanFrame builds the frames of inv for the streams that follow its
// topic; inline says whether any stream sends snapshots inline.
func (h *Handler) fanFrame(inv statesync.Invalidation, inline bool) *fanFrame {
	fr := &fanFrame{}
	b := append(make([]byte, 0, 64+len(inv.Topic)+len(inv.Epoch)+len(inv.SourceID)), "event: invalidation\ndata: "...)
	b = inv.AppendJSON(b)
	fr.invalidation = append(b, "\n\n"...)
	if !inline {
		return fr
	}
	snap, ok := h.src.PeekSnapshot(inv.Topic)
	if !ok || (snap.Epoch == inv.Epoch && snap.Revision < inv.Revision) {
		return fr
	}
	enc := h.encodedSnapshot(inv.Topic, snap)
	if len(enc) <= 1 {
		return fr
	}
	f := h.sharedFrame(inv.Topic, snap, enc)
	fr.snap, fr.head = f, f.bare // a newer snapshot than inv: not inv's sourceId
	var head *frameHead
	if snap.Revision == inv.Revision && snap.Epoch == inv.Epoch {
		if head = f.fullHead(inv); head != nil {
			fr.head = head.b
		}
	}
	fr.whole = f.whole(head)
	fr.sent = statesync.Invalidation{Topic: inv.Topic, Revision: snap.Revision, Epoch: snap.Epoch}
	return fr
}

// inlineEstimate returns about the size of the encoding of topic's latest
// snapshot, as far as the source holds it in memory (0 if it does not):
// what a stream that sends it inline will have to write.
func (h *Handler) inlineEstimate(topic string) int64 {
	if h.opts.MaxStreamBuffer <= 0 {
		return 0
	}
	snap, ok := h.src.PeekSnapshot(topic)
	if !ok {
		return 0
	}
	// {"revision":"…","epoch":"…","data":…}
	return int64(len(snap.Data) + len(snap.Epoch) + 56)
}

// version is the epoch and revision of a per-revision cache entry.
type version struct {
	epoch string
	rev   statesync.Revision
}

func (v *version) ver() *version { return v }

// newestEntry returns the entry of m for topic at version v: the one
// cached if it is that version, else a new one made by mk, which is cached
// unless a newer version of topic is (then it serves the caller alone). m
// thus holds the newest version of each topic that was asked for, and each
// version's entry is shared by every caller that asks for it while it is
// the newest. A cached entry is found without allocating.
func newestEntry[E interface{ ver() *version }](m *sync.Map, topic string, v version, mk func(version) E) E {
	if old, ok := m.Load(topic); ok {
		if o := old.(E); *o.ver() == v {
			return o
		}
	}
	e := mk(v)
	for {
		old, loaded := m.LoadOrStore(topic, e)
		if !loaded {
			return e
		}
		o := old.(E)
		ov := o.ver()
		if ov.epoch == v.epoch && ov.rev == v.rev {
			return o
		}
		if ov.epoch == v.epoch && ov.rev > v.rev {
			return e // a newer one is cached: e is for this caller only
		}
		if m.CompareAndSwap(topic, old, e) {
			return e
		}
	}
}
