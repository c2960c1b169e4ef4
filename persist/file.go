package persist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FileOptions configures a [FileStorage]. The zero value (or nil) gives
// the defaults.
type FileOptions struct {
	// FileMode is the permission of record files; 0 means 0600.
	FileMode os.FileMode
	// DirMode is the permission of a directory created by
	// [NewFileStorage]; 0 means 0700.
	DirMode os.FileMode
	// NoSync skips the fsync of each record file and of the directory.
	// UNSAFE: after an operating-system crash or power loss a save may be
	// lost or the record empty. A crash of the process alone loses nothing
	// either way. Meant for tests and benchmarks.
	NoSync bool
	// MaxSizeBytes, if positive, makes a save whose encoded record is
	// larger fail with [ErrQuotaExceeded].
	MaxSizeBytes int
}

// A FileStorage keeps the record of one key in one file of a directory.
// Many FileStorages, in one process or several, may share a directory and
// a key.
//
// A save writes the record to a temporary file in the same directory,
// fsyncs it, renames it over the record file and fsyncs the directory, so
// that a crash at any point leaves the old record or the new one, never a
// torn one; and each record carries a checksum, so that a record altered
// on disk is reported as [ErrCorruptData] rather than loaded. SaveIfNewer
// holds an advisory lock (flock) on a lock file beside the record while it
// compares and writes.
//
// The file name is derived from the key by [FileName]. A FileStorage is
// safe for concurrent use.
type FileStorage struct {
	dir, key, name string
	opts           FileOptions
}

var (
	_ Storage          = (*FileStorage)(nil)
	_ Clearer          = (*FileStorage)(nil)
	_ ConditionalSaver = (*FileStorage)(nil)
)

// NewFileStorage returns the storage of key in dir, creating dir if
// needed. It returns an error wrapping [ErrInvalidKey] for an empty key.
// Temporary files left by a crash more than an hour ago are removed.
func NewFileStorage(dir, key string, opts *FileOptions) (*FileStorage, error) {
	name, err := fileName(key)
	if err != nil {
		return nil, err
	}
	f := &FileStorage{dir: dir, key: key, name: name}
	if opts != nil {
		f.opts = *opts
	}
	if f.opts.FileMode == 0 {
		f.opts.FileMode = 0o600
	}
	if f.opts.DirMode == 0 {
		f.opts.DirMode = 0o700
	}
	if err := os.MkdirAll(dir, f.opts.DirMode); err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	f.removeStaleTemps(time.Hour)
	return f, nil
}

// Path returns the record file's path.
func (f *FileStorage) Path() string { return filepath.Join(f.dir, f.name) }

// fileName returns the name of the record file of key: the key with every
// byte outside a–z, 0–9, '-' and '_' written as %XX (upper-case hex), and
// ".rec" appended. Such names are the same on every file system, distinct
// for distinct keys even where names are case-insensitive, never hidden,
// never "." or "..", and hold no path separator. A key whose name would
// exceed 160 bytes keeps its first 100 bytes of name followed by "~" and
// the hex SHA-256 of the key. Windows device names (con, nul, com1…)
// have their first letter escaped. An empty key is an error wrapping
// [ErrInvalidKey].
func fileName(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	escape := func(c byte) { b.WriteByte('%'); b.WriteByte(hexDigits[c>>4]); b.WriteByte(hexDigits[c&15]) }
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			if i == 0 && reservedName(key) {
				escape(c)
				continue
			}
			b.WriteByte(c)
		} else {
			escape(c)
		}
	}
	name := b.String()
	if len(name) > 160 {
		cut := 100
		for cut > 0 && strings.LastIndexByte(name[:cut], '%') >= cut-2 { // do not split an escape
			cut--
		}
		sum := sha256.Sum256([]byte(key))
		name = name[:cut] + "~" + hex.EncodeToString(sum[:])
	}
	return name + ".rec", nil
}

// reservedName reports whether key is a Windows device name.
func reservedName(key string) bool {
	switch key {
	case "con", "prn", "aux", "nul":
		return true
	}
	if len(key) == 4 && (strings.HasPrefix(key, "com") || strings.HasPrefix(key, "lpt")) && key[3] >= '0' && key[3] <= '9' {
		return true
	}
	return false
}

// Save writes r, replacing the stored record atomically.
func (f *FileStorage) Save(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.write(MarshalRecord(r))
}

// SaveIfNewer writes r if it supersedes the stored record, holding the
// key's lock file while it reads, compares and writes. A stored record that
// cannot be decoded is replaced.
func (f *FileStorage) SaveIfNewer(ctx context.Context, r Record) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	unlock, err := lockFile(ctx, filepath.Join(f.dir, "."+f.name+".lock"), f.opts.FileMode)
	if err != nil {
		return false, err
	}
	defer unlock()
	if cur, ok, err := f.Load(ctx); err == nil && ok && !Supersedes(r.Meta, cur.Meta) {
		return false, nil
	} else if err != nil && !errors.Is(err, ErrCorruptData) && !errors.Is(err, ErrUnsupportedFormat) {
		return false, err
	}
	if err := f.write(MarshalRecord(r)); err != nil {
		return false, err
	}
	return true, nil
}

func (f *FileStorage) write(b []byte) (err error) {
	if max := f.opts.MaxSizeBytes; max > 0 && len(b) > max {
		return fmt.Errorf("%w: file %s: record of %d bytes, max %d bytes", ErrQuotaExceeded, f.name, len(b), max)
	}
	tmp, err := os.CreateTemp(f.dir, "."+f.name+".tmp-*")
	if err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("persist: save %s: %w", f.Path(), err)
		}
	}()
	if f.opts.FileMode != 0o600 {
		if err := tmp.Chmod(f.opts.FileMode); err != nil {
			return err
		}
	}
	if _, err := tmp.Write(b); err != nil {
		return err
	}
	if !f.opts.NoSync {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.Path()); err != nil {
		return err
	}
	if !f.opts.NoSync {
		return syncDir(f.dir)
	}
	return nil
}

// Load reads and decodes the record file. A missing file is ok=false; a
// file that does not decode is an error wrapping [ErrCorruptData] (or
// [ErrUnsupportedFormat]) naming the key and path.
func (f *FileStorage) Load(ctx context.Context) (Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, false, err
	}
	b, err := os.ReadFile(f.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("persist: %w", err)
	}
	r, err := UnmarshalRecord(b)
	if err != nil {
		return Record{}, false, fmt.Errorf("persist: key %q (%s): %w", f.key, f.Path(), err)
	}
	return r, true, nil
}

// Clear removes the record file.
func (f *FileStorage) Clear(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(f.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("persist: %w", err)
	}
	if !f.opts.NoSync {
		return syncDir(f.dir)
	}
	return nil
}

func (f *FileStorage) removeStaleTemps(age time.Duration) {
	matches, _ := filepath.Glob(filepath.Join(f.dir, "."+f.name+".tmp-*"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && time.Since(st.ModTime()) > age {
			os.Remove(m)
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
