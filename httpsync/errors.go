package httpsync

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/statesync-go/statesync"
)

// The error codes of the JSON error bodies the [Handler] writes, in
// {"error":{"code":…,"message":…}}. Each goes with one HTTP status.
const (
	CodeInvalidTopic     = "invalid_topic"          // 400: the topic breaks the topic rules
	CodeInvalidJSON      = "invalid_json"           // 400: the body is not valid JSON in UTF-8, or nests deeper than HandlerOptions.MaxDepth
	CodeInvalidIfMatch   = "invalid_if_match"       // 400: If-Match is not one entity tag of the documented forms
	CodeInvalidParameter = "invalid_parameter"      // 400: a query parameter is malformed
	CodeTooManyTopics    = "too_many_topics"        // 400: an event stream's prefixes match more than HandlerOptions.MaxPrefixTopics topics
	CodeUnauthorized     = "unauthorized"           // 401: no token, or an unknown one
	CodeForbidden        = "forbidden"              // 403: the topic is outside the token's grants, or X-Source-Id is not the token's
	CodeNotFound         = "not_found"              // 404: no such route
	CodeMethodNotAllowed = "method_not_allowed"     // 405: the route exists, not with this method
	CodeTimeout          = "timeout"                // 408: the body did not arrive within HandlerOptions.ReadTimeout
	CodeContention       = "contention"             // 409: a PATCH lost its compare-and-set too many times
	CodeConflict         = "conflict"               // 412: If-Match does not name the current revision
	CodeTooLarge         = "too_large"              // 413: the body is over HandlerOptions.MaxBody
	CodeUnsupportedMedia = "unsupported_media_type" // 415: a PATCH body that is not a merge patch
	CodeTooManyStreams   = "too_many_streams"       // 429: the token has HandlerOptions.MaxStreamsPerToken streams open
	CodeInternal         = "internal"               // 500: the store failed
	CodeUnavailable      = "unavailable"            // 503: the handler or its source is closed
)

// errorBody is the JSON form of every error response. A 412 also carries
// the topic's current revision and epoch, and the expected revision.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code     string              `json:"code"`
	Message  string              `json:"message"`
	Topic    string              `json:"topic,omitempty"`
	Revision *statesync.Revision `json:"revision,omitempty"` // 412: the current revision
	Epoch    string              `json:"epoch,omitempty"`    // 412: the current epoch
	Expected *statesync.Revision `json:"expected,omitempty"` // 412: the revision If-Match named
}

// A StatusError is returned by the [Client] for a response with a status
// other than 2xx and 304 (a 412 is a *[statesync.ConflictError] instead).
// It carries the code and message of the server's JSON error body, when it
// had one.
type StatusError struct {
	// Method and URL are those of the request.
	Method, URL string
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// Code and Message come from the server's error body; Code is empty if
	// the body was not the documented JSON.
	Code, Message string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("httpsync: %s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Retryable reports whether the request is worth repeating: true for 5xx,
// 408 and 429 responses, false for every other 4xx. [statesync.IsRetryable]
// asks it.
func (e *StatusError) Retryable() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
}

// maxErrorBody bounds how much of an error response the client reads.
const maxErrorBody = 64 << 10

// readError builds the error of a failed response. A 412 becomes a
// *statesync.ConflictError.
func readError(resp *http.Response, topic string, expected statesync.Revision) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body errorBody
	_ = json.Unmarshal(b, &body) // a foreign body leaves Code empty
	if resp.StatusCode == http.StatusPreconditionFailed {
		ce := &statesync.ConflictError{Topic: topic, Expected: expected, Epoch: body.Error.Epoch}
		if body.Error.Revision != nil {
			ce.Current = *body.Error.Revision
		}
		return ce
	}
	e := &StatusError{Method: resp.Request.Method, URL: resp.Request.URL.String(), StatusCode: resp.StatusCode,
		Code: body.Error.Code, Message: body.Error.Message}
	if e.Code == "" && len(b) > 0 && len(b) <= 200 {
		e.Message = string(b)
	}
	return e
}

// writeError writes the JSON error body of status.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeErrorBody(w, status, errorDetail{Code: code, Message: msg})
}

func writeErrorBody(w http.ResponseWriter, status int, d errorDetail) {
	b, _ := json.Marshal(errorBody{Error: d}) // only strings and revisions
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="statesync"`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
