package persist

import (
	"context"
)

// A Storage keeps one [Record] under one key. Save replaces
// the record (metadata included); Load returns the latest, or
// ok=false if there is none, which is not an error. Both copy the record,
// honour ctx, and are safe for concurrent use. A Save that
// returns an error leaves the previous record in place.
//
// Optional abilities are separate interfaces: [Clearer] and
// [ConditionalSaver].
type Storage interface {
	Save(ctx context.Context, r Record) error
	Load(ctx context.Context) (r Record, ok bool, err error)
}

// A Clearer is a Storage that can remove its record; the next Load
// returns ok=false.
type Clearer interface {
	Clear(ctx context.Context) error
}

// A ConditionalSaver is a Storage that can replace its record only if the
// new one is newer, atomically with respect to other savers of the same
// key, in this process and others. "Newer" is the consumer's revision
// gate: no stored record, a stored record without metadata, another
// non-empty epoch, or a higher revision. [Persister] saves through it when
// the storage has it, so that processes sharing a store never move it
// back.
type ConditionalSaver interface {
	SaveIfNewer(ctx context.Context, r Record) (saved bool, err error)
}
