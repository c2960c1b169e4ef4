// Package boltcache is a [persist.Storage] backend on a bbolt database:
// many keys in one file, each record (metadata and payload, with its
// checksum) written in one transaction.
//
// By default a [DB] keeps the file open, and bbolt's file lock keeps it to
// one process. With [Options.Shared], the file is opened for each
// operation and closed after it, so that several processes can share it;
// an operation that finds the file locked by another process retries
// ([Options.RetryAttempts], linear [Options.RetryDelay]) and then fails
// with an error wrapping [persist.ErrLocked].
package boltcache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/statesync-go/statesync/internal/sleep"
	"github.com/statesync-go/statesync/persist"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults.
const (
	DefaultBucket        = "statesync.persist"
	DefaultRetryAttempts = 3
	DefaultRetryDelay    = 100 * time.Millisecond
	DefaultLockTimeout   = 100 * time.Millisecond
)

// Options configures a [DB]. The zero value (or nil) gives the defaults.
type Options struct {
	// Bucket is the bucket holding the records; "" means DefaultBucket.
	Bucket string
	// Shared opens the file for each operation, so that processes can
	// share it.
	Shared bool
	// LockTimeout bounds each wait for the file lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// RetryAttempts is the number of retries after a lock timeout; 0 means
	// DefaultRetryAttempts, negative means none. RetryDelay is the delay
	// before retry n, times n; 0 means DefaultRetryDelay.
	RetryAttempts int
	RetryDelay    time.Duration
	// NoSync skips fsync at commit. UNSAFE: see bbolt's DB.NoSync. For
	// tests and benchmarks.
	NoSync bool
	// FileMode is the permission of a new file; 0 means 0600.
	FileMode os.FileMode
	// MaxSizeBytes, if positive, makes a save of an encoded record larger
	// than it fail with [persist.ErrQuotaExceeded].
	MaxSizeBytes int
}

// A DB is a bbolt file holding the records of many keys. It is safe for
// concurrent use.
type DB struct {
	path string
	opts Options

	mu     sync.RWMutex // protects db and closed; held in read mode by operations
	db     *bolt.DB     // nil in shared mode
	closed bool

	opMu sync.Mutex // shared mode: one open file per process at a time
}

// Open opens (creating if needed) the database at path. Without Shared it
// holds the file until Close; it returns an error wrapping
// [persist.ErrLocked] if another process holds it after the retries.
func Open(path string, opts *Options) (*DB, error) {
	d := &DB{path: path}
	if opts != nil {
		d.opts = *opts
	}
	o := &d.opts
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.RetryAttempts == 0 {
		o.RetryAttempts = DefaultRetryAttempts
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.FileMode == 0 {
		o.FileMode = 0o600
	}
	db, err := d.open(context.Background(), false)
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(o.Bucket))
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltcache: %s: %w", path, err)
	}
	if o.Shared {
		if err := db.Close(); err != nil {
			return nil, err
		}
	} else {
		d.db = db
	}
	return d, nil
}

// open opens the file, retrying lock timeouts.
func (d *DB) open(ctx context.Context, readOnly bool) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		db, err := bolt.Open(d.path, d.opts.FileMode, &bolt.Options{Timeout: d.opts.LockTimeout, NoSync: d.opts.NoSync, ReadOnly: readOnly})
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("boltcache: open %s: %w", d.path, err)
		}
		if attempt >= max(0, d.opts.RetryAttempts) {
			return nil, fmt.Errorf("%w: boltcache: %s held by another process after %d attempts", persist.ErrLocked, d.path, attempt+1)
		}
		if err := sleep.For(ctx, d.opts.RetryDelay*time.Duration(attempt+1)); err != nil {
			return nil, err
		}
	}
}

// with runs fn on an open database.
func (d *DB) with(ctx context.Context, readOnly bool, fn func(db *bolt.DB) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return persist.ErrClosed
	}
	if d.db != nil {
		return fn(d.db)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if readOnly {
		if _, err := os.Stat(d.path); errors.Is(err, fs.ErrNotExist) {
			return fs.ErrNotExist
		}
	}
	db, err := d.open(ctx, readOnly)
	if err != nil {
		return err
	}
	err = fn(db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close releases the file. It is idempotent.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.db != nil {
		return d.db.Close()
	}
	return nil
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// Storage returns the storage of key. Keys are isolated; an
// empty key is an error wrapping [persist.ErrInvalidKey].
func (d *DB) Storage(key string) (*Storage, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty", persist.ErrInvalidKey)
	}
	return &Storage{d: d, key: []byte(key)}, nil
}

// A Storage is the record of one key of a [DB]. It is safe for concurrent
// use.
type Storage struct {
	d   *DB
	key []byte
}

var (
	_ persist.Storage          = (*Storage)(nil)
	_ persist.Clearer          = (*Storage)(nil)
	_ persist.ConditionalSaver = (*Storage)(nil)
)

// Save writes r in one transaction.
func (s *Storage) Save(ctx context.Context, r persist.Record) error {
	_, err := s.save(ctx, r, false)
	return err
}

// SaveIfNewer writes r if it supersedes the stored record, reading,
// comparing and writing in one transaction. A stored record that cannot
// be decoded is replaced.
func (s *Storage) SaveIfNewer(ctx context.Context, r persist.Record) (bool, error) {
	return s.save(ctx, r, true)
}

func (s *Storage) save(ctx context.Context, r persist.Record, ifNewer bool) (bool, error) {
	b := persist.MarshalRecord(r)
	if max := s.d.opts.MaxSizeBytes; max > 0 && len(b) > max {
		return false, fmt.Errorf("%w: boltcache: record of %d bytes, max %d bytes", persist.ErrQuotaExceeded, len(b), max)
	}
	saved := false
	err := s.d.with(ctx, false, func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte(s.d.opts.Bucket))
			if err != nil {
				return err
			}
			if ifNewer {
				if cur := bk.Get(s.key); cur != nil {
					if old, err := persist.UnmarshalRecord(cur); err == nil && !persist.Supersedes(r.Meta, old.Meta) {
						return nil
					}
				}
			}
			saved = true
			return bk.Put(s.key, b)
		})
	})
	if err != nil {
		return false, fmt.Errorf("boltcache: save %q: %w", s.key, err)
	}
	return saved, nil
}

// Load reads and decodes the record. An undecodable one is an error
// wrapping [persist.ErrCorruptData] naming the key.
func (s *Storage) Load(ctx context.Context) (persist.Record, bool, error) {
	var b []byte
	err := s.d.with(ctx, true, func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			if bk := tx.Bucket([]byte(s.d.opts.Bucket)); bk != nil {
				if v := bk.Get(s.key); v != nil {
					b = append([]byte(nil), v...)
				}
			}
			return nil
		})
	})
	if errors.Is(err, fs.ErrNotExist) {
		return persist.Record{}, false, nil
	}
	if err != nil {
		return persist.Record{}, false, fmt.Errorf("boltcache: load %q: %w", s.key, err)
	}
	if b == nil {
		return persist.Record{}, false, nil
	}
	r, err := persist.UnmarshalRecord(b)
	if err != nil {
		return persist.Record{}, false, fmt.Errorf("boltcache: key %q in %s: %w", s.key, s.d.path, err)
	}
	return r, true, nil
}

// Clear deletes the record.
func (s *Storage) Clear(ctx context.Context) error {
	err := s.d.with(ctx, false, func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			if bk := tx.Bucket([]byte(s.d.opts.Bucket)); bk != nil {
				return bk.Delete(s.key)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("boltcache: clear %q: %w", s.key, err)
	}
	return nil
}
