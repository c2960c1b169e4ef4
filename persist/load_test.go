package persist_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
)

// recorder is an Applier that records what it applies.
type recorder struct {
	mu      sync.Mutex
	applied []statesync.Snapshot
	err     error // returned by Apply
}

func (r *recorder) Apply(ctx context.Context, s statesync.Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	s.Data = append(json.RawMessage(nil), s.Data...)
	r.applied = append(r.applied, s)
	return nil
}

func (r *recorder) snapshots() []statesync.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]statesync.Snapshot(nil), r.applied...)
}

func (r *recorder) datas() string {
	var s []string
	for _, x := range r.snapshots() {
		s = append(s, fmt.Sprintf("%d:%s", x.Revision, x.Data))
	}
	return strings.Join(s, " ")
}

// errorLog collects reported errors.
type errorLog struct {
	mu   sync.Mutex
	errs []*persist.Error
}

func (l *errorLog) add(e *persist.Error) { l.mu.Lock(); l.errs = append(l.errs, e); l.mu.Unlock() }
func (l *errorLog) all() []*persist.Error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*persist.Error(nil), l.errs...)
}

func record(t testing.TB, s statesync.Snapshot, o *persist.RecordOptions) persist.Record {
	t.Helper()
	r, err := persist.NewRecord(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func stored(t testing.TB, r persist.Record) *persist.MemoryStorage {
	t.Helper()
	m := persist.NewMemoryStorage(nil)
	if err := m.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return m
}

// B-PLOAD-04: a cached snapshot is applied once and returned; nothing
// stored is no error and no apply; a read failure is one load error.
func TestLoadBasics(t *testing.T) {
	ctx := context.Background()
	app := &recorder{}
	var log errorLog
	s := stored(t, record(t, statesync.Snapshot{Revision: 5, Data: []byte(`"cached"`)}, nil))
	snap, info, err := persist.Load(ctx, s, app, &persist.LoadOptions{OnError: log.add})
	if err != nil || snap.Revision != 5 || string(snap.Data) != `"cached"` || !info.Found || !info.Applied {
		t.Errorf("Load() = %+v, %+v, %v; want revision 5 applied", snap, info, err)
	}
	if got := app.datas(); got != `5:"cached"` {
		t.Errorf("applied %s; want 5:\"cached\" once", got)
	}

	app = &recorder{}
	_, info, err = persist.Load(ctx, persist.NewMemoryStorage(nil), app, &persist.LoadOptions{OnError: log.add})
	if err != nil || info.Found || len(app.snapshots()) != 0 {
		t.Errorf("Load() of nothing = %+v, %v, %d applies; want not found, no error, no apply", info, err, len(app.snapshots()))
	}

	failing := persisttest.NewFaulty(nil, &persisttest.FaultOptions{FailOnLoad: true})
	_, _, err = persist.Load(ctx, failing, app, &persist.LoadOptions{OnError: log.add})
	var pe *persist.Error
	if !errors.As(err, &pe) || pe.Op != persist.OpLoad || !errors.Is(err, persisttest.ErrSimulated) {
		t.Errorf("Load() of a failing storage = %v; want a load *Error wrapping ErrSimulated", err)
	}
	if errs := log.all(); len(errs) != 1 || errs[0].Op != persist.OpLoad {
		t.Errorf("reported %v; want exactly one load error", errs)
	}
}

// B-PLOAD-05: a non-canonical cached revision is rejected, never applied.
func TestLoadInvalidCachedRevision(t *testing.T) {
	for _, rev := range []string{"01", "abc"} {
		var log errorLog
		app := &recorder{}
		payload := []byte(`{"revision":"` + rev + `","data":"x"}`)
		s := stored(t, persist.Record{Meta: persist.Metadata{SchemaVersion: 1, SizeBytes: len(payload), SavedAt: time.Now()}, Payload: payload})
		_, info, err := persist.Load(context.Background(), s, app, &persist.LoadOptions{OnError: log.add})
		if err == nil || info.Applied || len(app.snapshots()) != 0 {
			t.Errorf("Load(revision %q) = %v, applied %v; want an error and no apply", rev, err, info.Applied)
		}
		errs := log.all()
		if len(errs) != 1 || errs[0].Op != persist.OpLoad || !strings.Contains(errs[0].Error(), "invalid cached revision") ||
			!errors.Is(errs[0], statesync.ErrNonCanonicalRevision) {
			t.Errorf("Load(revision %q) reported %v; want one load error \"invalid cached revision\"", rev, errs)
		}
	}
}

// B-PMETA-06, B-PMETA-07, B-PMETA-08: TTL from the stored metadata;
// age == TTL is still valid; IgnoreTTL bypasses it.
func TestLoadTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := stored(t, record(t, statesync.Snapshot{Revision: 1, Data: []byte(`1`)}, &persist.RecordOptions{TTL: 5 * time.Second}))
		time.Sleep(5 * time.Second)
		if _, info, err := persist.Load(ctx, s, &recorder{}, nil); err != nil || !info.Applied || info.Age != 5*time.Second {
			t.Errorf("Load() at age == TTL = %+v, %v; want applied with age 5s", info, err)
		}
		time.Sleep(time.Millisecond)
		var log errorLog
		app := &recorder{}
		_, info, err := persist.Load(ctx, s, app, &persist.LoadOptions{OnError: log.add})
		if !errors.Is(err, persist.ErrExpired) || info.Applied || len(app.snapshots()) != 0 {
			t.Errorf("Load() at age > TTL = %v, applied %v; want ErrExpired and no apply", err, info.Applied)
		}
		if errs := log.all(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "age: 5001ms, TTL: 5000ms") {
			t.Errorf("reported %v; want one error with age 5001ms and TTL 5000ms", errs)
		}
		if _, info, err := persist.Load(ctx, s, &recorder{}, &persist.LoadOptions{IgnoreTTL: true}); err != nil || !info.Applied {
			t.Errorf("Load(IgnoreTTL) of an expired record = %+v, %v; want applied", info, err)
		}
	})
}

// B-STORE-29: a record without metadata has an unknown age; a loader-side
// MaxAge treats it as expired (fails closed).
func TestLoadLegacyRecordUnknownAge(t *testing.T) {
	payload := []byte(`{"revision":"4","data":"old"}`)
	s := stored(t, persist.Record{Payload: payload})
	if _, info, err := persist.Load(context.Background(), s, &recorder{}, nil); err != nil || !info.Applied || info.FromVersion != 1 {
		t.Errorf("Load() of a legacy record = %+v, %v; want applied as schema version 1", info, err)
	}
	if _, _, err := persist.Load(context.Background(), s, &recorder{}, &persist.LoadOptions{MaxAge: time.Hour}); !errors.Is(err, persist.ErrExpired) {
		t.Errorf("Load(MaxAge) of a record of unknown age = %v; want ErrExpired", err)
	}
}

// B-PMETA-05, B-PMETA-09, B-PMETA-10: SHA-256 over the stored bytes,
// checked before decoding; VerifyHash requires it.
func TestLoadHash(t *testing.T) {
	ctx := context.Background()
	snap := statesync.Snapshot{Revision: 2, Data: []byte(`{"k":"v"}`)}
	unhashed := record(t, snap, &persist.RecordOptions{Compressor: persist.Gzip(0)})
	if unhashed.Meta.Hash != "" {
		t.Fatalf("NewRecord without Hash has hash %q; want none (B-PMETA-10)", unhashed.Meta.Hash)
	}
	if _, _, err := persist.Load(ctx, stored(t, unhashed), &recorder{}, &persist.LoadOptions{VerifyHash: true}); !errors.Is(err, persist.ErrIntegrity) || !strings.Contains(err.Error(), "hash missing") {
		t.Errorf("Load(VerifyHash) without a stored hash = %v; want ErrIntegrity: hash missing", err)
	}
	hashed := record(t, snap, &persist.RecordOptions{Compressor: persist.Gzip(0), Hash: true})
	if hashed.Meta.Hash != persist.Hash(hashed.Payload) || len(hashed.Meta.Hash) != 64 {
		t.Errorf("Meta.Hash = %q; want the hex SHA-256 of the stored (compressed) payload", hashed.Meta.Hash)
	}
	if _, info, err := persist.Load(ctx, stored(t, hashed), &recorder{}, &persist.LoadOptions{VerifyHash: true}); err != nil || !info.Applied {
		t.Errorf("Load(VerifyHash) with compression = %+v, %v; want applied", info, err)
	}
	tampered := hashed
	tampered.Payload = append([]byte(nil), hashed.Payload...)
	tampered.Payload[len(tampered.Payload)-1] ^= 1
	for _, verify := range []bool{false, true} {
		app := &recorder{}
		if _, _, err := persist.Load(ctx, stored(t, tampered), app, &persist.LoadOptions{VerifyHash: verify}); !errors.Is(err, persist.ErrIntegrity) || len(app.snapshots()) != 0 {
			t.Errorf("Load(VerifyHash=%v) of a tampered payload = %v; want ErrIntegrity and no apply", verify, err)
		}
	}
}

// B-PMETA-03: the payload is stored compressed and load decompresses it by
// the recorded algorithm; an unknown algorithm is an error.
func TestLoadDecompresses(t *testing.T) {
	ctx := context.Background()
	data := `{"list":"` + strings.Repeat("abc", 1000) + `"}`
	r := record(t, statesync.Snapshot{Revision: 3, Data: []byte(data)}, &persist.RecordOptions{Compressor: persist.Gzip(0)})
	if r.Meta.Algorithm != "gzip" || len(r.Payload) >= r.Meta.SizeBytes {
		t.Fatalf("NewRecord(gzip) = %+v with %d payload bytes; want a smaller gzip payload", r.Meta, len(r.Payload))
	}
	snap, _, err := persist.Load(ctx, stored(t, r), &recorder{}, nil)
	if err != nil || string(snap.Data) != data {
		t.Errorf("Load() of a gzip record = %.40s, %v; want the data", snap.Data, err)
	}
	same := func(b []byte) ([]byte, error) { return b, nil }
	odd := funcCompressor{name: "rot", compress: same, decompress: same}
	r = record(t, statesync.Snapshot{Revision: 3, Data: []byte(data)}, &persist.RecordOptions{Compressor: odd})
	if _, _, err := persist.Load(ctx, stored(t, r), &recorder{}, nil); !errors.Is(err, persist.ErrUnknownAlgorithm) {
		t.Errorf("Load() of a record of an unknown algorithm = %v; want ErrUnknownAlgorithm", err)
	}
	if _, _, err := persist.Load(ctx, stored(t, r), &recorder{}, &persist.LoadOptions{Compressors: []persist.Compressor{odd}}); err != nil {
		t.Errorf("Load() with the algorithm given = %v; want nil", err)
	}
}

// Payload and metadata must agree, and a record of another topic is
// foreign: neither is ever applied.
func TestLoadRejectsMismatchAndForeign(t *testing.T) {
	ctx := context.Background()
	r := record(t, statesync.Snapshot{Revision: 3, Data: []byte(`1`)}, &persist.RecordOptions{Topic: "a"})
	lying := r
	lying.Meta.Revision = 9
	if _, _, err := persist.Load(ctx, stored(t, lying), &recorder{}, nil); !errors.Is(err, persist.ErrIntegrity) {
		t.Errorf("Load() of a record whose metadata says revision 9 and payload 3 = %v; want ErrIntegrity", err)
	}
	if _, _, err := persist.Load(ctx, stored(t, r), &recorder{}, &persist.LoadOptions{Topic: "b"}); !errors.Is(err, persist.ErrForeign) {
		t.Errorf("Load(Topic b) of a record of topic a = %v; want ErrForeign", err)
	}
	if _, _, err := persist.Load(ctx, stored(t, r), &recorder{}, &persist.LoadOptions{Topic: "a"}); err != nil {
		t.Errorf("Load(Topic a) of a record of topic a = %v; want nil", err)
	}
}

// B-PLOAD-02, B-PLOAD-03: the checks run in the documented order and the
// first failing one is the only one reported. A record that fails every
// check reports the TTL; without TTL, the hash; and so on.
func TestLoadOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		migs, err := persist.NewMigrations(2, map[int]persist.MigrationStep{1: func(json.RawMessage) (json.RawMessage, error) {
			return nil, errors.New("step fails")
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		savedAt := time.Now()
		bad := func() persist.Record {
			payload := []byte(`{"revision":"01","data":1}`)
			return persist.Record{Meta: persist.Metadata{SavedAt: savedAt, SchemaVersion: 1, SizeBytes: len(payload), TTL: time.Second, Hash: "00"}, Payload: payload}
		}
		opts := persist.LoadOptions{Migrations: migs, Validator: func(json.RawMessage) error { return errors.New("no") }}
		steps := []struct {
			fix  func(*persist.Record)
			want string
		}{
			{func(*persist.Record) {}, "expired"},
			{func(r *persist.Record) { r.Meta.TTL = 0 }, "integrity"},
			{func(r *persist.Record) { r.Meta.TTL = 0; r.Meta.Hash = "" }, "invalid cached revision"},
			{func(r *persist.Record) {
				*r = record(t, statesync.Snapshot{Revision: 1, Data: []byte(`1`)}, nil)
			}, "migrate: persist: migration failed"},
			{func(r *persist.Record) {
				*r = record(t, statesync.Snapshot{Revision: 1, Data: []byte(`1`)}, &persist.RecordOptions{SchemaVersion: 2})
			}, "custom validation failed"},
		}
		time.Sleep(2 * time.Second)
		for _, st := range steps {
			r := bad()
			st.fix(&r)
			var log errorLog
			app := &recorder{}
			o := opts
			o.OnError = log.add
			persist.Load(context.Background(), stored(t, r), app, &o)
			errs := log.all()
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), st.want) || len(app.snapshots()) != 0 {
				t.Errorf("Load() reported %v with %d applies; want exactly one error containing %q and no apply", errs, len(app.snapshots()), st.want)
			}
		}
	})
}

// B-PLOAD-06, B-PLOAD-11, B-PLOAD-12: migration on load, its facts in
// LoadInfo, and the write-back with the current version and original
// saved time.
func TestLoadMigratesAndWritesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		savedAt := time.Now()
		s := stored(t, record(t, statesync.Snapshot{Revision: 12, Data: []byte(`{"count":42}`)},
			&persist.RecordOptions{SchemaVersion: 1, Compressor: persist.Gzip(0), Hash: true, TTL: time.Hour}))
		time.Sleep(time.Minute)
		migs := v3Migrations(t)
		app := &recorder{}
		snap, info, err := persist.Load(ctx, s, app, &persist.LoadOptions{Migrations: migs})
		want := `{"count":42,"enabled":true,"name":"default"}`
		if err != nil || string(snap.Data) != want || snap.Revision != 12 {
			t.Fatalf("Load() = %s at %d, %v; want %s at revision 12", snap.Data, snap.Revision, err, want)
		}
		if info.FromVersion != 1 || info.ToVersion != 3 || !info.WrittenBack || info.Age != time.Minute {
			t.Errorf("LoadInfo = %+v; want migrated 1→3, written back, age 1m", info)
		}
		back, _ := rawOf(s)
		if back.Meta.SchemaVersion != 3 || !back.Meta.SavedAt.Equal(savedAt) || back.Meta.TTL != time.Hour || back.Meta.Algorithm != "gzip" || back.Meta.Hash == "" {
			t.Errorf("written-back record = %+v; want schema 3 with the original saved time, TTL, gzip and a hash", back.Meta)
		}
		again, info, err := persist.Load(ctx, s, &recorder{}, &persist.LoadOptions{Migrations: migs})
		if err != nil || info.FromVersion != info.ToVersion || string(again.Data) != want {
			t.Errorf("second Load() = %s, %+v, %v; want the migrated data without migrating again", again.Data, info, err)
		}

		// NoWriteBack keeps the stored record.
		s = stored(t, record(t, statesync.Snapshot{Revision: 1, Data: []byte(`{"count":1}`)}, nil))
		if _, info, err := persist.Load(ctx, s, &recorder{}, &persist.LoadOptions{Migrations: migs, NoWriteBack: true}); err != nil || info.WrittenBack {
			t.Errorf("Load(NoWriteBack) = %+v, %v; want no write-back", info, err)
		}
		if r, _ := rawOf(s); r.Meta.SchemaVersion != 1 {
			t.Errorf("stored schema after Load(NoWriteBack) = %d; want 1", r.Meta.SchemaVersion)
		}
	})
}

// B-PLOAD-06, B-MIG-05, B-MIG-06: a record of another schema version is
// never applied: a newer one is ErrFutureVersion, an older one without
// migrations is ErrMissingMigration, both reported as "migrate".
func TestLoadSchemaVersionMismatch(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		stored, current int
		want            error
	}{
		{3, 2, persist.ErrFutureVersion},
		{1, 2, persist.ErrMissingMigration},
	}
	for _, tt := range tests {
		var log errorLog
		s := stored(t, record(t, statesync.Snapshot{Revision: 1, Data: []byte(`{}`)}, &persist.RecordOptions{SchemaVersion: tt.stored}))
		app := &recorder{}
		_, _, err := persist.Load(ctx, s, app, &persist.LoadOptions{SchemaVersion: tt.current, OnError: log.add})
		if !errors.Is(err, tt.want) || len(app.snapshots()) != 0 {
			t.Errorf("Load(stored %d, current %d) = %v; want %v and no apply", tt.stored, tt.current, err, tt.want)
		}
		if errs := log.all(); len(errs) != 1 || errs[0].Op != persist.OpMigrate {
			t.Errorf("Load(stored %d, current %d) reported %v; want one migrate error", tt.stored, tt.current, errs)
		}
	}
}

// B-PLOAD-09: the migrations' validator runs even when no step is needed.
func TestLoadRunsMigrationValidatorAtCurrentVersion(t *testing.T) {
	migs, _ := persist.NewMigrations(1, nil, func(d json.RawMessage) error {
		if !strings.Contains(string(d), "ok") {
			return errors.New("not ok")
		}
		return nil
	})
	s := stored(t, record(t, statesync.Snapshot{Revision: 1, Data: []byte(`"bad"`)}, nil))
	if _, _, err := persist.Load(context.Background(), s, &recorder{}, &persist.LoadOptions{Migrations: migs}); !errors.Is(err, persist.ErrValidation) {
		t.Errorf("Load() of current-version data failing the migrations' validator = %v; want ErrValidation", err)
	}
}

// B-PLOAD-07, B-PLOAD-08: the applier completes before Load returns; its
// error and panic are load errors; a panicking OnError is swallowed.
func TestLoadApplierErrors(t *testing.T) {
	ctx := context.Background()
	s := stored(t, record(t, statesync.Snapshot{Revision: 1, Data: []byte(`1`)}, nil))
	boom := errors.New("boom")
	_, _, err := persist.Load(ctx, s, &recorder{err: boom}, &persist.LoadOptions{OnError: func(*persist.Error) { panic("onError") }})
	var pe *persist.Error
	if !errors.Is(err, boom) || !errors.As(err, &pe) || pe.Op != persist.OpLoad || pe.Snapshot == nil || pe.Meta == nil {
		t.Errorf("Load() with a failing applier = %v; want a load *Error with the snapshot and metadata", err)
	}
	panicky := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { panic("applier") })
	var ps *statesync.PanicError
	if _, _, err := persist.Load(ctx, s, panicky, nil); !errors.As(err, &ps) {
		t.Errorf("Load() with a panicking applier = %v; want a *statesync.PanicError", err)
	}
	done := false
	slow := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { time.Sleep(time.Millisecond); done = true; return nil })
	if _, _, err := persist.Load(ctx, s, slow, nil); err != nil || !done {
		t.Errorf("Load() returned (%v) before the applier finished", err)
	}
}

// rawOf returns the record stored in s.
func rawOf(s persist.Storage) (persist.Record, bool) {
	r, ok, err := s.Load(context.Background())
	if err != nil {
		panic(err)
	}
	return r, ok
}
