package boltstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	bolt "go.etcd.io/bbolt"
)

// The record format is frozen: files written today must read tomorrow.
// A change of layout needs a new recordVersion, not an edit of this test.
func TestRecordFormatGolden(t *testing.T) {
	tm := time.Unix(1764000000, 123456789)
	got := appendRecord(nil, 42, tm, "w1", []byte(`{"a":1}`))
	const want = "01" + // version
		"2a" + // revision 42
		"aab4aef2eda9fefa30" + // time, zigzag varint of 1764000000123456789 ns
		"02" + "7731" + // source id "w1"
		"7b2261223a317d" + // {"a":1}
		"ef54b97e" // CRC-32C (check value of "123456789": e3069283)
	if hex.EncodeToString(got) != want {
		t.Errorf("appendRecord(42, %v, w1, {\"a\":1}) = %x; want %s", tm, got, want)
	}
	var rec statesync.Record
	if err := decodeRecord(&rec, got, true); err != nil {
		t.Fatalf("decodeRecord(golden) = %v", err)
	}
	if rec.Revision != 42 || !rec.Time.Equal(tm) || rec.SourceID != "w1" || string(rec.Data) != `{"a":1}` {
		t.Errorf("decodeRecord(golden) = %+v; want revision 42, time %v, source w1, data {\"a\":1}", rec, tm)
	}
}

// Records round-trip, whatever their fields.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add(uint64(1), int64(0), "", []byte("null"))
	f.Add(uint64(1<<64-1), int64(-1), "w1", []byte(`{"a":[1,2,3]}`))
	f.Add(uint64(42), int64(1764000000123456789), "\x00\xff", []byte(`"x"`))
	f.Fuzz(func(t *testing.T, rev uint64, ns int64, sourceID string, data []byte) {
		if len(data) == 0 {
			return // Write never stores empty data (nil is "null")
		}
		var tm time.Time
		if ns != 0 {
			tm = time.Unix(0, ns)
		}
		v := appendRecord(nil, statesync.Revision(rev), tm, sourceID, data)
		var rec statesync.Record
		if err := decodeRecord(&rec, v, true); err != nil {
			t.Fatalf("decodeRecord(appendRecord(%d, %d, %q, %q)) = %v", rev, ns, sourceID, data, err)
		}
		if rec.Revision != statesync.Revision(rev) || !rec.Time.Equal(tm) || rec.SourceID != sourceID || !bytes.Equal(rec.Data, data) {
			t.Errorf("decodeRecord(appendRecord(%d, %d, %q, %q)) = %+v", rev, ns, sourceID, data, rec)
		}
	})
}

// Decoding arbitrary bytes never panics; what decodes with its checksum
// re-encodes to a record that decodes the same, and the data is a copy.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 42, time.Unix(1764000000, 0), "w1", []byte(`{"a":1}`)))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 0, 100, 'x', 0, 0, 0, 0})
	f.Add(append([]byte{1}, bytes.Repeat([]byte{0xff}, 12)...))
	f.Fuzz(func(t *testing.T, v []byte) {
		var header statesync.Record
		headerErr := decodeRecord(&header, v, false)
		var rec statesync.Record
		err := decodeRecord(&rec, v, true)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("decodeRecord(%x) = %v; want ErrCorruptRecord", v, err)
			}
			if headerErr != nil && !errors.Is(headerErr, ErrCorruptRecord) {
				t.Fatalf("decodeRecord(%x, header only) = %v; want ErrCorruptRecord", v, headerErr)
			}
			return
		}
		if headerErr != nil {
			t.Fatalf("decodeRecord(%x) with data succeeded but header only = %v", v, headerErr)
		}
		if header.Revision != rec.Revision || header.SourceID != rec.SourceID || !header.Time.Equal(rec.Time) {
			t.Errorf("decodeRecord(%x): header only %+v, full %+v", v, header, rec)
		}
		if len(rec.Data) > 0 && &rec.Data[0] == &v[len(v)-crcSize-len(rec.Data)] {
			t.Errorf("decodeRecord(%x).Data aliases the stored bytes", v)
		}
		again := appendRecord(nil, rec.Revision, rec.Time, rec.SourceID, rec.Data)
		var rec2 statesync.Record
		if err := decodeRecord(&rec2, again, true); err != nil || rec2.Revision != rec.Revision || !bytes.Equal(rec2.Data, rec.Data) ||
			rec2.SourceID != rec.SourceID || !rec2.Time.Equal(rec.Time) {
			t.Errorf("re-encoding %+v: decodeRecord = %+v, %v", rec, rec2, err)
		}
	})
}

// B-REV-12: a topic at MaxRevision cannot be written again; the write fails
// with ErrRevisionOverflow instead of freezing the revision, and writes
// nothing.
func TestRevisionOverflow(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(topicsBucket).Put([]byte("max"), appendRecord(nil, statesync.MaxRevision, time.Now(), "", []byte(`"last"`)))
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := s.Write(ctx, statesync.Write{Topic: "max", Data: json.RawMessage(`"more"`)})
	if !errors.Is(err, statesync.ErrRevisionOverflow) {
		t.Errorf("Write(%q) at MaxRevision = %+v, %v; want ErrRevisionOverflow", "max", rec, err)
	}
	got, err := s.Get(ctx, "max")
	if err != nil || got.Revision != statesync.MaxRevision || string(got.Data) != `"last"` {
		t.Errorf("Get(%q) = %+v, %v; want MaxRevision and \"last\", unchanged", "max", got, err)
	}
}
