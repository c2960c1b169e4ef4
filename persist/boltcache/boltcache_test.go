package boltcache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/boltcache"
	"github.com/statesync-go/statesync/persist/persisttest"
)

func open(t *testing.T, path string, o *boltcache.Options) *boltcache.DB {
	t.Helper()
	db, err := boltcache.Open(path, o)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func opener(t *testing.T, db *boltcache.DB) persisttest.Opener {
	return func(key string) persist.Storage {
		s, err := db.Storage(key)
		if err != nil {
			t.Fatalf("Storage(%q) = %v", key, err)
		}
		return s
	}
}

// B-STORE-01..05, B-STORE-15, B-STORE-18, B-STORE-27, B-STORE-28,
// B-STORE-31
func TestConformance(t *testing.T) {
	persisttest.TestStorage(t, func(t *testing.T) persisttest.Opener {
		return opener(t, open(t, filepath.Join(t.TempDir(), "cache.db"), nil))
	})
}

// The same, with the file opened per operation.
func TestConformanceShared(t *testing.T) {
	persisttest.TestStorage(t, func(t *testing.T) persisttest.Opener {
		return opener(t, open(t, filepath.Join(t.TempDir(), "cache.db"), &boltcache.Options{Shared: true, LockTimeout: 5 * time.Second}))
	})
}

// Two shared DBs on one file (as two processes would) see each other's
// records; a DB that holds the file keeps the others out with ErrLocked
// after the retries (B-STORE-30).
func TestSharedAndLocked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	a := open(t, path, &boltcache.Options{Shared: true})
	b := open(t, path, &boltcache.Options{Shared: true})
	sa, _ := a.Storage("k")
	sb, _ := b.Storage("k")
	want := persisttest.Record(4, "e", `"shared"`)
	if err := sa.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := sb.Load(ctx)
	if err != nil || !ok {
		t.Fatalf("Load() through the second DB = %v, %v", ok, err)
	}
	persisttest.CheckRecord(t, "Load() through the second DB", got, want)

	holder := open(t, path, nil) // not shared: holds the file
	_ = holder
	start := time.Now()
	_, _, err = sb.Load(ctx)
	if !errors.Is(err, persist.ErrLocked) {
		t.Errorf("Load() while another DB holds the file = %v; want ErrLocked", err)
	}
	// 4 lock waits and linear retry delays of 100, 200 and 300ms.
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("Load() gave up after %v; want at least the 600ms of retry delays", d)
	}
	if _, err := boltcache.Open(path, &boltcache.Options{RetryAttempts: -1, LockTimeout: 10 * time.Millisecond}); !errors.Is(err, persist.ErrLocked) {
		t.Errorf("Open() of a held file = %v; want ErrLocked", err)
	}
}

func TestClosedAndBadKey(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "cache.db"), nil)
	if _, err := db.Storage(""); !errors.Is(err, persist.ErrInvalidKey) {
		t.Errorf("Storage(\"\") = %v; want ErrInvalidKey", err)
	}
	s, _ := db.Storage("k")
	db.Close()
	if err := db.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	if err := s.Save(context.Background(), persisttest.Record(1, "", "1")); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Save() after Close = %v; want ErrClosed", err)
	}
}

func TestNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	os.WriteFile(path, []byte("this is not a bbolt file, not at all, really"), 0o600)
	if db, err := boltcache.Open(path, nil); err == nil {
		db.Close()
		t.Errorf("Open(a text file) = nil error; want an error")
	}
}
