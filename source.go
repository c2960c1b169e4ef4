package statesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// SourceOptions configures a [Source].
type SourceOptions struct {
	// MaxUpdateAttempts bounds the compare-and-set attempts of
	// [Source.Update] under contention. 0 means 64.
	MaxUpdateAttempts int
}

// A Source is the source of truth of a set of topics, kept in a [Store].
// Writes bump a topic's revision atomically, with optional compare-and-set;
// after each committed write (its own, or, with a shared store, another
// process's) the Source emits an [Invalidation] to its watchers. It is also
// the [Provider] of its topics, serving them from memory when it can: it
// keeps the newest known revision of each topic written or read through it.
//
// All methods are safe for concurrent use.
type Source struct {
	store Store
	opts  SourceOptions

	stopWatch func()

	mu       sync.Mutex // protects watchers and cache writes
	watchers atomic.Pointer[[]*sourceWatcher]
	cache    sync.Map // topic -> *topicState (source_cache.go)
	closed   atomic.Bool

	resyncMu                   sync.Mutex // protects the three flags below
	resyncAgain, resyncRunning bool
	resyncClosed               bool
	resyncWG                   sync.WaitGroup
	resyncCtx                  context.Context // canceled by Close
	resyncCancel               context.CancelFunc

	storeReads, resyncs, resyncChanged atomic.Uint64
}

// SourceStats counts what a [Source] did (see [Source.Stats]).
type SourceStats struct {
	// StoreReads counts the store reads made to answer Snapshot calls:
	// with the single flight, one per topic-revision however many callers
	// wait for it, plus those asked for by minimum revisions that memory
	// does not reach (compare-and-set reads are not counted).
	StoreReads uint64
	// Resyncs counts the resyncs the store's feed asked for
	// (Record.Resync), and ResyncChanged the topics they found changed.
	Resyncs, ResyncChanged uint64
}

// Stats returns the source's counters.
func (s *Source) Stats() SourceStats {
	return SourceStats{StoreReads: s.storeReads.Load(), Resyncs: s.resyncs.Load(), ResyncChanged: s.resyncChanged.Load()}
}

type sourceWatcher struct{ fn func(Invalidation) }

// cacheEntry holds one revision of a topic.
type cacheEntry struct {
	rec Record
}

var _ SharedProvider = (*Source)(nil)

// NewSource returns a Source over store and starts following the store's
// change feed. Close stops it.
func NewSource(store Store, opts *SourceOptions) (*Source, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil Store", ErrMissingDependency)
	}
	s := &Source{store: store}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.MaxUpdateAttempts <= 0 {
		s.opts.MaxUpdateAttempts = 64
	}
	s.watchers.Store(new([]*sourceWatcher))
	s.resyncCtx, s.resyncCancel = context.WithCancel(context.Background())
	stop, err := store.Watch(context.Background(), s.changed)
	if err != nil {
		s.resyncCancel()
		return nil, fmt.Errorf("statesync: watching store: %w", err)
	}
	s.stopWatch = stop
	return s, nil
}

// Close stops following the store, and so emitting invalidations, and
// makes later reads and writes return [ErrClosed] (PeekSnapshot then holds
// nothing). It does not close the store. It is idempotent.
func (s *Source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopWatch()
	s.resyncMu.Lock()
	s.resyncClosed = true
	s.resyncMu.Unlock()
	s.resyncCancel()
	s.resyncWG.Wait()
	return nil
}

// Store returns the source's store.
func (s *Source) Store() Store { return s.store }

// changed is the store's change feed: remember the revision, then tell the
// watchers, so the invalidation follows the commit.
func (s *Source) changed(rec Record) {
	if rec.Resync {
		s.resyncRequested()
		return
	}
	s.observe(rec) // emitted even if not news: watchers are immune
	s.emit(rec)
}

// emit tells the watchers that rec was committed.
func (s *Source) emit(rec Record) {
	inv := Invalidation{Topic: rec.Topic, Revision: rec.Revision, Epoch: rec.Epoch, SourceID: rec.SourceID}
	if !rec.Time.IsZero() {
		inv.TimestampMs = rec.Time.UnixMilli()
	}
	for _, w := range *s.watchers.Load() {
		w.fn(inv)
	}
}

// Watch calls fn with every invalidation the source emits, until stop is
// called or the source is closed. fn runs synchronously, after the commit,
// on the writer's goroutine (or the store's feed goroutine), which waits
// for it: it must not block. httpsync.Handler only records the revision and
// wakes its own goroutines; memsync.Bus calls its handlers there, so its
// consumers with [ConsumerOptions.InlineRefresh] apply, in fn, the
// snapshots the Source holds in memory.
//
// Watch has the shape of [Store.Watch]. It does no I/O and does not block:
// it fails only with [ErrClosed] if the source is closed (it would emit
// nothing more) and with ctx.Err() if ctx is already done. ctx does not
// end the watch; stop does.
func (s *Source) Watch(ctx context.Context, fn func(Invalidation)) (stop func(), err error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &sourceWatcher{fn: fn}
	s.mu.Lock()
	list := append(slices.Clone(*s.watchers.Load()), w)
	s.watchers.Store(&list)
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			list := slices.DeleteFunc(slices.Clone(*s.watchers.Load()), func(x *sourceWatcher) bool { return x == w })
			s.watchers.Store(&list)
			s.mu.Unlock()
		})
	}, nil
}

// Snapshot implements [Provider]: it returns the latest snapshot of topic,
// from memory if the source holds it, else from the store. A topic never
// written is at revision 0 with null data. The Data is shared: do not
// modify it.
//
// If ctx carries a minimum revision ([WithMinRevision]) that memory does
// not reach, the store is read, so a client that learned of a revision
// from another daemon on the same store gets at least that one if the
// store has it. Concurrent calls that need the store share one read.
func (s *Source) Snapshot(ctx context.Context, topic string) (Snapshot, error) {
	if s.closed.Load() {
		return Snapshot{}, ErrClosed
	}
	if err := CheckTopic(topic); err != nil {
		return Snapshot{}, err
	}
	rec, err := s.snapshotEntry(ctx, topic, minRevisionOf(ctx))
	if err != nil {
		return Snapshot{}, err
	}
	return rec.Snapshot(), nil
}

// SharedSnapshots marks a Source as a [SharedProvider]: its snapshots are
// the same for every reader, so its consumers of one topic share fetches.
func (s *Source) SharedSnapshots() {}

// PeekSnapshot implements [SnapshotPeeker]: the latest snapshot of topic
// if the source holds it in memory (a topic written, or read at a revision
// above 0, since the source was made, unless a change feed without data
// has since reported a newer revision, or the feed asked for a resync),
// without reading the store.
func (s *Source) PeekSnapshot(topic string) (Snapshot, bool) {
	if s.closed.Load() {
		return Snapshot{}, false
	}
	if ts := s.state(topic, false); ts != nil {
		if e := ts.entry.Load(); e != nil {
			return e.rec.Snapshot(), true
		}
	}
	return Snapshot{}, false
}

// TopicInfo describes a topic of a [Source].
type TopicInfo struct {
	Topic    string   `json:"topic"`
	Revision Revision `json:"revision"`
	Epoch    string   `json:"epoch,omitempty"`
}

// List returns the written topics, sorted by name.
func (s *Source) List(ctx context.Context) ([]TopicInfo, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	recs, err := s.store.List(ctx)
	if err != nil {
		return nil, err
	}
	return topicInfos(recs, ""), nil
}

// A PrefixLister is a [Store] that can list the topics starting with a
// prefix without reading the others (a range scan of an ordered store).
// [Source.ListPrefix] uses it when the store has it; it is optional.
type PrefixLister interface {
	// ListPrefix returns the written topics whose names start with
	// prefix, as List returns them: sorted by topic, without Data.
	ListPrefix(ctx context.Context, prefix string) ([]Record, error)
}

// ListPrefix returns the written topics whose names start with prefix,
// sorted by name. It reads only those topics if the store is a
// [PrefixLister], else it filters the whole list.
func (s *Source) ListPrefix(ctx context.Context, prefix string) ([]TopicInfo, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var recs []Record
	var err error
	if pl, ok := s.store.(PrefixLister); ok {
		recs, err = pl.ListPrefix(ctx, prefix)
	} else {
		recs, err = s.store.List(ctx)
	}
	if err != nil {
		return nil, err
	}
	return topicInfos(recs, prefix), nil
}

// topicInfos returns the TopicInfo of each record whose topic starts with
// prefix.
func topicInfos(recs []Record, prefix string) []TopicInfo {
	out := make([]TopicInfo, 0, len(recs))
	for _, r := range recs {
		if strings.HasPrefix(r.Topic, prefix) {
			out = append(out, TopicInfo{Topic: r.Topic, Revision: r.Revision, Epoch: r.Epoch})
		}
	}
	return out
}

// Put sets the data of topic and returns the new snapshot. data must be
// valid JSON in UTF-8 (nil means null), else the error wraps
// [ErrInvalidPayload].
func (s *Source) Put(ctx context.Context, topic string, data json.RawMessage) (Snapshot, error) {
	return s.write(ctx, Write{Topic: topic, Data: data})
}

// PutIf sets the data of topic only if its revision is rev (0 for a
// topic never written); otherwise it returns a *[ConflictError] with the
// current revision and writes nothing.
func (s *Source) PutIf(ctx context.Context, topic string, data json.RawMessage, rev Revision) (Snapshot, error) {
	return s.write(ctx, Write{Topic: topic, Data: data, IfRevision: rev, Conditional: true})
}

// Delete sets the data of topic to null at a new revision: revisions never
// go back, so consumers see the deletion like any other change.
func (s *Source) Delete(ctx context.Context, topic string) (Snapshot, error) {
	return s.write(ctx, Write{Topic: topic})
}

// Update reads topic, calls fn with its snapshot and writes what fn returns
// if the topic has not changed meanwhile, retrying with the new snapshot if
// it has (compare-and-set), up to [SourceOptions.MaxUpdateAttempts] times,
// after which the error wraps [ErrConflict]. An error from fn aborts the
// update and is returned as is; fn may run several times and must not have
// side effects.
func (s *Source) Update(ctx context.Context, topic string, fn func(cur Snapshot) (json.RawMessage, error)) (Snapshot, error) {
	for range s.opts.MaxUpdateAttempts {
		rec, err := s.read(ctx, topic)
		if err != nil {
			return Snapshot{}, err
		}
		data, err := fn(rec.Snapshot())
		if err != nil {
			return Snapshot{}, err
		}
		snap, err := s.write(ctx, Write{Topic: topic, Data: data, IfRevision: rec.Revision, Conditional: true})
		if !errors.Is(err, ErrConflict) {
			return snap, err
		}
	}
	return Snapshot{}, fmt.Errorf("statesync: update of %q: %w after %d attempts", topic, ErrConflict, s.opts.MaxUpdateAttempts)
}

// read returns the store's record, bypassing the cache (for compare-and-set).
func (s *Source) read(ctx context.Context, topic string) (Record, error) {
	if s.closed.Load() {
		return Record{}, ErrClosed
	}
	if err := CheckTopic(topic); err != nil {
		return Record{}, err
	}
	return s.store.Get(ctx, topic)
}

// WithSourceID returns a context that makes the writes of a [Source] done
// with it carry id as their invalidations' SourceID.
func WithSourceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, sourceIDKey{}, id)
}

type sourceIDKey struct{}

func (s *Source) write(ctx context.Context, w Write) (Snapshot, error) {
	if s.closed.Load() {
		return Snapshot{}, ErrClosed
	}
	if err := CheckTopic(w.Topic); err != nil {
		return Snapshot{}, err
	}
	if w.Data != nil {
		if !json.Valid(w.Data) {
			return Snapshot{}, fmt.Errorf("%w: data for topic %q is not valid JSON", ErrInvalidPayload, w.Topic)
		}
		// JSON is UTF-8 (RFC 8259), which json.Valid does not check inside
		// strings; outside them JSON is ASCII, so the whole text will do.
		if !utf8.Valid(w.Data) {
			return Snapshot{}, fmt.Errorf("%w: data for topic %q is not valid UTF-8", ErrInvalidPayload, w.Topic)
		}
	}
	if id, ok := ctx.Value(sourceIDKey{}).(string); ok {
		w.SourceID = id
	}
	rec, err := s.store.Write(ctx, w)
	if err != nil {
		return Snapshot{}, err
	}
	s.remember(rec) // read-your-writes, even if the feed lags
	return rec.Snapshot(), nil
}
