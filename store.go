package statesync

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A Record is the committed state of a topic in a [Store].
type Record struct {
	Topic    string
	Revision Revision
	// Epoch is the store's epoch (see [Snapshot]).
	Epoch string
	// Data is the raw JSON state; stores return "null" (never nil) for a
	// topic never written or deleted, and nil only from List and with
	// DataOmitted. Stores never share a Record's Data with their callers'
	// buffers; readers must not modify it.
	Data json.RawMessage
	// SourceID names the writer of this revision, if it said.
	SourceID string
	// Time is when the revision was committed (zero if unknown).
	Time time.Time
	// DataOmitted is set on records passed to a Watch function whose store
	// does not carry data in its change feed; Data is then nil and means
	// nothing.
	DataOmitted bool
	// Resync is set only on records passed to a Watch function, and then
	// every other field is zero: the store's change feed may have missed
	// changes (it reconnected, stayed silent too long, or the store lost
	// its history). A watcher must re-read what it relies on; a [Source]
	// lists the store and emits an invalidation for every topic whose
	// revision or epoch differs from what it knew.
	Resync bool
}

// Snapshot returns the snapshot form of r.
func (r Record) Snapshot() Snapshot {
	return Snapshot{Revision: r.Revision, Epoch: r.Epoch, Data: r.Data}
}

// A Write is one atomic change to a [Store].
type Write struct {
	Topic string
	// Data is the new state as JSON; nil stands for null (a deletion).
	Data json.RawMessage
	// IfRevision, when Conditional is set, is the revision the topic must
	// have for the write to happen (0 for a topic never written).
	IfRevision  Revision
	Conditional bool
	// SourceID optionally names the writer; it is carried to invalidations.
	SourceID string
}

// A Store holds the committed state of topics: the source of truth behind a
// [Source]. Implementations are safe for concurrent use.
//
// Every Write that succeeds gives the topic a revision greater than any it
// had, and is reported to every watcher after it is committed. Stores shared
// by several processes (a database, a KV service) also report the writes of
// the other processes, which is how several daemons keep their streams in
// step. The conformance suite statesynctest.TestStore checks all of this.
// A Store may also be a [PrefixLister], which lists a range of topics
// without reading the others.
type Store interface {
	// Get returns the record of topic. A topic never written has revision
	// 0, Data "null" and the store's epoch; that is not an error.
	Get(ctx context.Context, topic string) (Record, error)
	// Write commits w and returns the new record. If w.Conditional is set
	// and the topic's revision is not w.IfRevision, nothing is written and
	// the error is a *ConflictError (wrapping ErrConflict).
	Write(ctx context.Context, w Write) (Record, error)
	// List returns every written topic with its revision and epoch, sorted
	// by topic, without Data.
	List(ctx context.Context) ([]Record, error)
	// Watch calls fn with each committed record (see Record.DataOmitted) until
	// stop is called; after stop returns, fn is not called again. fn must
	// not block. Records of one topic may arrive out of order under
	// concurrent writers; consumers are immune to that. A store whose feed
	// reads a log that keeps only each topic's last revision (a NATS
	// key-value bucket) may skip a revision that a later write of the same
	// topic replaced before the feed read it, and report the later one
	// (statesynctest.SupersedingStore). A store whose feed
	// can miss changes (a connection to a server) calls fn with a
	// Record.Resync record after any gap: once its feed is back (listening
	// again, so that nothing falls between), when it finds the feed silent,
	// and when it finds it lost its history (a new epoch).
	Watch(ctx context.Context, fn func(Record)) (stop func(), err error)
}

// A FeedReporter is a [Store] whose change feed runs over a connection
// that can fail (a database, a KV service): it says whether the feed is up.
// Daemons report it on /metrics and /healthz. Stores whose feed cannot
// fail (MemoryStore, a file) need not implement it.
type FeedReporter interface {
	FeedStatus() FeedStatus
}

// FeedStatus is the state of a store's change feed (see [FeedReporter]).
type FeedStatus struct {
	// Connected is whether the feed is up now.
	Connected bool
	// Since is when Connected last changed (or the feed started).
	Since time.Time
	// Reconnects counts the times the feed was lost and made again.
	Reconnects uint64
	// Resyncs counts the Resync records the store sent its watchers.
	Resyncs uint64
	// Err is why the feed is down, when it is.
	Err error
}

// MemoryStoreOptions configures a [MemoryStore].
type MemoryStoreOptions struct {
	// Epoch is the store's epoch. Empty means a new random one, which is
	// what a memory store should have: its content does not survive it.
	Epoch string
	// FirstRevision is the revision of a topic's first write. 0 means the
	// current time in microseconds since the Unix epoch, taken when the
	// store is made, so that the revisions of a restarted process are
	// higher than those it handed out before, as long as it wrote fewer than
	// one revision per microsecond of its life. This keeps clients that know
	// nothing of epochs moving forward after a restart; clients that know
	// epochs would cope anyway.
	FirstRevision Revision
	// Now returns the commit time of records. Nil means time.Now.
	Now func() time.Time
}

// A MemoryStore is a [Store] in memory. Its zero value is not usable; make
// one with [NewMemoryStore].
type MemoryStore struct {
	epoch string
	first Revision
	now   func() time.Time

	mu     sync.RWMutex // protects topics
	topics map[string]*Record

	feed   Feed
	closed atomic.Bool
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts *MemoryStoreOptions) *MemoryStore {
	var o MemoryStoreOptions
	if opts != nil {
		o = *opts
	}
	if o.Epoch == "" {
		o.Epoch = NewEpoch()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FirstRevision == 0 {
		o.FirstRevision = Revision(max(o.Now().UnixMicro(), 1))
	}
	return &MemoryStore{epoch: o.Epoch, first: o.FirstRevision, now: o.Now, topics: make(map[string]*Record)}
}

// NewEpoch returns a new random epoch: 16 URL-safe base64 characters.
func NewEpoch() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Epoch returns the store's epoch.
func (s *MemoryStore) Epoch() string { return s.epoch }

// Get implements [Store].
func (s *MemoryStore) Get(ctx context.Context, topic string) (Record, error) {
	if s.closed.Load() {
		return Record{}, ErrClosed
	}
	s.mu.RLock()
	r := s.topics[topic]
	s.mu.RUnlock()
	if r == nil {
		return Record{Topic: topic, Epoch: s.epoch, Data: null}, nil
	}
	return *r, nil
}

// Write implements [Store]. The data is copied.
func (s *MemoryStore) Write(ctx context.Context, w Write) (Record, error) {
	if s.closed.Load() {
		return Record{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	rec := &Record{Topic: w.Topic, Epoch: s.epoch, SourceID: w.SourceID, Time: s.now(), Data: null}
	if w.Data != nil && !isNull(w.Data) {
		rec.Data = slices.Clone(w.Data)
	}
	s.mu.Lock()
	cur := s.topics[w.Topic]
	var curRev Revision
	if cur != nil {
		curRev = cur.Revision
	}
	if w.Conditional && w.IfRevision != curRev {
		s.mu.Unlock()
		return Record{}, &ConflictError{Topic: w.Topic, Expected: w.IfRevision, Current: curRev, Epoch: s.epoch}
	}
	if cur == nil {
		rec.Revision = s.first
	} else {
		next, err := curRev.Next()
		if err != nil {
			s.mu.Unlock()
			return Record{}, fmt.Errorf("statesync: topic %q: %w", w.Topic, err)
		}
		rec.Revision = next
	}
	s.topics[w.Topic] = rec
	s.mu.Unlock()

	s.feed.Publish(*rec)
	return *rec, nil
}

// List implements [Store].
func (s *MemoryStore) List(ctx context.Context) ([]Record, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	s.mu.RLock()
	out := make([]Record, 0, len(s.topics))
	for _, r := range s.topics {
		c := *r
		c.Data = nil
		out = append(out, c)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Record) int {
		switch {
		case a.Topic < b.Topic:
			return -1
		case a.Topic > b.Topic:
			return 1
		}
		return 0
	})
	return out, nil
}

// Watch implements [Store]. fn is called synchronously by Write, after the
// commit and outside the store's lock, so it may read and write the store;
// it must not block. stop waits for calls of fn in progress, so it must not
// be called from fn.
func (s *MemoryStore) Watch(ctx context.Context, fn func(Record)) (func(), error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.feed.Watch(fn), nil
}

// Close makes every later call return [ErrClosed]. It is idempotent.
func (s *MemoryStore) Close() error {
	s.closed.Store(true)
	return nil
}

// A Feed is the list of functions watching a [Store]'s changes, for Store
// implementations: Watch adds one, Publish calls them all. The zero value
// is an empty Feed. It is safe for concurrent use; Publish takes no lock
// shared between watchers, so concurrent Publish calls run concurrently.
type Feed struct {
	mu       sync.Mutex                 // serialises changes to watchers
	watchers atomic.Pointer[[]*watcher] // copy-on-write; nil means none
}

type watcher struct {
	fn      func(Record)
	mu      sync.RWMutex // read-held while fn runs, so stop can wait for it
	stopped bool         // protected by mu
}

// Watch adds fn to the feed and returns a function that removes it. Once
// stop has returned, fn is not called again: stop waits for calls in
// progress, so it must not be called from fn. stop is idempotent.
func (f *Feed) Watch(fn func(Record)) (stop func()) {
	w := &watcher{fn: fn}
	f.mu.Lock()
	var list []*watcher
	if p := f.watchers.Load(); p != nil {
		list = slices.Clone(*p)
	}
	list = append(list, w)
	f.watchers.Store(&list)
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			list := slices.DeleteFunc(slices.Clone(*f.watchers.Load()), func(x *watcher) bool { return x == w })
			f.watchers.Store(&list)
			f.mu.Unlock()
			w.mu.Lock() // waits for calls of fn in progress
			w.stopped = true
			w.mu.Unlock()
		})
	}
}

// Publish calls every watcher with r, on the caller's goroutine. A panic
// in a watcher goes on to the caller; the watchers after it are not called.
func (f *Feed) Publish(r Record) {
	p := f.watchers.Load()
	if p == nil {
		return
	}
	for _, w := range *p {
		w.call(r)
	}
}

// call calls w's fn with r unless w was stopped. The read lock is released
// even if fn panics (the panic goes on to Publish's caller), so a later stop
// does not wait forever.
func (w *watcher) call(r Record) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.stopped {
		w.fn(r)
	}
}
