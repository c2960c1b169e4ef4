package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
)

// Options configures a [Persister]. The zero value (or nil) gives the
// defaults of B-DEF-04: schema version 1, one immediate save per apply, no
// TTL, no compression, no hash, no cross-process updates.
type Options struct {
	// Topic, if set, is recorded in each record, and a load rejects records
	// of another topic with [ErrForeign].
	Topic string
	// SchemaVersion is the version of the data's schema; 0 means
	// Migrations.Current() if Migrations is set, else 1. Loads never apply
	// data of another version (see [LoadOptions.SchemaVersion]).
	SchemaVersion int

	// Debounce, if positive, saves only the latest snapshot once no apply
	// has come for that long (B-PSAVE-05).
	Debounce time.Duration
	// Throttle, if positive, starts at most one save per window: an apply
	// within Throttle of the last save's start is counted in
	// Stats.ThrottledCount and saved after Debounce if set, otherwise at
	// the end of the window (B-PSAVE-06).
	Throttle time.Duration
	// MaxWait, if positive, bounds how long a snapshot waits for a
	// debounce or throttle timer: it is saved at the latest MaxWait after
	// the first unsaved apply (B-PSAVE-07).
	MaxWait time.Duration
	// Leading saves at once the first apply after a quiet period (no save
	// started within max(Debounce, Throttle)), then debounces
	// (B-PSAVE-08).
	Leading bool

	// TTL is recorded in each record: a load after TTL rejects it
	// (B-PMETA-06). 0 means no TTL.
	TTL time.Duration
	// Compressor, if set, compresses payloads (B-PMETA-03).
	Compressor Compressor
	// Hash records the SHA-256 of each payload (B-PMETA-10).
	Hash bool

	// Migrations, Validator, IgnoreTTL, MaxAge, VerifyHash, Compressors,
	// NoWriteBack and LegacyVersion are used by loads, as in
	// [LoadOptions]. Compressor is known to loads without being listed.
	Migrations    *Migrations
	Validator     func(data json.RawMessage) error
	IgnoreTTL     bool
	MaxAge        time.Duration
	VerifyHash    bool
	Compressors   []Compressor
	NoWriteBack   bool
	LegacyVersion int

	// Bus, if set, carries cross-process messages on Channel (required
	// with Bus; see [ChannelName]): a notice after each save, and the
	// notices of other processes sharing the storage (B-XTAB).
	Bus     Bus
	Channel string
	// NoReceive ignores every incoming message (B-XTAB-07).
	NoReceive bool
	// NoBroadcast sends no notice after saves (B-XTAB-08).
	NoBroadcast bool
	// AnswerSyncRequests answers another process's request-sync by
	// sending a notice of the last saved snapshot (B-XTAB-15).
	AnswerSyncRequests bool
	// OnClear, if set, is called when another process clears the storage,
	// after the pending save is dropped and EventCleared emitted.
	OnClear func()

	// OnError is called with each save, load, migrate, clear and
	// cross-process error, on the goroutine that met it and with no lock
	// held. A panic in it is recovered (B-PSAVE-19).
	OnError func(*Error)
	// Logger receives debug records (dropped snapshots, skipped saves) and
	// errors. Nil discards them.
	Logger *slog.Logger
	// Now is the clock of saved times, stats and TTL checks; nil means
	// time.Now (B-PSTAT-06).
	Now func() time.Time
}

// RecommendedOptions returns the options of the TypeScript
// "persistence with defaults" helper: debounce 100 ms and max wait 2 s
// (B-BOOT-05, B-DEF-05). Cross-process updates stay off until Bus and
// Channel are set.
func RecommendedOptions() Options {
	return Options{Debounce: 100 * time.Millisecond, MaxWait: 2 * time.Second}
}

// ChannelName returns the conventional cross-process channel of a topic,
// "state-sync:<topic>" (B-BOOT-05).
func ChannelName(topic string) string { return "state-sync:" + topic }

// Stats are a Persister's counters (B-PSTAT). The zero value is the
// initial state.
type Stats struct {
	// SaveCount and SaveErrorCount count finished saves.
	SaveCount, SaveErrorCount int64
	// TotalBytesSaved adds up the JSON size of saved snapshots;
	// TotalBytesStored the payload size after compression.
	TotalBytesSaved, TotalBytesStored int64
	// HasSaved reports whether a save succeeded; LastSaveAt and
	// LastSaveDuration are then its completion time and duration.
	HasSaved         bool
	LastSaveAt       time.Time
	LastSaveDuration time.Duration
	// ThrottledCount counts applies that came within the throttle window.
	ThrottledCount int64
	// SkippedCount counts snapshots not written because the last
	// persisted record (this process's or, with a ConditionalSaver,
	// another's) was not older.
	SkippedCount int64
}

// EventKind names a Persister event (B-PEVT-01).
type EventKind int

// The events.
const (
	// EventSaveStart: a save begins (Snapshot).
	EventSaveStart EventKind = iota + 1
	// EventSaveComplete: a save succeeded (Snapshot, Duration).
	EventSaveComplete
	// EventSaveError: a save failed (Snapshot, Err).
	EventSaveError
	// EventLoadComplete: a load finished (Snapshot and Found, Duration);
	// Found is false if nothing was applied.
	EventLoadComplete
	// EventExpired: a load found an expired record (Snapshot with revision
	// and epoch only, Age).
	EventExpired
	// EventMigrated: a load migrated data (Migration).
	EventMigrated
	// EventCleared: the storage was cleared, here or by another process.
	EventCleared
)

func (k EventKind) String() string {
	switch k {
	case EventSaveStart:
		return "saveStart"
	case EventSaveComplete:
		return "saveComplete"
	case EventSaveError:
		return "saveError"
	case EventLoadComplete:
		return "loadComplete"
	case EventExpired:
		return "expired"
	case EventMigrated:
		return "migrated"
	case EventCleared:
		return "cleared"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// An Event is passed to listeners registered with [Persister.On].
type Event struct {
	Kind      EventKind
	Snapshot  statesync.Snapshot
	Found     bool
	Duration  time.Duration
	Err       error
	Age       time.Duration
	Migration MigrationResult
}

type listener struct{ fn func(Event) }

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
// inner applier and then saves it to a [Storage] in the background
// (B-PSAVE-01). It also loads the saved snapshot back ([Persister.Load],
// [Persister.Hydrate]), clears it, reports statistics and events, and
// exchanges notices with other processes sharing the storage.
//
// # Saving
//
// Saves never delay or fail Apply (B-PSAVE-03, B-PSAVE-04). One writer
// goroutine, started when there is something to write and gone when
// there is not, writes in order; a snapshot not newer than the last
// persisted one is skipped, and a newer pending snapshot replaces an
// older one that has not started (B-PSAVE-09, B-PSAVE-15).
//
// # Concurrency
//
// All methods are safe for concurrent use. Calls of the inner applier are
// serialised by a mutex used for nothing else: the inner applier must not
// call Apply of its own Persister. No other lock is held while user code
// runs (inner applier, storage, listeners, OnError, migrations). Event
// listeners run synchronously on the writer or loading goroutine and
// should return promptly.
type Persister struct {
	storage Storage
	inner   statesync.Applier
	opts    Options
	load    LoadOptions
	rec     RecordOptions
	log     *slog.Logger
	tabID   string

	ctx    context.Context // cancelled by Dispose
	cancel context.CancelFunc
	wg     sync.WaitGroup // writer and receiver goroutines

	applyMu sync.Mutex // serialises calls of inner

	mu            sync.Mutex // protects the fields below
	disposed      bool
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
	listeners     map[EventKind][]*listener
	unsubscribe   func()
	recv          receiver
	xt            *CrossTab // nil without Bus
	consumer      *statesync.Consumer
}

var _ statesync.Applier = (*Persister)(nil)

// New returns a Persister that applies to inner and saves to storage.
// It returns an error for a nil storage or inner applier, negative
// durations, a Bus without Channel, or a SchemaVersion that differs from
// Migrations.Current(). With a Bus, it subscribes to Channel at once.
func New(storage Storage, inner statesync.Applier, opts *Options) (*Persister, error) {
	if storage == nil || inner == nil {
		return nil, errors.New("persist: New needs a storage and an inner applier")
	}
	p := &Persister{storage: storage, inner: inner, listeners: map[EventKind][]*listener{}}
	if opts != nil {
		p.opts = *opts
	}
	o := &p.opts
	if o.Debounce < 0 || o.Throttle < 0 || o.MaxWait < 0 || o.TTL < 0 || o.MaxAge < 0 || o.SchemaVersion < 0 {
		return nil, errors.New("persist: negative duration or schema version in Options")
	}
	if o.Migrations != nil {
		if o.SchemaVersion == 0 {
			o.SchemaVersion = o.Migrations.Current()
		} else if o.SchemaVersion != o.Migrations.Current() {
			return nil, fmt.Errorf("persist: SchemaVersion %d differs from Migrations.Current() %d", o.SchemaVersion, o.Migrations.Current())
		}
	}
	if o.SchemaVersion == 0 {
		o.SchemaVersion = 1
	}
	if o.Bus != nil && o.Channel == "" {
		return nil, errors.New("persist: Options.Bus needs a Channel (see ChannelName)")
	}
	if o.Logger != nil {
		p.log = o.Logger.With(slog.String("component", "statesync/persist"))
		if o.Topic != "" {
			p.log = p.log.With(slog.String("topic", o.Topic))
		}
	}
	comps := append([]Compressor(nil), o.Compressors...)
	if o.Compressor != nil {
		comps = append(comps, o.Compressor)
	}
	if _, err := compressors(comps...); err != nil {
		return nil, err
	}
	p.rec = RecordOptions{SchemaVersion: o.SchemaVersion, Compressor: o.Compressor, Hash: o.Hash, TTL: o.TTL, Topic: o.Topic}
	p.load = LoadOptions{
		Migrations: o.Migrations, SchemaVersion: o.SchemaVersion, LegacyVersion: o.LegacyVersion,
		Validator: o.Validator, IgnoreTTL: o.IgnoreTTL, MaxAge: o.MaxAge, VerifyHash: o.VerifyHash,
		Compressors: comps, NoWriteBack: o.NoWriteBack, Topic: o.Topic, Now: p.now,
		OnError: p.report,
	}
	p.tabID = newTabID()
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if o.Bus != nil {
		p.subscribe()
	}
	return p, nil
}

func (p *Persister) now() time.Time {
	if p.opts.Now != nil {
		return p.opts.Now()
	}
	return time.Now()
}

// Storage returns the Persister's storage.
func (p *Persister) Storage() Storage { return p.storage }

// Apply applies s to the inner applier and, if that succeeds, schedules a
// save of s. The inner applier's error is returned and nothing is saved
// (B-PSAVE-02); save errors are never returned (B-PSAVE-03). After
// Dispose, Apply does nothing (B-PSAVE-13).
func (p *Persister) Apply(ctx context.Context, s statesync.Snapshot) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if p.isDisposed() {
		return nil
	}
	if err := callApply(ctx, p.inner, s); err != nil {
		return err
	}
	p.mu.Lock()
	p.applied = markerOf(s)
	if !p.disposed {
		p.scheduleLocked(s)
	}
	p.mu.Unlock()
	return nil
}

func (p *Persister) isDisposed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.disposed
}

// scheduleLocked decides when s is saved (B-PSAVE-04..09).
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
	if p.disposed || *cur != gen || p.pending == nil {
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
// needed. Any save clears both timers (B-PSAVE-07).
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
		if p.slot == nil || p.disposed {
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

// save runs the save pipeline for snap (B-PSAVE-16..18).
func (p *Persister) save(snap statesync.Snapshot) error {
	p.emit(Event{Kind: EventSaveStart, Snapshot: snap})
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
		p.emit(Event{Kind: EventSaveError, Snapshot: snap, Err: err})
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
		p.stats.HasSaved, p.stats.LastSaveAt, p.stats.LastSaveDuration = true, end, d
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
	p.emit(Event{Kind: EventSaveComplete, Snapshot: snap, Duration: d})
	p.broadcastSaved(snap)
	return nil
}

// HasPendingSave reports whether a snapshot waits for a debounce, throttle
// or max-wait timer (B-PSAVE-10).
func (p *Persister) HasPendingSave() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending != nil
}

// Flush saves the pending snapshot now and waits until every save handed
// to the writer before the call has finished; it returns the first error
// among them (B-PSAVE-11, B-PSAVE-12), or ctx.Err(). After Dispose it does
// nothing; if Dispose runs while it waits, it returns [ErrClosed].
func (p *Persister) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.disposed {
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

// Dispose stops the Persister without saving what is pending: timers are
// cancelled, the pending snapshot is dropped (and logged at debug level),
// the cross-process subscription is closed, listeners are removed, and
// later calls of Apply do nothing (B-PSAVE-13, B-PSAVE-14). A save in
// progress is cancelled through its context. Dispose is idempotent and
// does not wait; use [Persister.Close] to save first and wait.
func (p *Persister) Dispose() {
	p.mu.Lock()
	if p.disposed {
		p.mu.Unlock()
		return
	}
	p.disposed = true
	dropped := p.pending
	if dropped == nil {
		dropped = p.slot
	}
	p.pending, p.slot = nil, nil
	p.stopTimersLocked()
	wake := p.flushers
	p.flushers = nil
	p.listeners = map[EventKind][]*listener{}
	unsub := p.unsubscribe
	p.unsubscribe = nil
	p.mu.Unlock()

	p.cancel()
	if unsub != nil {
		unsub()
	}
	p.recv.stop()
	for _, f := range wake {
		if f.err == nil {
			f.err = ErrClosed
		}
		close(f.done)
	}
	if dropped != nil {
		p.debug("disposed: pending snapshot dropped without saving", *dropped)
	}
}

// Close saves what is pending and waits for it (Flush), then disposes the
// Persister and waits for its goroutines, until ctx ends. It returns the
// flush error. Close is idempotent (B-PSAVE-14).
func (p *Persister) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.Dispose()
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

// Stats returns a copy of the counters (B-PSTAT-05).
func (p *Persister) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// On registers fn for events of kind and returns a function that removes
// it. Listeners of a kind are called in registration order, synchronously,
// with no lock held; a panic in one is recovered and the next one still
// runs (B-PEVT-03..05, B-PEVT-08).
func (p *Persister) On(kind EventKind, fn func(Event)) (off func()) {
	l := &listener{fn: fn}
	p.mu.Lock()
	if !p.disposed {
		p.listeners[kind] = append(p.listeners[kind], l)
	}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		ls := p.listeners[kind]
		for i, x := range ls {
			if x == l {
				p.listeners[kind] = append(ls[:i:i], ls[i+1:]...)
				return
			}
		}
	}
}

func (p *Persister) emit(e Event) {
	p.mu.Lock()
	ls := p.listeners[e.Kind]
	p.mu.Unlock()
	for _, l := range ls {
		func() {
			defer func() {
				if r := recover(); r != nil && p.log != nil {
					p.log.Error("event listener panicked", slog.String("event", e.Kind.String()), slog.Any("panic", r))
				}
			}()
			l.fn(e)
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

// Load reads the saved snapshot, checks it as [Load] does with the
// Persister's options, and applies it to the inner applier, so that it is
// not saved again (B-BOOT-04). It emits EventExpired, EventMigrated and
// EventLoadComplete (B-PEVT-07).
func (p *Persister) Load(ctx context.Context) (statesync.Snapshot, LoadInfo, error) {
	inner := statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
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
	return p.loadInto(ctx, inner)
}

// Hydrate loads the saved snapshot, as [Persister.Load] does, and offers
// it to c with [statesync.Consumer.Offer] before c starts: c applies it
// through its applier and adopts its revision and epoch, so that the
// server's snapshot is applied only if newer (B-BOOT-01, B-BOOT-03). If c's
// applier is this Persister, the snapshot reaches the inner applier and is
// not saved again (B-BOOT-04).
func (p *Persister) Hydrate(ctx context.Context, c *statesync.Consumer) (statesync.Snapshot, LoadInfo, error) {
	return p.loadInto(ctx, statesync.ApplierFunc(c.Offer))
}

func (p *Persister) loadInto(ctx context.Context, app statesync.Applier) (statesync.Snapshot, LoadInfo, error) {
	if p.isDisposed() {
		return statesync.Snapshot{}, LoadInfo{}, ErrClosed
	}
	o := p.load
	h := &loadHooks{
		expired: func(s statesync.Snapshot, age time.Duration) {
			p.emit(Event{Kind: EventExpired, Snapshot: s, Age: age})
		},
		migrated: func(r MigrationResult) { p.emit(Event{Kind: EventMigrated, Migration: r}) },
		beforeApply: func(s statesync.Snapshot, m Metadata) {
			// The record is in the storage: applying it must not save it
			// again.
			p.mu.Lock()
			if p.persisted.newer(s) {
				p.persisted = markerOf(s)
			}
			p.mu.Unlock()
		},
	}
	snap, info, err := load(ctx, p.storage, app, &o, h)
	var pe *Error
	if err != nil && errors.As(err, &pe) && info.Found && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// An expired, corrupt, foreign or unmigratable record must not keep
		// newer saves out through SaveIfNewer's revision gate.
		p.mu.Lock()
		p.overwrite = true
		p.mu.Unlock()
	}
	ev := Event{Kind: EventLoadComplete, Duration: info.Duration}
	if err == nil && info.Applied {
		ev.Snapshot, ev.Found = snap, true
	}
	p.emit(ev)
	return snap, info, err
}

// Clear removes the saved record if the storage is a [Clearer], drops the
// pending save, emits EventCleared and tells other processes
// (B-BOOT-06, B-PEVT-07). A clear error is reported and returned.
func (p *Persister) Clear(ctx context.Context) error {
	if c, ok := p.storage.(Clearer); ok {
		if err := c.Clear(ctx); err != nil {
			e := &Error{Op: OpClear, Err: err}
			p.report(e)
			return e
		}
	}
	p.mu.Lock()
	p.pending = nil
	p.stopTimersLocked()
	p.persisted = marker{}
	p.mu.Unlock()
	p.emit(Event{Kind: EventCleared})
	p.notifyClear(ctx)
	return nil
}

// StartWithCache is the start-up of a consumer with a cache (B-BOOT-01):
// it hydrates c from p's storage ([Persister.Hydrate]), then starts c.
// The cached snapshot is applied and becomes c's revision and epoch before
// c subscribes and refreshes; the source's snapshot is then applied only if
// it is newer or of another epoch. Load errors are reported to p's
// OnError and do not stop the start. It returns what the load found and
// Start's error: when the source cannot be reached, the cached state stays
// applied (B-BOOT-07) and c may be started again later.
func StartWithCache(ctx context.Context, c *statesync.Consumer, p *Persister) (LoadInfo, error) {
	p.attach(c)
	_, info, _ := p.Hydrate(ctx, c)
	return info, c.Start(ctx)
}
