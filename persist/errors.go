package persist

import (
	"errors"
	"fmt"

	"github.com/statesync-go/statesync"
)

// Sentinel errors. Each is matched with [errors.Is]; the errors returned by
// this package wrap them with detail.
var (
	// ErrExpired is returned by a load when the record is older than the
	// TTL it was saved with, or has a TTL and no saved time.
	ErrExpired = errors.New("persist: cache expired")
	// ErrIntegrity is returned by a load when the SHA-256 hash of the
	// stored payload does not match the one recorded at save, when a hash
	// is required and missing, or when the payload does not match its
	// metadata (size, revision, epoch).
	ErrIntegrity = errors.New("persist: integrity check failed")
	// ErrCorruptData is returned when stored bytes cannot be decoded: a
	// record file that is truncated, fails its checksum, or holds a
	// snapshot that is not valid JSON.
	ErrCorruptData = errors.New("persist: corrupt data")
	// ErrUnsupportedFormat is returned when a record was written in a
	// format version this package does not know (a newer one).
	ErrUnsupportedFormat = errors.New("persist: unsupported record format")
	// ErrForeign is returned by a load when the record was saved for
	// another topic than the one the loader expects.
	ErrForeign = errors.New("persist: record belongs to another topic")
	// ErrValidation is returned by a load when the validator rejects the
	// (possibly migrated) data.
	ErrValidation = errors.New("persist: validation failed")
	// ErrFutureVersion is returned when data has a schema version newer
	// than the current one: it was saved by a newer program.
	ErrFutureVersion = errors.New("persist: data is from a future schema version")
	// ErrMissingMigration is returned when the migration chain from the
	// data's schema version to the current one has a gap.
	ErrMissingMigration = errors.New("persist: missing migration")
	// ErrInvalidMigrations is returned by
	// [NewMigrations] for versions below 1 or an incomplete chain.
	ErrInvalidMigrations = errors.New("persist: invalid migrations")
	// ErrMigration is returned when a migration step fails or panics.
	// The step's own error is wrapped too.
	ErrMigration = errors.New("persist: migration failed")
	// ErrInvalidCompressedData is returned by Decompress for input that is
	// not valid output of the compressor.
	ErrInvalidCompressedData = errors.New("persist: invalid compressed data")
	// ErrUnknownAlgorithm is returned by a load when the record was
	// compressed with an algorithm the loader was not given.
	ErrUnknownAlgorithm = errors.New("persist: unknown compression algorithm")
	// ErrQuotaExceeded is returned by a storage whose size limit a save
	// would exceed; nothing is written.
	ErrQuotaExceeded = errors.New("persist: quota exceeded")
	// ErrInvalidKey is returned for an empty storage key.
	ErrInvalidKey = errors.New("persist: invalid key")
	// ErrLocked is returned when a storage stays locked by another process
	// after every retry. It is the only storage error that is
	// retried.
	ErrLocked = errors.New("persist: storage locked")
	// ErrClosed is returned by a [Persister] or a storage used after
	// Close.
	ErrClosed = errors.New("persist: closed")
)

// An Op names the persistence operation in which an error happened.
type Op string

// The operations.
const (
	OpSave    Op = "save"
	OpLoad    Op = "load"
	OpMigrate Op = "migrate"
	OpClear   Op = "clear"
	// OpReload is a [Persister.Reload] of another process's record.
	OpReload Op = "reload"
)

// An Error is what a [Persister] or [Load] reports to OnError: the
// operation, the cause and what is known of the snapshot and its record.
// It is also the error they return. Read it with [errors.As].
type Error struct {
	Op Op
	// Err is the cause; it wraps one of the sentinels above, a storage
	// error or a context error.
	Err error
	// Snapshot is the snapshot involved, if known (its Data may be the
	// stored, unmigrated data).
	Snapshot *statesync.Snapshot
	// Meta is the stored record's metadata, if it was read.
	Meta *Metadata
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("persist: %s error", e.Op)
	}
	return fmt.Sprintf("persist: %s: %v", e.Op, e.Err)
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// callOnError calls fn with e, recovering a panic.
func callOnError(fn func(*Error), e *Error) {
	if fn == nil {
		return
	}
	defer func() { _ = recover() }()
	fn(e)
}
