package persist_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
)

// B-PMETA-01, B-PMETA-04: a record and all its metadata survive the byte
// encoding of the file and bbolt backends.
func TestMarshalRecordRoundTrip(t *testing.T) {
	want := persisttest.Record(42, "k7Qx", `{"x":"Привет мир! 你好世界! 😀"}`)
	want.Meta.TTL = 5 * time.Second
	want.Meta.Topic = "settings"
	want.Meta.SchemaVersion = 3
	got, err := persist.UnmarshalRecord(persist.MarshalRecord(want))
	if err != nil {
		t.Fatalf("UnmarshalRecord(MarshalRecord(r)) = %v", err)
	}
	persisttest.CheckRecord(t, "UnmarshalRecord(MarshalRecord(r))", got, want)
}

// Every single-byte change and every truncation of an encoded record is
// detected: a record is loaded whole or not at all.
func TestUnmarshalRecordDetectsDamage(t *testing.T) {
	b := persist.MarshalRecord(persisttest.Record(7, "e", `{"a":[1,2,3]}`))
	for i := range b {
		damaged := bytes.Clone(b)
		damaged[i] ^= 0x20
		if r, err := persist.UnmarshalRecord(damaged); err == nil {
			t.Errorf("UnmarshalRecord(byte %d flipped) = revision %d, nil; want an error", i, r.Meta.Revision)
		}
	}
	for n := range len(b) {
		r, err := persist.UnmarshalRecord(b[:n])
		if err == nil {
			t.Errorf("UnmarshalRecord(first %d of %d bytes) = revision %d, nil; want an error", n, len(b), r.Meta.Revision)
		} else if !errors.Is(err, persist.ErrCorruptData) {
			t.Errorf("UnmarshalRecord(first %d bytes) = %v; want ErrCorruptData", n, err)
		}
	}
}

func TestUnmarshalRecordFutureFormat(t *testing.T) {
	b := persist.MarshalRecord(persisttest.Record(7, "", `1`))
	b[len("statesync-persist ")] = '2'
	if _, err := persist.UnmarshalRecord(b); !errors.Is(err, persist.ErrUnsupportedFormat) {
		t.Errorf("UnmarshalRecord(format 2) = %v; want ErrUnsupportedFormat", err)
	}
}

// FuzzUnmarshalRecord: no input crashes the decoder, and whatever decodes
// re-encodes to a record that decodes the same.
func FuzzUnmarshalRecord(f *testing.F) {
	f.Add(persist.MarshalRecord(persisttest.Record(1, "e", `{"a":1}`)))
	f.Add([]byte(`{"revision":"3","data":null}`))
	f.Add([]byte("statesync-persist 1 00000000\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := persist.UnmarshalRecord(b)
		if err != nil {
			return
		}
		again, err := persist.UnmarshalRecord(persist.MarshalRecord(r))
		if err != nil {
			t.Fatalf("UnmarshalRecord(MarshalRecord(decoded)) = %v", err)
		}
		persisttest.CheckRecord(t, "re-decoded", again, r)
	})
}
