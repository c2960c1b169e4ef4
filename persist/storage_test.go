package persist_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
)

// B-STORE-01..05, B-STORE-15, B-STORE-18, B-STORE-19, B-STORE-27, B-STORE-31
func TestMemoryStorageConformance(t *testing.T) {
	persisttest.TestStorage(t, func(t *testing.T) persisttest.Opener {
		sm := persisttest.NewSharedMemory(nil)
		return func(key string) persist.Storage { return sm.Storage(key) }
	})
}

// B-STORE-01..05, B-STORE-15, B-STORE-18, B-STORE-20, B-STORE-27, B-STORE-31
func TestFileStorageConformance(t *testing.T) {
	persisttest.TestStorage(t, func(t *testing.T) persisttest.Opener {
		dir := t.TempDir()
		return func(key string) persist.Storage {
			s, err := persist.NewFileStorage(dir, key, nil)
			if err != nil {
				t.Fatalf("NewFileStorage(%q) = %v", key, err)
			}
			return s
		}
	})
}

func TestFileName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"settings", "settings.rec"},
		{"Settings", "%53ettings.rec"},
		{"a/b", "a%2Fb.rec"},
		{"..", "%2E%2E.rec"},
		{".hidden", "%2Ehidden.rec"},
		{"con", "%63on.rec"},
		{"com1", "%63om1.rec"},
		{"console", "console.rec"},
		{"é", "%C3%A9.rec"},
		{"x-y_z:1", "x-y_z%3A1.rec"},
	}
	for _, tt := range tests {
		got, err := persist.FileName(tt.key)
		if err != nil || got != tt.want {
			t.Errorf("FileName(%q) = %q, %v; want %q", tt.key, got, err, tt.want)
		}
	}
	long, err := persist.FileName(strings.Repeat("/", 100))
	if err != nil || len(long) > 200 || !strings.Contains(long, "~") || strings.Contains(long, "/") {
		t.Errorf("FileName(100 slashes) = %q (%d bytes), %v; want a hashed name under 200 bytes", long, len(long), err)
	}
	if _, err := persist.FileName(""); !errors.Is(err, persist.ErrInvalidKey) {
		t.Errorf("FileName(\"\") = %v; want ErrInvalidKey", err)
	}
}

// A save replaces the record file by rename: no temporary file is left,
// and the directory holds only the record (and its lock file after a
// conditional save).
func TestFileStorageLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := persist.NewFileStorage(dir, "topic", &persist.FileOptions{FileMode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for rev := range statesync.Revision(5) {
		if _, err := s.SaveIfNewer(ctx, persisttest.Record(rev+1, "", `"x"`)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{".topic.rec.lock", "topic.rec"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("directory after saves = %q; want %q", names, want)
	}
	st, err := os.Stat(s.Path())
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("Stat(%q) = %v, %v; want mode 0640", s.Path(), st.Mode(), err)
	}
}

// B-STORE-24: a record file that does not decode is ErrCorruptData naming
// the key, and is never returned as a record.
func TestFileStorageCorruptFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := persist.NewFileStorage(dir, "topic", nil)
	good := persist.MarshalRecord(persisttest.Record(3, "", `{"a":1}`))
	tests := map[string][]byte{
		"garbage":   []byte("not a record"),
		"truncated": good[:len(good)-3],
		"flipped":   append(append([]byte(nil), good[:len(good)-2]...), good[len(good)-2]^1, good[len(good)-1]),
		"empty":     {},
	}
	for name, b := range tests {
		if err := os.WriteFile(s.Path(), b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, ok, err := s.Load(context.Background())
		if !errors.Is(err, persist.ErrCorruptData) || ok || !strings.Contains(err.Error(), `"topic"`) {
			t.Errorf("%s: Load() = %+v, %v, %v; want ErrCorruptData naming the key", name, r.Meta, ok, err)
		}
	}
	// A conditional save replaces a corrupt record.
	if saved, err := s.SaveIfNewer(context.Background(), persisttest.Record(1, "", `"new"`)); !saved || err != nil {
		t.Errorf("SaveIfNewer over a corrupt record = %v, %v; want true, nil", saved, err)
	}
}

// A record file without metadata (a bare snapshot, as the TypeScript
// original's file backend writes) loads as a legacy record (B-STORE-29).
func TestFileStorageLegacySnapshot(t *testing.T) {
	dir := t.TempDir()
	s, _ := persist.NewFileStorage(dir, "topic", nil)
	if err := os.WriteFile(s.Path(), []byte(`{"revision":"9","data":{"x":1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, ok, err := s.Load(context.Background())
	if err != nil || !ok || r.Meta.SchemaVersion != 0 || string(r.Payload) != `{"revision":"9","data":{"x":1}}` {
		t.Errorf("Load() of a bare snapshot = %+v %q, %v, %v; want a record without metadata", r.Meta, r.Payload, ok, err)
	}
}

// Temporary files of a crashed save are removed once old.
func TestFileStorageRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, ".topic.rec.tmp-123")
	fresh := filepath.Join(dir, ".topic.rec.tmp-456")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	if _, err := persist.NewFileStorage(dir, "topic", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("Stat(old temporary file) = %v; want it removed", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("Stat(fresh temporary file) = %v; want it kept (a save may be writing it)", err)
	}
}

func TestFileStorageQuota(t *testing.T) {
	s, _ := persist.NewFileStorage(t.TempDir(), "topic", &persist.FileOptions{MaxSizeBytes: 200})
	err := s.Save(context.Background(), persisttest.Record(1, "", `"`+strings.Repeat("x", 300)+`"`))
	if !errors.Is(err, persist.ErrQuotaExceeded) {
		t.Errorf("Save(over quota) = %v; want ErrQuotaExceeded", err)
	}
	if _, ok, _ := s.Load(context.Background()); ok {
		t.Errorf("Load() after a save over quota = ok; want nothing stored")
	}
}
