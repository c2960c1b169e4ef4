package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/statesync-go/statesync"
)

// LoadOptions configures [Load]. The zero value (or nil) gives the
// defaults: TTLs are honoured, hashes are checked when present
// but not required, no migration, no validator.
type LoadOptions struct {
	// OnError is called once for each error the load reports, with the
	// operation (OpLoad, OpMigrate, or OpSave for a failed write-back),
	// with no lock held. A panic in it is recovered.
	OnError func(*Error)
	// Migrations, if set, migrate stored data of an older schema version
	// to Migrations.Current(), and its validator runs on every load.
	Migrations *Migrations
	// SchemaVersion is the schema version the program expects. 0 means
	// Migrations.Current() if Migrations is set; otherwise 0 means
	// "accept any version". Data of another version is never applied: an
	// older one needs Migrations (else ErrMissingMigration), a newer one
	// is ErrFutureVersion.
	SchemaVersion int
	// Validator, if set, is called with the (migrated) data; an error
	// rejects the record with [ErrValidation].
	Validator func(data json.RawMessage) error
	// IgnoreTTL skips the TTL check.
	IgnoreTTL bool
	// MaxAge, if positive, is a loader-side age limit: a record older than
	// MaxAge, or of unknown age (no saved time), is expired whatever TTL it
	// was saved with. IgnoreTTL skips it too.
	MaxAge time.Duration
	// VerifyHash requires a hash: a record saved without one is rejected
	// with [ErrIntegrity]. A hash that is present is checked
	// in any case.
	VerifyHash bool
	// Compressors are the compressors a load may need beyond the built-in
	// ones (none, gzip, base64), e.g. zstd.New().
	Compressors []Compressor
	// NoWriteBack turns off saving migrated data back with the current
	// schema version.
	NoWriteBack bool
	// Topic, if set, rejects records saved for another topic with
	// [ErrForeign].
	Topic string
}

// LoadInfo says what [Load] found and did.
type LoadInfo struct {
	// Found reports whether a record was stored.
	Found bool
	// Applied reports whether the snapshot was handed to the applier and
	// accepted.
	Applied bool
	// Meta is the stored record's metadata.
	Meta Metadata
	// Age is the record's age at load; 0 if unknown.
	Age time.Duration
	// FromVersion is the stored data's schema version and ToVersion the
	// version it was migrated to; they differ if migration steps ran.
	FromVersion, ToVersion int
	// WrittenBack reports whether the migrated record was saved back.
	WrittenBack bool
}

// loadHooks let a Persister observe a load.
type loadHooks struct {
	beforeApply func(s statesync.Snapshot, m Metadata)
}

// Load reads the record of s, checks it and applies its snapshot to app.
// The checks run in this order, and the first that fails
// stops the load, is reported once to OnError and returned as an *[Error]
// without anything applied:
//
//  1. read (a storage error);
//  2. absent: Load returns ok=false (info.Found false) and no error;
//  3. TTL and MaxAge: [ErrExpired];
//  4. hash: [ErrIntegrity];
//  5. decompression ([ErrUnknownAlgorithm], [ErrInvalidCompressedData]),
//     size, decoding, canonical revision ("invalid cached revision",
//     wrapping [statesync.ErrNonCanonicalRevision]), agreement of payload
//     and metadata ([ErrIntegrity]) and topic ([ErrForeign]);
//  6. schema version and migration (reported as OpMigrate);
//  7. the validator: [ErrValidation];
//  8. the applier (any error it returns).
//
// Then, if migration steps ran, the migrated record is saved back with the
// current schema version, its original saved time and TTL; a
// failed write-back is reported (OpSave) but does not fail the load.
//
// If app is nil, Load does everything but apply. The returned snapshot
// carries the migrated data and the stored revision.
func Load(ctx context.Context, s Storage, app statesync.Applier, opts *LoadOptions) (statesync.Snapshot, LoadInfo, error) {
	var o LoadOptions
	if opts != nil {
		o = *opts
	}
	return load(ctx, s, app, &o, nil)
}

func (o *LoadOptions) now() time.Time { return time.Now() }

// schema returns the expected schema version (0: any).
func (o *LoadOptions) schema() (int, error) {
	switch {
	case o.Migrations == nil:
		return o.SchemaVersion, nil
	case o.SchemaVersion == 0 || o.SchemaVersion == o.Migrations.Current():
		return o.Migrations.Current(), nil
	}
	return 0, fmt.Errorf("persist: SchemaVersion %d differs from Migrations.Current() %d", o.SchemaVersion, o.Migrations.Current())
}

func load(ctx context.Context, s Storage, app statesync.Applier, o *LoadOptions, h *loadHooks) (snap statesync.Snapshot, info LoadInfo, err error) {
	var meta *Metadata
	var snapp *statesync.Snapshot
	var migrated bool
	fail := func(op Op, cause error) error {
		e := &Error{Op: op, Err: cause, Snapshot: snapp, Meta: meta}
		callOnError(o.OnError, e)
		return e
	}
	comps, err := compressors(o.Compressors...)
	if err != nil {
		return statesync.Snapshot{}, info, fail(OpLoad, err)
	}
	current, err := o.schema()
	if err != nil {
		return statesync.Snapshot{}, info, fail(OpLoad, err)
	}

	// 1, 2: read.
	rec, ok, err := s.Load(ctx)
	if err != nil {
		return statesync.Snapshot{}, info, fail(OpLoad, err)
	}
	if !ok {
		return statesync.Snapshot{}, info, nil
	}
	info.Found, info.Meta = true, rec.Meta
	m := rec.Meta
	meta = &m
	legacy := m.SchemaVersion == 0

	// 3: TTL.
	now := o.now()
	ageKnown := !m.SavedAt.IsZero()
	if ageKnown {
		info.Age = max(0, now.Sub(m.SavedAt))
	}
	if !o.IgnoreTTL {
		var cause error
		switch {
		case m.TTL > 0 && !ageKnown:
			cause = fmt.Errorf("%w: unknown age, TTL: %dms", ErrExpired, m.TTL.Milliseconds())
		case m.TTL > 0 && info.Age > m.TTL:
			cause = fmt.Errorf("%w: age: %dms, TTL: %dms", ErrExpired, info.Age.Milliseconds(), m.TTL.Milliseconds())
		case o.MaxAge > 0 && !ageKnown:
			cause = fmt.Errorf("%w: unknown age, max age: %dms", ErrExpired, o.MaxAge.Milliseconds())
		case o.MaxAge > 0 && info.Age > o.MaxAge:
			cause = fmt.Errorf("%w: age: %dms, max age: %dms", ErrExpired, info.Age.Milliseconds(), o.MaxAge.Milliseconds())
		}
		if cause != nil {
			return statesync.Snapshot{}, info, fail(OpLoad, cause)
		}
	}

	// 4: hash, over the stored bytes, before anything decodes them.
	switch {
	case m.Hash == "" && o.VerifyHash:
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: hash missing", ErrIntegrity))
	case m.Hash != "" && Hash(rec.Payload) != m.Hash:
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: SHA-256 of the payload is %s, recorded %s", ErrIntegrity, Hash(rec.Payload), m.Hash))
	}

	// 5: decompress, decode, cross-check.
	c := comps[m.Algorithm]
	if c == nil {
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: %q", ErrUnknownAlgorithm, m.Algorithm))
	}
	js, err := c.Decompress(rec.Payload)
	if err != nil {
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("decompress %s: %w", c.Algorithm(), err))
	}
	if !legacy && len(js) != m.SizeBytes {
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: payload is %d bytes, recorded %d", ErrIntegrity, len(js), m.SizeBytes))
	}
	snap, err = statesync.DecodeSnapshot(js)
	if err != nil {
		if errors.Is(err, statesync.ErrNonCanonicalRevision) {
			return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("invalid cached revision: %w", err))
		}
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: %w", ErrCorruptData, err))
	}
	snapp = &snap
	if !legacy && (snap.Revision != m.Revision || snap.Epoch != m.Epoch) {
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: payload has revision %d epoch %q, metadata %d %q", ErrIntegrity, snap.Revision, snap.Epoch, m.Revision, m.Epoch))
	}
	if o.Topic != "" && m.Topic != "" && m.Topic != o.Topic {
		return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: saved for %q, loading %q", ErrForeign, m.Topic, o.Topic))
	}

	// 6: schema version and migration.
	from := m.SchemaVersion
	if legacy {
		from = 1 // a record without metadata is of version 1
	}
	info.FromVersion, info.ToVersion = from, from
	if o.Migrations != nil {
		res, err := o.Migrations.migrate(snap.Data, from)
		if err != nil {
			return statesync.Snapshot{}, info, fail(OpMigrate, err)
		}
		info.ToVersion = res.ToVersion
		migrated = res.Steps > 0
		if migrated {
			snap.Data = res.Data
		}
	} else if current > 0 && from != current {
		if from > current {
			return statesync.Snapshot{}, info, fail(OpMigrate, fmt.Errorf("%w: cannot migrate from future version %d to %d", ErrFutureVersion, from, current))
		}
		return statesync.Snapshot{}, info, fail(OpMigrate, fmt.Errorf("%w: from version %d to %d (no migrations given)", ErrMissingMigration, from, current))
	}

	// 7: validator.
	if o.Validator != nil {
		if err := runValidator(o.Validator, snap.Data); err != nil {
			return statesync.Snapshot{}, info, fail(OpLoad, fmt.Errorf("%w: custom validation failed: %w", ErrValidation, err))
		}
	}

	// 8: apply.
	if h != nil && h.beforeApply != nil {
		h.beforeApply(snap, m)
	}
	if app != nil {
		if err := callApply(ctx, app, snap); err != nil {
			return statesync.Snapshot{}, info, fail(OpLoad, err)
		}
		info.Applied = true
	}

	// 9: write back migrated data.
	if migrated && !o.NoWriteBack {
		ver := current
		if ver == 0 {
			ver = info.ToVersion
		}
		var comp Compressor
		if compressed(m) {
			comp = c
		}
		savedAt := m.SavedAt
		if savedAt.IsZero() {
			savedAt = now
		}
		wb, err := NewRecord(snap, &RecordOptions{SchemaVersion: ver, Compressor: comp, Hash: m.Hash != "", TTL: m.TTL, Topic: m.Topic, SavedAt: savedAt})
		if err == nil {
			err = s.Save(ctx, wb)
		}
		if err != nil {
			callOnError(o.OnError, &Error{Op: OpSave, Err: fmt.Errorf("write back migrated data: %w", err), Snapshot: snapp, Meta: meta})
		} else {
			info.WrittenBack = true
		}
	}
	return snap, info, nil
}

// callApply calls app, recovering a panic into a *statesync.PanicError.
func callApply(ctx context.Context, app statesync.Applier, s statesync.Snapshot) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &statesync.PanicError{Value: r}
		}
	}()
	return app.Apply(ctx, s)
}
