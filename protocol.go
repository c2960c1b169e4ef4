package statesync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
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
const MaxTopicLen = 256

// CheckTopic returns nil if name is a valid topic, and otherwise an error
// wrapping [ErrInvalidTopic] that says why. A valid topic name is any
// string of 1 to [MaxTopicLen] bytes of valid UTF-8 ("settings/ui",
// "my topic", "café", "cart:42", "a*b", "100%" are all valid) except:
//
//   - control characters: C0 (U+0000–U+001F), DEL (U+007F) and C1
//     (U+0080–U+009F);
//   - the line and paragraph separators U+2028 and U+2029, which end lines
//     in JavaScript and in many log viewers;
//   - the bidirectional embedding, override and isolate controls
//     U+202A–U+202E and U+2066–U+2069, which make a name display as
//     another ("Trojan Source");
//   - a name made only of white space (as JavaScript's String.trim
//     counts it), which the TypeScript clients refuse;
//   - the names "." and "..", which URL parsers (browsers, curl, Go's
//     [net/http.ServeMux]) remove from a path even when escaped as %2E.
//
// Other format characters (zero-width joiner, soft hyphen, U+FEFF) are
// allowed. Names are compared as bytes: no case folding, no trimming and no
// Unicode normalisation, so "café" written with U+00E9 and with "e" and
// U+0301 are two topics. Transports escape names as they need (see
// docs/PROTOCOL.md); a name holds no character that needs it in JSON.
func CheckTopic(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(name) > MaxTopicLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidTopic, len(name), MaxTopicLen)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not a valid URL path segment", ErrInvalidTopic, name)
	}
	switch space, err := checkTopicChars(name); {
	case err != nil:
		return err
	case space:
		return fmt.Errorf("%w: %q is only white space", ErrInvalidTopic, name)
	}
	return nil
}

// CheckTopicPrefix returns nil if prefix may begin a valid topic name: at
// most [MaxTopicLen] bytes of valid UTF-8 without the characters
// [CheckTopic] refuses; the empty prefix, which every topic begins with,
// is valid. Otherwise it returns an error wrapping [ErrInvalidTopic]: no
// valid topic starts with prefix.
func CheckTopicPrefix(prefix string) error {
	if len(prefix) > MaxTopicLen {
		return fmt.Errorf("%w: prefix of %d bytes, more than %d", ErrInvalidTopic, len(prefix), MaxTopicLen)
	}
	_, err := checkTopicChars(prefix)
	return err
}

// checkTopicChars returns an error wrapping ErrInvalidTopic if s is not
// valid UTF-8 or holds a character that no topic holds, and otherwise
// whether s is only white space (as JavaScript's String.trim counts it).
// One pass, byte by byte over printable ASCII.
func checkTopicChars(s string) (space bool, err error) {
	space = true
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f { // printable ASCII: the common case
			space = space && c == ' '
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return false, fmt.Errorf("%w: invalid UTF-8 at byte %d of %q", ErrInvalidTopic, i, truncate([]byte(s), 64))
		case refusedRune(r):
			return false, fmt.Errorf("%w: character %U at byte %d of %q", ErrInvalidTopic, r, i, truncate([]byte(s), 64))
		}
		space = space && isJSSpace(r)
		i += n
	}
	return space, nil
}

// refusedRune reports whether r may not appear in a topic name.
func refusedRune(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f || // C0, DEL, C1
		r == 0x2028 || r == 0x2029 || // line and paragraph separators
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 // bidi embeddings, overrides, isolates
}

// isJSSpace reports whether JavaScript's String.prototype.trim removes r.
func isJSSpace(r rune) bool { return unicode.IsSpace(r) || r == 0xfeff }

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
