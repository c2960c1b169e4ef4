package persist

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/statesync-go/statesync"
)

// Metadata describes a persisted snapshot. Every backend
// stores it with the payload, in one atomic write.
//
// A Metadata whose SchemaVersion is 0 stands for a record found without
// metadata (written by another program): its age is unknown, so any TTL
// check fails closed, and loads treat its schema as version 1.
type Metadata struct {
	// SavedAt is when the record was saved, with millisecond precision;
	// zero if unknown.
	SavedAt time.Time
	// SchemaVersion is the version of the data's schema, 1 or more.
	SchemaVersion int
	// SizeBytes is the byte length of the snapshot's UTF-8 JSON before
	// compression.
	SizeBytes int
	// Algorithm names the compression of the payload; "" means none.
	Algorithm string
	// Hash is the lower-case hex SHA-256 of the stored payload bytes, or ""
	// when hashing was off.
	Hash string
	// TTL is how long the record stays valid after SavedAt; 0 means
	// forever.
	TTL time.Duration
	// Revision and Epoch are the snapshot's, so that a record can be judged
	// newer or older without decoding its payload.
	Revision statesync.Revision
	Epoch    string
	// Topic is the topic the record was saved for, if the saver knew it.
	// A loader that expects another topic rejects the record (ErrForeign).
	Topic string
}

// compressed reports whether m names a compression.
func compressed(m Metadata) bool { return m.Algorithm != "" && m.Algorithm != algorithmNone }

// A Record is what a [Storage] keeps for one key: metadata and the payload,
// which is the JSON of a [statesync.Snapshot], compressed with
// m.Algorithm. Storages copy records in and out: a caller may change a
// Record's Payload after Save or Load without changing what is stored.
type Record struct {
	Meta    Metadata
	Payload []byte
}

// clone returns a deep copy of r.
func (r Record) clone() Record {
	r.Payload = bytes.Clone(r.Payload)
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	return r
}

// Hash returns the lower-case hex SHA-256 of payload, the form of
// [Metadata.Hash].
func Hash(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// metaJSON is the stored form of Metadata.
type metaJSON struct {
	SavedAt       int64              `json:"savedAt,omitempty"`
	SchemaVersion int                `json:"schemaVersion"`
	SizeBytes     int                `json:"sizeBytes"`
	Compressed    bool               `json:"compressed"`
	Algorithm     string             `json:"algorithm,omitempty"`
	Hash          string             `json:"hash,omitempty"`
	TTLMs         int64              `json:"ttlMs,omitempty"`
	Revision      statesync.Revision `json:"revision"`
	Epoch         string             `json:"epoch,omitempty"`
	Topic         string             `json:"topic,omitempty"`
	PayloadBytes  int                `json:"payloadBytes"`
}

// recordMagic starts every encoded record.
const recordMagic = "statesync-persist "

// recordFormat is the version of the encoding written by [MarshalRecord].
const recordFormat = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalRecord encodes r as bytes for a backend that stores byte strings
// (the file and bbolt backends). The encoding is a header line
// "statesync-persist 1 <crc32c>\n", then the metadata as one line of JSON,
// then the payload; the CRC-32C covers everything after the header line,
// so that a torn or altered record is detected by [UnmarshalRecord].
func MarshalRecord(r Record) []byte {
	m := metaJSON{
		SchemaVersion: r.Meta.SchemaVersion,
		SizeBytes:     r.Meta.SizeBytes,
		Compressed:    compressed(r.Meta),
		Algorithm:     r.Meta.Algorithm,
		Hash:          r.Meta.Hash,
		TTLMs:         r.Meta.TTL.Milliseconds(),
		Revision:      r.Meta.Revision,
		Epoch:         r.Meta.Epoch,
		Topic:         r.Meta.Topic,
		PayloadBytes:  len(r.Payload),
	}
	if !r.Meta.SavedAt.IsZero() {
		m.SavedAt = r.Meta.SavedAt.UnixMilli()
	}
	meta, _ := json.Marshal(m) // plain fields always marshal
	body := make([]byte, 0, len(meta)+1+len(r.Payload))
	body = append(body, meta...)
	body = append(body, '\n')
	body = append(body, r.Payload...)
	out := make([]byte, 0, len(recordMagic)+16+len(body))
	out = append(out, recordMagic...)
	out = strconv.AppendInt(out, recordFormat, 10)
	out = append(out, ' ')
	out = fmt.Appendf(out, "%08x", crc32.Checksum(body, castagnoli))
	out = append(out, '\n')
	return append(out, body...)
}

// UnmarshalRecord decodes bytes written by [MarshalRecord]. Bytes that do
// not start with the record header but hold a JSON snapshot
// {"revision":…,"data":…} (a cache written without metadata, by another
// program) decode as a record without metadata
// (SchemaVersion 0) whose payload is those bytes. Anything else returns an
// error wrapping [ErrCorruptData] or [ErrUnsupportedFormat]. The returned
// payload does not alias b.
func UnmarshalRecord(b []byte) (Record, error) {
	if !bytes.HasPrefix(b, []byte(recordMagic)) {
		if _, err := statesync.DecodeSnapshot(b); err == nil {
			return Record{Payload: bytes.Clone(b)}, nil
		}
		return Record{}, fmt.Errorf("%w: not a statesync record (starts %q)", ErrCorruptData, truncate(b, 24))
	}
	header, body, ok := bytes.Cut(b[len(recordMagic):], []byte{'\n'})
	if !ok {
		return Record{}, fmt.Errorf("%w: truncated header", ErrCorruptData)
	}
	version, sum, ok := bytes.Cut(header, []byte{' '})
	if !ok || len(sum) != 8 {
		return Record{}, fmt.Errorf("%w: malformed header %q", ErrCorruptData, truncate(header, 40))
	}
	v, err := strconv.Atoi(string(version))
	if err != nil || v < 1 {
		return Record{}, fmt.Errorf("%w: malformed format version %q", ErrCorruptData, truncate(version, 20))
	}
	if v != recordFormat {
		return Record{}, fmt.Errorf("%w: format %d (this program reads %d)", ErrUnsupportedFormat, v, recordFormat)
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || bytes.ContainsFunc(sum, func(r rune) bool { return r >= 'A' && r <= 'F' }) {
		return Record{}, fmt.Errorf("%w: malformed checksum %q", ErrCorruptData, sum)
	}
	if got := crc32.Checksum(body, castagnoli); uint64(got) != want {
		return Record{}, fmt.Errorf("%w: checksum %08x, want %08x (torn or altered record)", ErrCorruptData, got, want)
	}
	metaLine, payload, ok := bytes.Cut(body, []byte{'\n'})
	if !ok {
		return Record{}, fmt.Errorf("%w: no metadata line", ErrCorruptData)
	}
	var m metaJSON
	if err := json.Unmarshal(metaLine, &m); err != nil {
		return Record{}, fmt.Errorf("%w: metadata: %v", ErrCorruptData, err)
	}
	if m.PayloadBytes != len(payload) {
		return Record{}, fmt.Errorf("%w: payload is %d bytes, metadata says %d", ErrCorruptData, len(payload), m.PayloadBytes)
	}
	if m.SchemaVersion < 0 || m.SizeBytes < 0 || m.TTLMs < 0 {
		return Record{}, fmt.Errorf("%w: invalid metadata %s", ErrCorruptData, truncate(metaLine, 200))
	}
	if m.Compressed != (m.Algorithm != "" && m.Algorithm != algorithmNone) {
		return Record{}, fmt.Errorf("%w: compressed=%v disagrees with algorithm %q", ErrCorruptData, m.Compressed, m.Algorithm)
	}
	r := Record{
		Meta: Metadata{
			SchemaVersion: m.SchemaVersion,
			SizeBytes:     m.SizeBytes,
			Algorithm:     m.Algorithm,
			Hash:          m.Hash,
			TTL:           time.Duration(m.TTLMs) * time.Millisecond,
			Revision:      m.Revision,
			Epoch:         m.Epoch,
			Topic:         m.Topic,
		},
		Payload: bytes.Clone(payload),
	}
	if m.SavedAt != 0 {
		r.Meta.SavedAt = time.UnixMilli(m.SavedAt)
	}
	return r, nil
}

// RecordOptions are the save-side settings of [NewRecord].
type RecordOptions struct {
	// SchemaVersion of the data; 0 means 1.
	SchemaVersion int
	// Compressor, if set, compresses the payload.
	Compressor Compressor
	// Hash records the SHA-256 of the payload.
	Hash bool
	// TTL is recorded as the record's time to live.
	TTL time.Duration
	// Topic is recorded as the record's topic.
	Topic string
	// SavedAt is the save time; zero means time.Now(). It is kept to the
	// millisecond.
	SavedAt time.Time
}

// NewRecord builds the record of s: the JSON of s
// as payload, compressed if o.Compressor is set, with its metadata.
func NewRecord(s statesync.Snapshot, o *RecordOptions) (Record, error) {
	var opts RecordOptions
	if o != nil {
		opts = *o
	}
	if opts.SchemaVersion == 0 {
		opts.SchemaVersion = 1
	}
	if opts.SavedAt.IsZero() {
		opts.SavedAt = time.Now()
	}
	if opts.SchemaVersion < 0 || opts.TTL < 0 {
		return Record{}, fmt.Errorf("persist: negative schema version %d or TTL %v", opts.SchemaVersion, opts.TTL)
	}
	js := s.AppendJSON(nil)
	m := Metadata{
		SavedAt:       time.UnixMilli(opts.SavedAt.UnixMilli()),
		SchemaVersion: opts.SchemaVersion,
		SizeBytes:     len(js),
		TTL:           opts.TTL,
		Revision:      s.Revision,
		Epoch:         s.Epoch,
		Topic:         opts.Topic,
	}
	payload := js
	if c := opts.Compressor; c != nil && c.Algorithm() != algorithmNone {
		out, err := c.Compress(js)
		if err != nil {
			return Record{}, fmt.Errorf("persist: compress with %s: %w", c.Algorithm(), err)
		}
		payload = out
		m.Algorithm = c.Algorithm()
	}
	if opts.Hash {
		m.Hash = Hash(payload)
	}
	return Record{Meta: m, Payload: payload}, nil
}

// Supersedes reports whether a record with metadata next may replace one
// with metadata cur: the consumer's revision gate (another non-empty epoch,
// or a higher revision). A record without metadata is always replaced.
// [ConditionalSaver] implementations use it.
func Supersedes(next, cur Metadata) bool {
	switch {
	case cur.SchemaVersion == 0:
		return true
	case next.Epoch != "" && next.Epoch != cur.Epoch:
		return true
	}
	return next.Revision > cur.Revision
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
