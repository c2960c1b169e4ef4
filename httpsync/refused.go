package httpsync

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// A refusal is the payload of a refused frame of the event stream: a topic
// the stream named and does not follow, with the code and message of the
// error a request for that topic alone would get (CodeForbidden,
// CodeInvalidTopic).
type refusal struct {
	Topic   string `json:"topic"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// appendRefused appends a refused frame for each of refused.
func appendRefused(buf []byte, refused []refusal) []byte {
	for _, r := range refused {
		b, _ := json.Marshal(r) // only strings; JSON escapes line breaks
		buf = append(buf, "event: refused\ndata: "...)
		buf = append(buf, b...)
		buf = append(buf, "\n\n"...)
	}
	return buf
}

// refuseAll answers an event stream none of whose topics may be followed:
// the retry hint and the refused frames, then the end of the stream.
func (h *Handler) refuseAll(w http.ResponseWriter, refused []refusal) {
	buf := strconv.AppendInt([]byte("retry: "), h.opts.RetryHint.Milliseconds(), 10)
	buf = append(buf, "\n\n"...)
	buf = appendRefused(buf, refused)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}
