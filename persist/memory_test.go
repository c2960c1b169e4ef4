package persist_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
)

// B-STORE-06, B-STORE-07, B-DEF-08: defaults, and the initial snapshot.
func TestMemoryStorageInitial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := persist.NewMemoryStorage(&persist.MemoryOptions{Initial: &statesync.Snapshot{Revision: 3, Data: []byte(`"init"`)}})
		r, ok, err := s.Load(context.Background())
		wantJSON := `{"revision":"3","data":"init"}`
		if err != nil || !ok || string(r.Payload) != wantJSON {
			t.Fatalf("Load() = %q, %v, %v; want %s", r.Payload, ok, err, wantJSON)
		}
		m := r.Meta
		if m.SchemaVersion != 1 || m.Algorithm != "" || m.SizeBytes != len(wantJSON) || !m.SavedAt.Equal(time.Now().Truncate(time.Millisecond)) {
			t.Errorf("Load().Meta = %+v; want schema 1, uncompressed, %d bytes, saved now", m, len(wantJSON))
		}
		empty := persist.NewMemoryStorage(nil)
		if _, ok, err := empty.Load(context.Background()); ok || err != nil {
			t.Errorf("Load() on a default MemoryStorage = %v, %v; want nothing and no error", ok, err)
		}
	})
}

// B-STORE-08: latency delays operations and honours ctx.
func TestMemoryStorageLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := persisttest.NewFaulty(nil, &persisttest.FaultOptions{Latency: 50 * time.Millisecond})
		start := time.Now()
		if err := s.Save(context.Background(), persisttest.Record(1, "", `1`)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("Save() took %v; want 50ms", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, _, err := s.Load(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Load() with a 10ms deadline and 50ms latency = %v; want DeadlineExceeded", err)
		}
	})
}

// B-STORE-09, B-STORE-14, B-STORE-17: failure modes.
func TestMemoryStorageFailModes(t *testing.T) {
	ctx := context.Background()
	s := persisttest.NewFaulty(nil, &persisttest.FaultOptions{FailOnSave: true})
	err := s.Save(ctx, persisttest.Record(1, "", `"x"`))
	if !errors.Is(err, persisttest.ErrSimulated) || err.Error() != persisttest.DefaultErrorMessage {
		t.Errorf("Save() with FailOnSave = %v; want %q matching ErrSimulated", err, persisttest.DefaultErrorMessage)
	}
	s = persisttest.NewFaulty(nil, &persisttest.FaultOptions{FailOnLoad: true, ErrorMessage: "disk on fire"})
	if _, _, err := s.Load(ctx); err == nil || err.Error() != "disk on fire" {
		t.Errorf("Load() with FailOnLoad = %v; want %q", err, "disk on fire")
	}

	s = persisttest.NewFaulty(nil, nil)
	if err := s.Save(ctx, persisttest.Record(1, "", `"success"`)); err != nil {
		t.Fatal(err)
	}
	s.SetFailMode(true, false)
	if err := s.Save(ctx, persisttest.Record(2, "", `"lost"`)); !errors.Is(err, persisttest.ErrSimulated) {
		t.Errorf("Save() after SetFailMode(true, false) = %v; want ErrSimulated", err)
	}
	if r, _, _ := s.Load(ctx); r.Meta.Revision != 1 {
		t.Errorf("Load() after a failed save = revision %d; want 1 (previous data kept)", r.Meta.Revision)
	}
	s.SetFailMode(true, true)
	if err := s.Clear(ctx); err != nil { // B-STORE-17
		t.Errorf("Clear() in fail mode = %v; want nil", err)
	}
	s.SetFailMode(false, false)
	if err := s.Save(ctx, persisttest.Record(3, "", `"success"`)); err != nil {
		t.Errorf("Save() after SetFailMode(false, false) = %v", err)
	}
	if r, ok, err := s.Load(ctx); err != nil || !ok || r.Meta.Revision != 3 {
		t.Errorf("Load() = %d, %v, %v; want revision 3", r.Meta.Revision, ok, err)
	}
}

// B-STORE-10: quota.
func TestMemoryStorageQuota(t *testing.T) {
	ctx := context.Background()
	s := persist.NewMemoryStorage(&persist.MemoryOptions{MaxSizeBytes: 1000})
	if err := s.Save(ctx, persisttest.Record(1, "", `"`+strings.Repeat("x", 200)+`"`)); err != nil {
		t.Fatal(err)
	}
	err := s.Save(ctx, persisttest.Record(2, "", `"`+strings.Repeat("x", 2000)+`"`))
	if !errors.Is(err, persist.ErrQuotaExceeded) || !strings.Contains(strings.ToLower(err.Error()), "quota exceeded") {
		t.Errorf("Save() over quota = %v; want ErrQuotaExceeded", err)
	}
}

// B-STORE-11, B-STORE-12: history, and the stored record.
func TestMemoryStorageHistory(t *testing.T) {
	ctx := context.Background()
	s := persisttest.NewFaulty(nil, &persisttest.FaultOptions{FailOnLoad: true})
	s.Save(ctx, persisttest.Record(1, "", `"first"`))
	s.SetFailMode(true, false)
	s.Save(ctx, persisttest.Record(9, "", `"failed"`))
	s.SetFailMode(false, false)
	s.Save(ctx, persisttest.Record(2, "", `"second"`))
	h := s.SavedRecords()
	if len(h) != 2 || h[0].Meta.Revision != 1 || h[1].Meta.Revision != 2 {
		t.Fatalf("SavedRecords() = %d records; want first and second", len(h))
	}
	h[0].Payload[0] = 'X'
	if s.SavedRecords()[0].Payload[0] == 'X' {
		t.Errorf("SavedRecords() returned the stored history, not a copy")
	}
	raw, ok := rawOf(s)
	if !ok || raw.Meta.SchemaVersion != 1 || raw.Meta.SavedAt.IsZero() {
		t.Errorf("stored record = %+v, %v; want the record with schema 1 and a saved time", raw.Meta, ok)
	}
}

// B-STORE-19: shared memory storages by key, and ClearAll.
func TestSharedMemory(t *testing.T) {
	ctx := context.Background()
	sm := persisttest.NewSharedMemory(nil)
	sm.Storage("a").Save(ctx, persisttest.Record(1, "", `"a"`))
	if r, ok, _ := sm.Storage("a").Load(ctx); !ok || string(r.Payload) != `{"revision":"1","data":"a"}` {
		t.Errorf("Storage(a).Load() = %q, %v; want the record saved through another Storage(a)", r.Payload, ok)
	}
	if _, ok, _ := sm.Storage("b").Load(ctx); ok {
		t.Errorf("Storage(b).Load() = ok; want isolated from a")
	}
	sm.Storage("b").Save(ctx, persisttest.Record(1, "", `"b"`))
	sm.ClearAll()
	for _, k := range []string{"a", "b"} {
		if _, ok, _ := sm.Storage(k).Load(ctx); ok {
			t.Errorf("Storage(%s).Load() after ClearAll = ok; want empty", k)
		}
	}
}
