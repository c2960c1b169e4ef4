package httpsync

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"
)

// errFrameTooLarge is returned by the SSE reader for a line or an event
// larger than its limit.
var errFrameTooLarge = errors.New("httpsync: event stream frame too large")

// An sseEvent is what sseReader.next returns: a dispatched event, or a
// comment (which only tells that the stream is alive).
type sseEvent struct {
	comment bool
	typ     string // "message" if the event named none
	data    []byte // valid until the next call of next
	id      string
}

// sseReader parses a text/event-stream as the WHATWG HTML standard
// (§9.2.6) says: lines end with CRLF, LF or CR; a leading BOM is skipped;
// "field: value" lines set the event's fields; a blank line dispatches the
// event if it has data; lines starting with ":" are comments; unknown
// fields are ignored; an unfinished event at the end is discarded.
type sseReader struct {
	r       *bufio.Reader
	max     int // largest line or event data, in bytes
	started bool
	skipLF  bool // the last line ended with CR: a following LF belongs to it

	line  []byte
	data  []byte
	typ   string
	id    string
	retry time.Duration // the last retry field; 0 if none
	// retryLast says that the last thing read was a retry field: no event
	// or comment came after it.
	retryLast bool
}

func newSSEReader(r io.Reader, max int) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 32<<10), max: max}
}

// readLine returns the next line without its end.
func (p *sseReader) readLine() ([]byte, error) {
	p.line = p.line[:0]
	if p.skipLF {
		c, err := p.r.ReadByte()
		if err != nil {
			return nil, err
		}
		p.skipLF = false
		if c != '\n' {
			_ = p.r.UnreadByte()
		}
	}
	for {
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				if err == io.EOF && len(p.line) > 0 {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			i = len(buf)
		}
		if len(p.line)+i > p.max {
			return nil, errFrameTooLarge
		}
		p.line = append(p.line, buf[:i]...)
		if i < len(buf) {
			p.skipLF = buf[i] == '\r'
			_, _ = p.r.Discard(i + 1)
			return p.line, nil
		}
		_, _ = p.r.Discard(i)
	}
}

// next returns the next event or comment.
func (p *sseReader) next() (sseEvent, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if !p.started {
			p.started = true
			line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
		}
		if len(line) == 0 { // dispatch
			typ := p.typ
			p.typ = ""
			if len(p.data) == 0 {
				continue
			}
			data := p.data[:len(p.data)-1] // the last "\n"
			p.data = p.data[:0]
			if typ == "" {
				typ = "message"
			}
			p.retryLast = false
			return sseEvent{typ: typ, data: data, id: p.id}, nil
		}
		if line[0] == ':' {
			p.retryLast = false
			return sseEvent{comment: true}, nil
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			switch string(value) { // the known types without allocating
			case "invalidation":
				p.typ = "invalidation"
			case "snapshot":
				p.typ = "snapshot"
			default:
				p.typ = string(value)
			}
		case "data":
			if len(p.data)+len(value)+1 > p.max {
				return sseEvent{}, errFrameTooLarge
			}
			p.data = append(append(p.data, value...), '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.id = string(value)
			}
		case "retry":
			if ms, ok := parseDigits(value); ok {
				p.retry = time.Duration(ms) * time.Millisecond
				p.retryLast = true
			}
		}
	}
}

// parseDigits parses a non-empty string of ASCII digits, saturating at one
// day's worth of milliseconds.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 86_400_000 {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, 86_400_000), true
}
