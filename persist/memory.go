package persist

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
)

// MemoryOptions configures a [MemoryStorage]. The zero value (or nil)
// gives an empty storage without quota.
type MemoryOptions struct {
	// MaxSizeBytes, if positive, makes a save whose Meta.SizeBytes is
	// larger fail with [ErrQuotaExceeded].
	MaxSizeBytes int
	// Initial, if set, is the snapshot Load returns before any save, as a
	// record with schema version 1, no compression, SizeBytes the length of
	// its JSON and SavedAt the time of the constructor.
	Initial *statesync.Snapshot
}

// A MemoryStorage keeps a record in memory, as a copy. It is
// the test double of this package: it can be given a quota, and it records
// the history of successful saves (package persisttest's Faulty adds
// latency and failures). It is
// safe for concurrent use.
type MemoryStorage struct {
	opts    MemoryOptions
	initial *Record // from opts.Initial; never mutated

	mu      sync.Mutex // protects the fields below
	rec     Record
	ok      bool
	history []Record
}

var (
	_ Storage          = (*MemoryStorage)(nil)
	_ Clearer          = (*MemoryStorage)(nil)
	_ ConditionalSaver = (*MemoryStorage)(nil)
)

// NewMemoryStorage returns an empty MemoryStorage (or one holding
// opts.Initial).
func NewMemoryStorage(opts *MemoryOptions) *MemoryStorage {
	m := &MemoryStorage{}
	if opts != nil {
		m.opts = *opts
	}
	if s := m.opts.Initial; s != nil {
		js := s.AppendJSON(nil)
		m.initial = &Record{Meta: Metadata{SavedAt: time.UnixMilli(time.Now().UnixMilli()), SchemaVersion: 1,
			SizeBytes: len(js), Revision: s.Revision, Epoch: s.Epoch}, Payload: js}
	}
	m.resetLocked()
	return m
}

func (m *MemoryStorage) resetLocked() {
	m.rec, m.ok = Record{}, false
	if m.initial != nil {
		m.rec, m.ok = m.initial.clone(), true
	}
	m.history = nil
}

// Save stores a copy of r.
func (m *MemoryStorage) Save(ctx context.Context, r Record) error {
	_, err := m.save(ctx, r, false)
	return err
}

// SaveIfNewer stores a copy of r if it supersedes the stored record.
func (m *MemoryStorage) SaveIfNewer(ctx context.Context, r Record) (bool, error) {
	return m.save(ctx, r, true)
}

func (m *MemoryStorage) save(ctx context.Context, r Record, ifNewer bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r = r.clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	if max := m.opts.MaxSizeBytes; max > 0 && r.Meta.SizeBytes > max {
		return false, fmt.Errorf("%w: memory storage: size %d bytes, max %d bytes", ErrQuotaExceeded, r.Meta.SizeBytes, max)
	}
	if ifNewer && m.ok && !Supersedes(r.Meta, m.rec.Meta) {
		return false, nil
	}
	m.rec, m.ok = r, true
	m.history = append(m.history, r)
	return true, nil
}

// Load returns a copy of the stored record.
func (m *MemoryStorage) Load(ctx context.Context) (Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ok {
		return Record{}, false, nil
	}
	return m.rec.clone(), true, nil
}

// Clear removes the record.
func (m *MemoryStorage) Clear(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	m.rec, m.ok = Record{}, false
	m.mu.Unlock()
	return nil
}

// SavedRecords returns copies of the records of the successful saves, in
// order.
func (m *MemoryStorage) SavedRecords() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, len(m.history))
	for i, r := range m.history {
		out[i] = r.clone()
	}
	return out
}
