package httpsync

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// streamChunk is the most a stream hands its connection in one write, so
// that its unsent bytes (HandlerOptions.MaxStreamBuffer) are known to
// within a chunk while a large frame is being written.
const streamChunk = 64 << 10

// sharedCopyMax is the largest shared frame body a stream copies into its
// own buffer (one write call for small frames); larger ones are written
// from the shared bytes.
const sharedCopyMax = 2 << 10

// streamSendBuffer returns the kernel send buffer (SO_SNDBUF, which Linux
// doubles) of a hijacked stream's connection: an eighth of bound, the
// stream's MaxStreamBuffer, within [16 KiB, 4 MiB]. The kernel's own
// tuning would let each connection whose client reads nothing hold up to
// 4 MB of kernel memory, out of sight of the bound: 500 of them filled
// 1.6 GB and slowed every other connection of the host.
func streamSendBuffer(bound int64) int {
	return int(min(max(bound/8, 16<<10), 4<<20))
}

// streamSlowGrace is how long a stream may stay over MaxStreamBuffer
// before it is disconnected.
const streamSlowGrace = 5 * time.Second

// configure sets what the stream needs to count its buffered bytes: its
// inline bound and the handler's options.
func (st *stream) configure(h *Handler, inline int) {
	st.mu.Lock()
	st.inline = inline
	if inline >= 0 && !st.countedInline {
		st.countedInline = true
		h.inlineStreams.Add(1)
	}
	st.max = h.opts.MaxStreamBuffer
	st.grace = streamSlowGrace
	st.timeout = h.opts.WriteTimeout
	st.mu.Unlock()
}

// checkOver notes when the stream's buffered bytes (the unsent rest of the
// write in progress plus the pending inline snapshots) go over the bound
// and when they come back under it. Over it, the write deadline is at most
// the grace away from the moment they went over. st.mu is held.
func (st *stream) checkOver() {
	if st.max <= 0 {
		return
	}
	over := st.unsent+st.pendingBytes > st.max
	switch {
	case over && st.overSince.IsZero():
		st.overSince = time.Now()
		if st.writing {
			st.armSlow()
		}
	case !over && !st.overSince.IsZero():
		st.overSince = time.Time{}
		if st.slowDL {
			st.restoreDeadline()
		}
	}
}

// armSlow moves the write deadline to the end of the grace, unless the
// write timeout comes first. st.mu is held.
func (st *stream) armSlow() {
	if !st.alive || st.aborted {
		return
	}
	at := st.overSince.Add(st.grace)
	if st.timeout > 0 && !st.deadlineSet.IsZero() && st.deadlineSet.Add(st.timeout).Before(at) {
		return
	}
	_ = st.dl.SetWriteDeadline(at)
	st.slowDL = true
}

// restoreDeadline puts back the write timeout's deadline after the stream
// came back under the bound. st.mu is held.
func (st *stream) restoreDeadline() {
	st.slowDL = false
	if !st.alive || st.aborted {
		return
	}
	var at time.Time // none
	if st.timeout > 0 && !st.deadlineSet.IsZero() {
		at = st.deadlineSet.Add(st.timeout)
	}
	_ = st.dl.SetWriteDeadline(at)
}

// startWrite, wrote and endWrite count the bytes of a write in progress
// that the connection has not accepted yet.
func (st *stream) startWrite(n int) {
	st.mu.Lock()
	st.unsent, st.writing = int64(n), true
	st.checkOver()
	st.mu.Unlock()
}

func (st *stream) wrote(n int) {
	st.mu.Lock()
	st.unsent -= int64(n)
	st.checkOver()
	st.mu.Unlock()
}

func (st *stream) endWrite() {
	st.mu.Lock()
	st.unsent, st.writing = 0, false
	st.checkOver()
	st.mu.Unlock()
}

// cutSlow reports whether a write that failed was cut because the stream
// stayed over the bound for the grace (and not by Close, the client or
// the write timeout), with the bytes it had buffered.
func (st *stream) cutSlow() (slow bool, buffered int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	slow = st.slowDL && !st.aborted && !st.overSince.IsZero() && !time.Now().Before(st.overSince.Add(st.grace))
	return slow, st.unsent + st.pendingBytes
}

// fits reports whether an inline snapshot of n bytes may join the next
// write: the first one always may (a snapshot larger than the bound is
// written alone); others only within the bound. Those that do not fit are
// sent as invalidations, which the client answers with a GET.
func (fw *frameWriter) fits(n int) bool {
	max := fw.h.opts.MaxStreamBuffer
	return max <= 0 || fw.inlineBytes == 0 || int64(fw.inlineBytes+n) <= max
}

// addShared adds b, bytes that never change, to the next write: copied if
// small, else by reference.
func (fw *frameWriter) addShared(b []byte) {
	if len(b) <= sharedCopyMax {
		fw.buf = append(fw.buf, b...)
		return
	}
	fw.cutOwn()
	fw.parts = append(fw.parts, b)
}

// cutOwn moves the stream's own bytes not yet in parts into parts.
func (fw *frameWriter) cutOwn() {
	if len(fw.buf) > fw.mark {
		fw.parts = append(fw.parts, fw.buf[fw.mark:len(fw.buf):len(fw.buf)])
		fw.mark = len(fw.buf)
	}
}

// flush writes the next write and flushes the response; false means the
// stream is over (the client is gone or too slow, or Close aborted it).
func (fw *frameWriter) flush() bool {
	fw.cutOwn()
	n := 0
	for _, p := range fw.parts {
		n += len(p)
	}
	var err error
	slow := false
	var buffered int64
	if n > 0 {
		slow, buffered, err = fw.write(n)
	}
	clear(fw.parts) // drop the references to shared frames
	fw.parts, fw.mark, fw.inlineBytes = fw.parts[:0], 0, 0
	if cap(fw.buf) > 64<<10 {
		fw.buf = nil // do not keep a large buffer
	} else {
		fw.buf = fw.buf[:0]
	}
	if slow {
		fw.slow = true
		fw.h.stats.slowDisconnects.Add(1)
		fw.h.log.LogAttrs(context.Background(), slog.LevelDebug, "httpsync: slow stream disconnected",
			slog.Int64("buffered", buffered), slog.Int64("max", fw.h.opts.MaxStreamBuffer))
	}
	return err == nil
}

// errAborted ends a write of a stream aborted by Close.
var errAborted = errors.New("httpsync: stream aborted")

// write writes fw.parts, n bytes, in chunks of at most streamChunk bytes.
// If it fails, slow reports whether the stream was cut for staying over
// the bound, with the bytes it had buffered.
func (fw *frameWriter) write(n int) (slow bool, buffered int64, err error) {
	st := fw.st
	st.startWrite(n)
	defer st.endWrite()
	if err = fw.writeChunks(); err != nil {
		slow, buffered = st.cutSlow()
	}
	return slow, buffered, err
}

// writeChunks writes fw.parts and flushes the response.
func (fw *frameWriter) writeChunks() error {
	st := fw.st
	parts := fw.parts
	for len(parts) > 0 {
		if !st.setDeadline(fw.h.opts.WriteTimeout) {
			return errAborted
		}
		chunk := fw.chunk[:0]
		size := 0
		for len(parts) > 0 && size < streamChunk {
			p := parts[0]
			if k := streamChunk - size; len(p) > k {
				chunk = append(chunk, p[:k])
				parts[0] = p[k:]
				size += k
				break
			}
			chunk = append(chunk, p)
			parts = parts[1:]
			size += len(p)
		}
		fw.chunk = chunk
		var err error
		if len(chunk) == 1 {
			_, err = fw.out.Write(chunk[0])
		} else {
			fw.vec = chunk
			_, err = fw.vec.WriteTo(fw.out) // one writev on a hijacked connection
		}
		clear(chunk)
		if err != nil {
			return err
		}
		st.wrote(size)
	}
	if fw.flusher != nil {
		return fw.flusher()
	}
	return nil
}
