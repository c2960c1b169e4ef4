package httpsync

import (
	"errors"
	"net/http"
	"os"
	"sync"
	"time"
)

// limitBody gives the read of r's body, if it has one, the deadline of
// HandlerOptions.ReadTimeout. It bounds reading the body in the handler,
// and the reading net/http does after the handler to reuse the connection.
// A request without a body is left alone: net/http clears its read
// deadline before the handler runs (as it does for a body once it is read
// to its end), so an event stream is never cut by a read deadline.
func (h *Handler) limitBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 && h.opts.ReadTimeout > 0 {
		// ErrNotSupported (a ResponseWriter of a test): no deadline.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.opts.ReadTimeout))
	}
}

// dropBody prepares the refusal of a request whose body may be unread: the
// response says "Connection: close" (net/http then closes the connection
// after it instead of reading the rest of the body, which a client that
// stalls would make it wait for), and whatever net/http still reads of the
// body fails at once. Call it before writing the response.
func (h *Handler) dropBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.ProtoMajor != 1 {
		return // HTTP/2 ends the stream alone, not the connection
	}
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
}

// bodyTimedOut reports whether err, from reading a body, is the read
// deadline's.
func bodyTimedOut(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// tokenStreams counts the event streams open per token. The zero value is
// ready to use.
type tokenStreams struct {
	mu sync.Mutex // protects n
	n  map[*TokenGrants]int
}

// acquire counts a new stream of g, unless g already has max of them open
// (max < 0: no cap). It returns the token the stream is counted under, to
// give to release: nil for Grants that are not a *TokenGrants, which are
// not counted.
func (ts *tokenStreams) acquire(g Grants, max int) (owner *TokenGrants, ok bool) {
	tg, isToken := g.(*TokenGrants)
	if !isToken || tg == nil || max < 0 {
		return nil, true
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.n[tg] >= max {
		return nil, false
	}
	if ts.n == nil {
		ts.n = map[*TokenGrants]int{}
	}
	ts.n[tg]++
	return tg, true
}

// release ends the count of a stream acquired for owner (nil: not
// counted).
func (ts *tokenStreams) release(owner *TokenGrants) {
	if owner == nil {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if n := ts.n[owner] - 1; n > 0 {
		ts.n[owner] = n
	} else {
		delete(ts.n, owner)
	}
}
