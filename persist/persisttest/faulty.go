package persisttest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/statesync-go/statesync/persist"
)

// DefaultErrorMessage is the default of [FaultOptions.ErrorMessage].
const DefaultErrorMessage = "Simulated storage error"

// ErrSimulated is matched by the errors that a [Faulty] storage in a
// failure mode returns.
var ErrSimulated = errors.New("persisttest: simulated storage error")

// FaultOptions configures a [Faulty] storage. The zero value (or nil)
// injects nothing.
type FaultOptions struct {
	// Latency delays Save, SaveIfNewer and Load; the wait ends early if
	// the operation's ctx ends.
	Latency time.Duration
	// FailOnSave and FailOnLoad make Save (and SaveIfNewer) or Load fail
	// with an error matching [ErrSimulated].
	FailOnSave, FailOnLoad bool
	// ErrorMessage is the text of the simulated errors; "" means
	// [DefaultErrorMessage].
	ErrorMessage string
}

// A Faulty is a [persist.MemoryStorage] that can be slowed down and made
// to fail, for tests of what uses a storage. Clear, Usage, SavedRecords and
// Raw are the MemoryStorage's, without latency or failures. It is safe for
// concurrent use.
type Faulty struct {
	*persist.MemoryStorage
	opts FaultOptions

	mu       sync.Mutex // protects failSave and failLoad
	failSave bool
	failLoad bool
}

// NewFaulty returns a Faulty around m; a nil m means a new empty
// MemoryStorage.
func NewFaulty(m *persist.MemoryStorage, opts *FaultOptions) *Faulty {
	if m == nil {
		m = persist.NewMemoryStorage(nil)
	}
	f := &Faulty{MemoryStorage: m}
	if opts != nil {
		f.opts = *opts
	}
	if f.opts.ErrorMessage == "" {
		f.opts.ErrorMessage = DefaultErrorMessage
	}
	f.failSave, f.failLoad = f.opts.FailOnSave, f.opts.FailOnLoad
	return f
}

type simulatedError struct{ msg string }

func (e *simulatedError) Error() string        { return e.msg }
func (e *simulatedError) Is(target error) bool { return target == ErrSimulated }

// inject waits the latency and returns the simulated error of the
// operation, if its failure mode is on.
func (f *Faulty) inject(ctx context.Context, save bool) error {
	if d := f.opts.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if (save && f.failSave) || (!save && f.failLoad) {
		return &simulatedError{f.opts.ErrorMessage}
	}
	return nil
}

// Save stores a copy of r, unless saves fail.
func (f *Faulty) Save(ctx context.Context, r persist.Record) error {
	if err := f.inject(ctx, true); err != nil {
		return err
	}
	return f.MemoryStorage.Save(ctx, r)
}

// SaveIfNewer stores a copy of r if it supersedes the stored record,
// unless saves fail.
func (f *Faulty) SaveIfNewer(ctx context.Context, r persist.Record) (bool, error) {
	if err := f.inject(ctx, true); err != nil {
		return false, err
	}
	return f.MemoryStorage.SaveIfNewer(ctx, r)
}

// Load returns a copy of the stored record, unless loads fail.
func (f *Faulty) Load(ctx context.Context) (persist.Record, bool, error) {
	if err := f.inject(ctx, false); err != nil {
		return persist.Record{}, false, err
	}
	return f.MemoryStorage.Load(ctx)
}

// SetFailMode switches the simulated failures of saves and loads.
func (f *Faulty) SetFailMode(save, load bool) {
	f.mu.Lock()
	f.failSave, f.failLoad = save, load
	f.mu.Unlock()
}
