package statesync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// An Invalidation tells consumers that topic has changed and now stands at
// Revision. It carries no data: a consumer whose revision is older pulls the
// snapshot. Its JSON form is
//
//	{"topic":"settings","revision":"42","epoch":"k7Qx","sourceId":"w1","timestampMs":1764000000000}
//
// where epoch, sourceId and timestampMs are optional.
type Invalidation struct {
	// Topic names the state that changed.
	Topic string `json:"topic"`
	// Revision is the topic's revision after the change.
	Revision Revision `json:"revision"`
	// Epoch identifies the source's continuity. Consumers treat an
	// invalidation from another epoch as newer whatever its revision. Empty
	// means the source does not use epochs.
	Epoch string `json:"epoch,omitempty"`
	// SourceID optionally names the writer, so a consumer can skip its own
	// echo with [ConsumerOptions.ShouldRefresh].
	SourceID string `json:"sourceId,omitempty"`
	// TimestampMs is the optional time of the change in milliseconds since
	// the Unix epoch.
	TimestampMs int64 `json:"timestampMs,omitempty"`
}

// A Snapshot is the state of a topic at a revision. Its JSON form is
//
//	{"revision":"42","epoch":"k7Qx","data":{...}}
//
// Data is the raw JSON value of the state. Snapshots made by this module
// always hold valid JSON, "null" for a topic never written or deleted; a nil
// Data given to this module stands for null too. Snapshots handed out by a
// [Source] share their Data bytes between readers: treat Data as read-only.
type Snapshot struct {
	Revision Revision        `json:"revision"`
	Epoch    string          `json:"epoch,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// MarshalJSON encodes s, writing nil Data as null.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(nil), nil
}

// AppendJSON appends the JSON encoding of s to b. Data is copied verbatim;
// it must be valid JSON (nil is written as null).
func (s Snapshot) AppendJSON(b []byte) []byte {
	b = append(b, `{"revision":"`...)
	b, _ = s.Revision.AppendText(b)
	b = append(b, '"')
	if s.Epoch != "" {
		b = append(b, `,"epoch":`...)
		b = appendJSONString(b, s.Epoch)
	}
	b = append(b, `,"data":`...)
	if len(s.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, s.Data...)
	}
	return append(b, '}')
}

// AppendJSON appends the JSON encoding of inv to b.
func (inv Invalidation) AppendJSON(b []byte) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, inv.Topic)
	b = append(b, `,"revision":"`...)
	b, _ = inv.Revision.AppendText(b)
	b = append(b, '"')
	if inv.Epoch != "" {
		b = append(b, `,"epoch":`...)
		b = appendJSONString(b, inv.Epoch)
	}
	if inv.SourceID != "" {
		b = append(b, `,"sourceId":`...)
		b = appendJSONString(b, inv.SourceID)
	}
	if inv.TimestampMs != 0 {
		b = append(b, `,"timestampMs":`...)
		b = fmt.Appendf(b, "%d", inv.TimestampMs)
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	enc, _ := json.Marshal(s) // a string always marshals
	return append(b, enc...)
}

// MaxTopicLen is the longest valid topic name, in bytes.
const MaxTopicLen = 200

// validTopic reports whether name is a valid topic.
func validTopic(name string) bool {
	if len(name) == 0 || len(name) > MaxTopicLen || !isAlnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

// CheckTopic returns nil if name is a valid topic, 1 to [MaxTopicLen] bytes
// of A–Z, a–z, 0–9 and ". _ : -" starting with a letter or digit, and
// otherwise an error wrapping [ErrInvalidTopic] that says why.
func CheckTopic(name string) error {
	if validTopic(name) {
		return nil
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(name) > MaxTopicLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidTopic, len(name), MaxTopicLen)
	}
	return fmt.Errorf("%w: %q (use 1-%d bytes of A-Z a-z 0-9 . _ : -, starting with a letter or digit)", ErrInvalidTopic, truncate([]byte(name), 64), MaxTopicLen)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// rawInvalidation holds the fields of an invalidation payload before their
// types are checked.
type rawInvalidation struct {
	Topic       json.RawMessage `json:"topic"`
	Revision    json.RawMessage `json:"revision"`
	Epoch       json.RawMessage `json:"epoch"`
	SourceID    json.RawMessage `json:"sourceId"`
	TimestampMs json.RawMessage `json:"timestampMs"`
}

// decodedInvalidation is the result of decoding an invalidation payload as far
// as it goes, so that the engine can filter by topic before judging the
// revision and report what was wrong.
type decodedInvalidation struct {
	inv      Invalidation
	topicOK  bool   // topic is a JSON string
	rawRev   string // the revision as sent, if it was a JSON string
	revIsStr bool
	err      error // first problem found, nil if inv is valid
}

func decodeInvalidation(payload []byte) decodedInvalidation {
	var d decodedInvalidation
	var raw rawInvalidation
	if err := json.Unmarshal(payload, &raw); err != nil {
		d.err = fmt.Errorf("%w: invalidation is not a JSON object: %v", ErrInvalidPayload, err)
		return d
	}
	if t, ok := jsonString(raw.Topic); ok {
		d.inv.Topic, d.topicOK = t, true
	}
	if s, ok := jsonString(raw.Revision); ok {
		d.rawRev, d.revIsStr = s, true
	}
	// Optional fields of the wrong type are dropped silently.
	if s, ok := jsonString(raw.Epoch); ok {
		d.inv.Epoch = s
	}
	if s, ok := jsonString(raw.SourceID); ok {
		d.inv.SourceID = s
	}
	if n, ok := jsonInt(raw.TimestampMs); ok {
		d.inv.TimestampMs = n
	}
	switch {
	case !d.topicOK:
		d.err = fmt.Errorf("%w: topic in invalidation event is not a string", ErrInvalidPayload)
	case strings.TrimSpace(d.inv.Topic) == "":
		d.err = fmt.Errorf("%w: empty topic in invalidation event", ErrInvalidPayload)
	case !d.revIsStr:
		d.err = fmt.Errorf("%w: non-canonical revision in invalidation event: %s", ErrNonCanonicalRevision, rawOrMissing(raw.Revision))
	default:
		r, ok := parseRevision(d.rawRev)
		if !ok {
			d.err = fmt.Errorf("%w: non-canonical revision in invalidation event: %q", ErrNonCanonicalRevision, d.rawRev)
		}
		d.inv.Revision = r
	}
	return d
}

// DecodeInvalidation decodes and validates the JSON form of an invalidation.
// The topic must be a non-empty string and the revision a canonical revision
// string; optional fields of the wrong type are dropped, and unknown fields
// are ignored. Errors wrap [ErrInvalidPayload] or [ErrNonCanonicalRevision].
func DecodeInvalidation(payload []byte) (Invalidation, error) {
	d := decodeInvalidation(payload)
	return d.inv, d.err
}

// A SnapshotError is returned by [DecodeSnapshot] for a payload that is not
// a valid snapshot. Providers that decode snapshots return it unchanged, so
// that the engine reports it with [PhaseProtocol] rather than
// [PhaseGetSnapshot].
type SnapshotError struct {
	// Revision is the revision as sent, when it was a JSON string.
	Revision string
	// RevisionIsString reports whether the revision was a JSON string.
	RevisionIsString bool
	// Err wraps ErrInvalidPayload or ErrNonCanonicalRevision.
	Err error
}

func (e *SnapshotError) Error() string { return e.Err.Error() }

// Unwrap returns e.Err.
func (e *SnapshotError) Unwrap() error { return e.Err }

// DecodeSnapshot decodes and validates the JSON form of a snapshot. The
// revision must be a canonical revision string and data must be present (it
// may be null). A bad payload returns a *[SnapshotError]. The returned Data
// aliases payload.
func DecodeSnapshot(payload []byte) (Snapshot, error) {
	var raw struct {
		Revision json.RawMessage `json:"revision"`
		Epoch    json.RawMessage `json:"epoch"`
		Data     json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Snapshot{}, &SnapshotError{Err: fmt.Errorf("%w: snapshot is not a JSON object: %v", ErrInvalidPayload, err)}
	}
	s, isStr := jsonString(raw.Revision)
	if !isStr {
		return Snapshot{}, &SnapshotError{Err: fmt.Errorf("%w: non-canonical snapshot revision: %s", ErrNonCanonicalRevision, rawOrMissing(raw.Revision))}
	}
	r, ok := parseRevision(s)
	if !ok {
		return Snapshot{}, &SnapshotError{Revision: s, RevisionIsString: true, Err: fmt.Errorf("%w: non-canonical snapshot revision: %q", ErrNonCanonicalRevision, s)}
	}
	if raw.Data == nil {
		return Snapshot{}, &SnapshotError{Revision: s, RevisionIsString: true, Err: fmt.Errorf("%w: snapshot has no data field", ErrInvalidPayload)}
	}
	snap := Snapshot{Revision: r, Data: raw.Data}
	if e, ok := jsonString(raw.Epoch); ok {
		snap.Epoch = e
	} else if raw.Epoch != nil && !isNull(raw.Epoch) {
		return Snapshot{}, &SnapshotError{Revision: s, RevisionIsString: true, Err: fmt.Errorf("%w: snapshot epoch is not a string", ErrInvalidPayload)}
	}
	return snap, nil
}

// null is the JSON null shared by every snapshot without data. Read-only.
var null = json.RawMessage("null")

func isNull(b json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

func rawOrMissing(b json.RawMessage) string {
	if b == nil {
		return "missing"
	}
	return truncate(b, 64)
}

// jsonString returns the value of a raw JSON string.
func jsonString(b json.RawMessage) (string, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	return rawJSONString(b)
}

func decodeJSONString(b []byte) (string, bool) {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonInt returns the value of a raw JSON number that is an integer within
// int64 (fractions are truncated: timestamps are whole milliseconds).
func jsonInt(b json.RawMessage) (int64, bool) {
	if len(b) == 0 || !(b[0] == '-' || b[0] >= '0' && b[0] <= '9') {
		return 0, false
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
		return 0, false
	}
	return int64(f), true
}
