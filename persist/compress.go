package persist

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
)

// A Compressor compresses record payloads. Its Algorithm name
// is stored in each record's metadata, and a load decompresses with the
// Compressor of that name. Compressors are byte-oriented:
// Decompress(Compress(b)) == b for any bytes, so any UTF-8 text survives.
// Empty input gives empty output both ways.
// Implementations are safe for concurrent use.
type Compressor interface {
	Algorithm() string
	Compress(src []byte) ([]byte, error)
	Decompress(src []byte) ([]byte, error)
}

// Algorithm names of the compressors of this package.
const (
	algorithmNone   = "none"
	algorithmGzip   = "gzip"
	algorithmBase64 = "base64"
)

// None is the identity compressor, named "none".
var None Compressor = identity{}

type identity struct{}

func (identity) Algorithm() string                   { return algorithmNone }
func (identity) Compress(b []byte) ([]byte, error)   { return bytes.Clone(b), nil }
func (identity) Decompress(b []byte) ([]byte, error) { return bytes.Clone(b), nil }

// Gzip returns a gzip compressor (compress/gzip) at the given level,
// named "gzip". Level 0 means [gzip.DefaultCompression]; a level out of
// range makes Compress fail. An empty input gives an empty output both
// ways; Decompress accepts one complete gzip stream and reports anything
// else with an error wrapping [ErrInvalidCompressedData].
func Gzip(level int) Compressor { return gzipCodec{level: level} }

type gzipCodec struct{ level int }

func (gzipCodec) Algorithm() string { return algorithmGzip }

func (g gzipCodec) Compress(src []byte) ([]byte, error) {
	if len(src) == 0 {
		return []byte{}, nil
	}
	level := g.level
	if level == 0 {
		level = gzip.DefaultCompression
	}
	if level < gzip.HuffmanOnly || level > gzip.BestCompression {
		return nil, fmt.Errorf("persist: gzip level %d out of range", level)
	}
	var buf bytes.Buffer
	buf.Grow(len(src)/3 + 64)
	// A gzip writer holds about 1 MB of state: reuse them.
	pool := &gzipWriters[level-gzip.HuffmanOnly]
	w, _ := pool.Get().(*gzip.Writer)
	if w == nil {
		var err error
		if w, err = gzip.NewWriterLevel(&buf, level); err != nil {
			return nil, err
		}
	} else {
		w.Reset(&buf)
	}
	defer pool.Put(w)
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipWriters pools gzip writers by level (HuffmanOnly −2 … BestCompression 9).
var gzipWriters [gzip.BestCompression - gzip.HuffmanOnly + 1]sync.Pool

func (gzipCodec) Decompress(src []byte) ([]byte, error) {
	if len(src) == 0 {
		return []byte{}, nil
	}
	r, err := gzip.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %v", ErrInvalidCompressedData, err)
	}
	r.Multistream(false)
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %v", ErrInvalidCompressedData, err)
	}
	return out, nil
}

// Base64 encodes payloads as standard padded base64, named "base64".
// It does not compress; it exists for storages that only take
// text.
var Base64 Compressor = base64Codec{}

type base64Codec struct{}

func (base64Codec) Algorithm() string { return algorithmBase64 }
func (base64Codec) Compress(b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.EncodedLen(len(b)))
	base64.StdEncoding.Encode(out, b)
	return out, nil
}
func (base64Codec) Decompress(b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Strict().Decode(out, b)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrInvalidCompressedData, err)
	}
	return out[:n], nil
}

// compressors maps algorithm names to the compressors a load knows: the
// built-in ones plus those given.
func compressors(extra ...Compressor) (map[string]Compressor, error) {
	m := map[string]Compressor{algorithmNone: None, "": None, algorithmGzip: gzipCodec{}, algorithmBase64: Base64}
	for _, c := range extra {
		if c == nil {
			continue
		}
		name := c.Algorithm()
		if name == "" {
			return nil, errors.New("persist: compressor with an empty algorithm name")
		}
		m[name] = c
	}
	return m, nil
}
