package persist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
)

// Options configures a [Persister]. The zero value (or nil) gives the
// defaults: schema version 1, one immediate save per apply, no TTL, no
// compression, no hash.
type Options struct {
	// Topic, if set, is recorded in each record, and a load rejects records
	// of another topic with [ErrForeign].
	Topic string
	// SchemaVersion is the version of the data's schema; 0 means
	// Load.Migrations.Current() if Load.Migrations is set, else 1. Loads
	// never apply data of another version (see [LoadOptions.SchemaVersion]).
	SchemaVersion int

	// Debounce, if positive, saves only the latest snapshot once no apply
	// has come for that long. For a cache written by frequent applies,
	// Debounce 100 ms with MaxWait 2 s is a good start.
	Debounce time.Duration
	// Throttle, if positive, starts at most one save per window: an apply
	// within Throttle of the last save's start is counted in
	// Stats.ThrottledCount and saved after Debounce if set, otherwise at
	// the end of the window.
	Throttle time.Duration
	// MaxWait, if positive, bounds how long a snapshot waits for a
	// debounce or throttle timer: it is saved at the latest MaxWait after
	// the first unsaved apply.
	MaxWait time.Duration
	// Leading saves at once the first apply after a quiet period (no save
	// started within max(Debounce, Throttle)), then debounces.
	Leading bool

	// TTL is recorded in each record: a load after TTL rejects it. 0
	// means no TTL.
	TTL time.Duration
	// Compressor, if set, compresses payloads; loads know it without its
	// being listed in Load.Compressors.
	Compressor Compressor
	// Hash records the SHA-256 of each payload.
	Hash bool

	// Load configures the checks of [Persister.Restore] and
	// [Persister.Reload]. Its Topic, SchemaVersion and OnError are not
	// used: the Persister's own are.
	Load LoadOptions

	// OnError is called with each save, load, migrate, clear and reload
	// error, on the goroutine that met it and with no lock held. A panic
	// in it is recovered.
	OnError func(*Error)
	// Logger receives debug records (dropped snapshots, skipped saves) and
	// errors. Nil discards them.
	Logger *slog.Logger
}

// Stats are a Persister's counters. The zero value is the initial state.
type Stats struct {
	// SaveCount and SaveErrorCount count finished saves.
	SaveCount, SaveErrorCount int64
	// TotalBytesSaved adds up the JSON size of saved snapshots;
	// TotalBytesStored the payload size after compression.
	TotalBytesSaved, TotalBytesStored int64
	// LastSaveAt and LastSaveDuration are the completion time and
	// duration of the last successful save (zero before the first).
	LastSaveAt       time.Time
	LastSaveDuration time.Duration
	// ThrottledCount counts applies that came within the throttle window.
	ThrottledCount int64
	// SkippedCount counts snapshots not written because the last
	// persisted record (this process's or, with a ConditionalSaver,
	// another's) was not older.
	SkippedCount int64
}

type saveHook struct{ fn func(Metadata) }

// marker is a persisted or applied position.
type marker struct {
	rev   statesync.Revision
	epoch string
	any   bool
}

func markerOf(s statesync.Snapshot) marker { return marker{rev: s.Revision, epoch: s.Epoch, any: true} }

// newer reports whether s passes the gate over m.
func (m marker) newer(s statesync.Snapshot) bool {
	switch {
	case !m.any:
		return true
	case s.Epoch != "" && s.Epoch != m.epoch:
		return true
	}
	return s.Revision > m.rev
}

type flusher struct {
	target uint64
	err    error
	done   chan struct{}
}

// A Persister is a [statesync.Applier] that applies each snapshot to an
// inner applier and then saves it to a [Storage] in the background. It
// also restores the saved snapshot at start-up ([Persister.Restore]),
// clears it, and reports statistics.
//
// # Saving
//
// Saves never delay or fail Apply. One writer goroutine, started when
// there is something to write and gone when there is not, writes in order;
// a snapshot not newer than the last persisted one is skipped, and a newer
// pending snapshot replaces an older one that has not started.
//
// # Stopping
//
// [Persister.Shutdown] saves what is pending and waits for it;
// [Persister.Close] stops at once and drops what is pending, as
// [net/http.Server]'s methods of the same names do. Both wait for the
// Persister's goroutines.
//
// # Concurrency
//
// All methods are safe for concurrent use. Calls of the inner applier are
// serialised by a mutex used for nothing else: the inner applier must not
// call Apply of its own Persister. No other lock is held while user code
// runs (inner applier, storage, AfterSave functions, OnError, migrations).
type Persister struct {
	storage Storage
	inner   statesync.Applier
	opts    Options
	load    LoadOptions
	rec     RecordOptions
	log     *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // writer goroutine

	applyMu sync.Mutex // serialises calls of inner

	mu            sync.Mutex // protects the fields below
	closed        bool
	pending       *statesync.Snapshot // waiting for a timer
	debounceT     *time.Timer
	maxWaitT      *time.Timer
	debGen        uint64
	maxGen        uint64
	saved         bool // a save was handed to the writer
	lastSaveStart time.Time
	slot          *statesync.Snapshot // handed to the writer, not taken yet
	slotSeq       uint64
	enqueued      uint64 // sequence number of the last hand-off
	finished      uint64 // sequence number of the last write finished
	writing       bool
	flushers      []*flusher
	persisted     marker // last record saved or loaded
	overwrite     bool   // the stored record failed a load: replace it whatever its revision
	applied       marker // last snapshot applied to inner
	stats         Stats
	hooks         []*saveHook
	consumer      *statesync.Consumer // from Restore
}

var (
	_ statesync.Applier = (*Persister)(nil)
	_ io.Closer         = (*Persister)(nil)
)

// New returns a Persister that applies to inner and saves to storage.
// It returns an error for a nil storage or inner applier, negative
// durations, or a SchemaVersion that differs from
// Load.Migrations.Current().
func New(storage Storage, inner statesync.Applier, opts *Options) (*Persister, error) {
	if storage == nil || inner == nil {
		return nil, errors.New("persist: New needs a storage and an inner applier")
	}
	p := &Persister{storage: storage, inner: inner}
	if opts != nil {
		p.opts = *opts
	}
	o := &p.opts
	if o.Debounce < 0 || o.Throttle < 0 || o.MaxWait < 0 || o.TTL < 0 || o.Load.MaxAge < 0 || o.SchemaVersion < 0 {
		return nil, errors.New("persist: negative duration or schema version in Options")
	}
	if m := o.Load.Migrations; m != nil {
		if o.SchemaVersion == 0 {
			o.SchemaVersion = m.Current()
		} else if o.SchemaVersion != m.Current() {
			return nil, fmt.Errorf("persist: SchemaVersion %d differs from Load.Migrations.Current() %d", o.SchemaVersion, m.Current())
		}
	}
	if o.SchemaVersion == 0 {
		o.SchemaVersion = 1
	}
	if o.Logger != nil {
		p.log = o.Logger.With(slog.String("component", "statesync/persist"))
		if o.Topic != "" {
			p.log = p.log.With(slog.String("topic", o.Topic))
		}
	}
	comps := append([]Compressor(nil), o.Load.Compressors...)
	if o.Compressor != nil {
		comps = append(comps, o.Compressor)
	}
	if _, err := compressors(comps...); err != nil {
		return nil, err
	}
	p.rec = RecordOptions{SchemaVersion: o.SchemaVersion, Compressor: o.Compressor, Hash: o.Hash, TTL: o.TTL, Topic: o.Topic}
	p.load = o.Load
	p.load.SchemaVersion, p.load.Topic, p.load.OnError = o.SchemaVersion, o.Topic, p.report
	p.load.Compressors = comps
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

func (p *Persister) now() time.Time { return time.Now() }

// Apply applies s to the inner applier and, if that succeeds, schedules a
// save of s. The inner applier's error is returned and nothing is saved;
// save errors are never returned (they go to OnError). After Close, Apply
// does nothing.
func (p *Persister) Apply(ctx context.Context, s statesync.Snapshot) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if p.isClosed() {
		return nil
	}
	if err := callApply(ctx, p.inner, s); err != nil {
		return err
	}
	p.mu.Lock()
	p.applied = markerOf(s)
	if !p.closed {
		p.scheduleLocked(s)
	}
	p.mu.Unlock()
	return nil
}

func (p *Persister) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// scheduleLocked decides when s is saved.
func (p *Persister) scheduleLocked(s statesync.Snapshot) {
	if !p.persisted.newer(s) {
		// Already stored (a hydration through the consumer, or a notice
		// from another process): nothing to write.
		p.stats.SkippedCount++
		return
	}
	o := &p.opts
	now := p.now()
	window := max(o.Debounce, o.Throttle)
	quiet := p.pending == nil && (!p.saved || now.Sub(p.lastSaveStart) >= window)
	p.pending = &s
	if o.Throttle > 0 && p.saved && now.Sub(p.lastSaveStart) < o.Throttle {
		p.stats.ThrottledCount++
		d := o.Debounce
		if d <= 0 {
			d = o.Throttle - now.Sub(p.lastSaveStart)
		}
		p.armLocked(d)
		return
	}
	if o.Leading && quiet {
		p.handoffLocked()
		return
	}
	if o.Debounce > 0 {
		p.armLocked(o.Debounce)
		return
	}
	p.handoffLocked()
}

// armLocked (re)starts the debounce timer with d and starts the max-wait
// timer if none runs.
func (p *Persister) armLocked(d time.Duration) {
	if p.debounceT != nil {
		p.debounceT.Stop()
	}
	p.debGen++
	gen := p.debGen
	p.debounceT = time.AfterFunc(d, func() { p.fire(&p.debGen, gen) })
	if p.opts.MaxWait > 0 && p.maxWaitT == nil {
		p.maxGen++
		mgen := p.maxGen
		p.maxWaitT = time.AfterFunc(p.opts.MaxWait, func() { p.fire(&p.maxGen, mgen) })
	}
}

// fire is the callback of a timer of generation gen.
func (p *Persister) fire(cur *uint64, gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || *cur != gen || p.pending == nil {
		return
	}
	p.handoffLocked()
}

func (p *Persister) stopTimersLocked() {
	if p.debounceT != nil {
		p.debounceT.Stop()
		p.debounceT = nil
	}
	if p.maxWaitT != nil {
		p.maxWaitT.Stop()
		p.maxWaitT = nil
	}
	p.debGen++
	p.maxGen++
}

// handoffLocked hands the pending snapshot to the writer, starting it if
// needed. Any save clears both timers.
func (p *Persister) handoffLocked() {
	p.stopTimersLocked()
	s := p.pending
	p.pending = nil
	p.enqueued++
	p.slot, p.slotSeq = s, p.enqueued
	p.saved, p.lastSaveStart = true, p.now()
	if !p.writing {
		p.writing = true
		p.wg.Add(1)
		go p.writer()
	}
}

// writer writes handed-off snapshots until there are none.
func (p *Persister) writer() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if p.slot == nil || p.closed {
			p.writing = false
			p.mu.Unlock()
			return
		}
		snap, seq := *p.slot, p.slotSeq
		p.slot = nil
		fresh := p.persisted.newer(snap)
		if !fresh {
			p.stats.SkippedCount++
		}
		p.mu.Unlock()

		var err error
		if fresh {
			err = p.save(snap)
		} else {
			p.debug("save skipped (not newer than the persisted record)", snap)
		}

		p.mu.Lock()
		p.finished = seq
		var wake []*flusher
		keep := p.flushers[:0]
		for _, f := range p.flushers {
			if err != nil && f.err == nil {
				f.err = err
			}
			if f.target <= seq {
				wake = append(wake, f)
			} else {
				keep = append(keep, f)
			}
		}
		clear(p.flushers[len(keep):])
		p.flushers = keep
		p.mu.Unlock()
		for _, f := range wake {
			close(f.done)
		}
	}
}

// save runs the save pipeline for snap.
func (p *Persister) save(snap statesync.Snapshot) error {
	start := p.now()
	ro := p.rec
	ro.SavedAt = start
	rec, err := NewRecord(snap, &ro)
	saved := true
	p.mu.Lock()
	overwrite := p.overwrite
	p.mu.Unlock()
	if err == nil {
		if cs, ok := p.storage.(ConditionalSaver); ok && !overwrite {
			saved, err = cs.SaveIfNewer(p.ctx, rec)
		} else {
			err = p.storage.Save(p.ctx, rec)
		}
	}
	end := p.now()
	d := max(0, end.Sub(start))
	if err != nil {
		p.mu.Lock()
		p.stats.SaveErrorCount++
		p.mu.Unlock()
		p.report(&Error{Op: OpSave, Err: err, Snapshot: &snap})
		return err
	}
	p.mu.Lock()
	if overwrite {
		p.overwrite = false
	}
	if saved {
		p.stats.SaveCount++
		p.stats.TotalBytesSaved += int64(rec.Meta.SizeBytes)
		p.stats.TotalBytesStored += int64(len(rec.Payload))
		p.stats.LastSaveAt, p.stats.LastSaveDuration = end, d
	} else {
		p.stats.SkippedCount++
	}
	if p.persisted.newer(snap) {
		p.persisted = markerOf(snap)
	}
	p.mu.Unlock()
	if !saved {
		p.debug("save skipped (the storage holds a newer record)", snap)
		return nil
	}
	p.afterSave(rec.Meta)
	return nil
}

// HasPendingSave reports whether a snapshot waits for a debounce, throttle
// or max-wait timer.
func (p *Persister) HasPendingSave() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending != nil
}

// Flush saves the pending snapshot now and waits until every save handed
// to the writer before the call has finished; it returns the first error
// among them, or ctx.Err(). After Close it does nothing; if Close runs
// while it waits, it returns [ErrClosed].
func (p *Persister) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	if p.pending != nil {
		p.handoffLocked()
	}
	if p.finished >= p.enqueued {
		p.mu.Unlock()
		return nil
	}
	f := &flusher{target: p.enqueued, done: make(chan struct{})}
	p.flushers = append(p.flushers, f)
	p.mu.Unlock()
	select {
	case <-f.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the Persister without saving what is pending: timers are
// cancelled, the pending snapshot is dropped (and logged at debug level),
// a save in progress is cancelled through its context, and later calls of
// Apply do nothing. It waits for the writer goroutine to return. Close is
// idempotent and always returns nil; use [Persister.Shutdown] to save
// first.
func (p *Persister) Close() error {
	p.stop()
	p.wg.Wait()
	return nil
}

// stop is Close without the wait.
func (p *Persister) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	dropped := p.pending
	if dropped == nil {
		dropped = p.slot
	}
	p.pending, p.slot = nil, nil
	p.stopTimersLocked()
	wake := p.flushers
	p.flushers = nil
	p.hooks = nil
	p.mu.Unlock()

	p.cancel()
	for _, f := range wake {
		if f.err == nil {
			f.err = ErrClosed
		}
		close(f.done)
	}
	if dropped != nil {
		p.debug("closed: pending snapshot dropped without saving", *dropped)
	}
}

// Shutdown saves what is pending and waits for it ([Persister.Flush]),
// then closes the Persister and waits for its goroutines, until ctx ends:
// then the save in progress is cancelled. It returns the flush error, and
// ctx's error if ctx ended first. Shutdown is idempotent.
func (p *Persister) Shutdown(ctx context.Context) error {
	err := p.Flush(ctx)
	p.stop()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
}

// Stats returns a copy of the counters.
func (p *Persister) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// AfterSave arranges for fn to be called after each successful save, with
// the saved record's metadata, and returns a function that cancels it.
// The functions run in registration order, synchronously on the writer
// goroutine, with no lock held; they should return promptly. A panic in
// one is recovered (and logged), and the next one still runs. Close
// cancels them all. Save errors go to Options.OnError.
func (p *Persister) AfterSave(fn func(Metadata)) (stop func()) {
	h := &saveHook{fn: fn}
	p.mu.Lock()
	if !p.closed {
		p.hooks = append(p.hooks, h)
	}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, x := range p.hooks {
			if x == h {
				p.hooks = append(p.hooks[:i:i], p.hooks[i+1:]...)
				return
			}
		}
	}
}

func (p *Persister) afterSave(m Metadata) {
	p.mu.Lock()
	hs := p.hooks
	p.mu.Unlock()
	for _, h := range hs {
		func() {
			defer func() {
				if r := recover(); r != nil && p.log != nil {
					p.log.Error("AfterSave function panicked", slog.Any("panic", r))
				}
			}()
			h.fn(m)
		}()
	}
}

// report logs e and passes it to OnError.
func (p *Persister) report(e *Error) {
	if p.log != nil {
		attrs := []any{slog.String("op", string(e.Op)), slog.Any("error", e.Err)}
		if e.Snapshot != nil {
			attrs = append(attrs, slog.String("revision", e.Snapshot.Revision.String()))
		}
		p.log.Error("persistence error", attrs...)
	}
	callOnError(p.opts.OnError, e)
}

func (p *Persister) debug(msg string, s statesync.Snapshot) {
	if p.log != nil {
		p.log.Debug(msg, slog.String("revision", s.Revision.String()), slog.String("epoch", s.Epoch))
	}
}

// Restore is the start-up with a cache: it reads the saved snapshot,
// checks it as [Load] does with the Persister's options, and applies it,
// so that it is not saved again.
//
// With a consumer c (not started yet), the snapshot is offered to c with
// [statesync.Consumer.Offer]: c applies it through its applier (normally
// this Persister) and adopts its revision and epoch, so that once c is
// started (Start or Run) the source's snapshot is applied only if it is
// newer or of another epoch; if the source cannot be reached, the cached
// state stays in place. c is also remembered for [Persister.Reload]. With
// a nil c, the snapshot is applied to the inner applier.
//
// Errors are reported to OnError and returned; a program usually logs
// them and starts c anyway. The LoadInfo says what was found, migrated
// and applied.
func (p *Persister) Restore(ctx context.Context, c *statesync.Consumer) (LoadInfo, error) {
	var app statesync.Applier
	if c != nil {
		p.mu.Lock()
		p.consumer = c
		p.mu.Unlock()
		app = statesync.ApplierFunc(c.Offer)
	} else {
		app = statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
			p.applyMu.Lock()
			defer p.applyMu.Unlock()
			if err := p.inner.Apply(ctx, s); err != nil {
				return err
			}
			p.mu.Lock()
			p.applied = markerOf(s)
			p.mu.Unlock()
			return nil
		})
	}
	if p.isClosed() {
		return LoadInfo{}, ErrClosed
	}
	o := p.load
	_, info, err := load(ctx, p.storage, app, &o, p.loadHooks())
	var pe *Error
	if err != nil && errors.As(err, &pe) && info.Found && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// An expired, corrupt, foreign or unmigratable record must not keep
		// newer saves out through SaveIfNewer's revision gate.
		p.mu.Lock()
		p.overwrite = true
		p.mu.Unlock()
	}
	return info, err
}

// loadHooks mark a record that is about to be applied as persisted: it is
// in the storage already and must not be saved again.
func (p *Persister) loadHooks() *loadHooks {
	return &loadHooks{
		beforeApply: func(s statesync.Snapshot, m Metadata) {
			p.mu.Lock()
			if p.persisted.newer(s) {
				p.persisted = markerOf(s)
			}
			p.mu.Unlock()
		},
	}
}

// Reload reads the record that another process sharing the storage saved
// and applies it if it passes every load check and is newer than what is
// applied: through the consumer given to [Persister.Restore], whose
// revision gate decides, or else to the inner applier, gated against the
// last snapshot applied through the Persister. The record is neither saved
// again nor written back after a migration. If the storage holds no
// record (another process cleared it), Reload drops the pending save, as
// [Persister.Clear] does. Errors are reported to OnError with [OpReload]
// and returned. Package persist/procsync calls Reload when another process
// announces a save or a clear.
func (p *Persister) Reload(ctx context.Context) error {
	if p.isClosed() {
		return ErrClosed
	}
	p.mu.Lock()
	c := p.consumer
	p.mu.Unlock()
	var app statesync.Applier
	if c != nil {
		app = statesync.ApplierFunc(c.Offer)
	} else {
		app = statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
			p.applyMu.Lock()
			defer p.applyMu.Unlock()
			p.mu.Lock()
			fresh := p.applied.newer(s) && !p.closed
			p.mu.Unlock()
			if !fresh {
				return nil
			}
			if err := callApply(ctx, p.inner, s); err != nil {
				return err
			}
			p.mu.Lock()
			p.applied = markerOf(s)
			p.mu.Unlock()
			return nil
		})
	}
	o := p.load
	o.NoWriteBack = true // never rewrite another process's record
	o.OnError = func(e *Error) {
		e.Err = fmt.Errorf("%s: %w", e.Op, e.Err)
		e.Op = OpReload
		p.report(e)
	}
	_, info, err := load(ctx, p.storage, app, &o, p.loadHooks())
	if err == nil && !info.Found {
		p.forget()
	}
	return err
}

// forget drops the pending save and the persisted position.
func (p *Persister) forget() {
	p.mu.Lock()
	p.pending = nil
	p.stopTimersLocked()
	p.persisted = marker{}
	p.mu.Unlock()
}

// Clear removes the saved record if the storage is a [Clearer] and drops
// the pending save. A clear error is reported and returned. (To tell other
// processes, clear through package persist/procsync.)
func (p *Persister) Clear(ctx context.Context) error {
	if c, ok := p.storage.(Clearer); ok {
		if err := c.Clear(ctx); err != nil {
			e := &Error{Op: OpClear, Err: err}
			p.report(e)
			return e
		}
	}
	p.forget()
	return nil
}
