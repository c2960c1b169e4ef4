package statesync

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// The Source's memory of each topic.
//
// A topicState holds the newest revision of the topic the Source knows of
// (from its own writes, the store's feed, or a store read) and, when it
// has it, that revision's record (entry). A feed without data (a shared
// store's NOTIFY) announces revisions the Source has not read: the entry
// is then dropped, and the next Snapshot reads the store.
//
// Store reads are single-flighted: one read per topic at a time, joined by
// the Snapshot calls that arrive while it runs. An announcement detaches
// the read in flight (gen moves on), so a caller that arrives after the
// announcement never joins a read that began before it, and a detached
// read's result is kept only if it is at least the newest known revision.
// A caller asking for a minimum revision (WithMinRevision) that the joined
// read did not reach reads again, once: that second read began after the
// caller arrived, so it sees every write committed before the caller
// asked.
type topicState struct {
	entry atomic.Pointer[cacheEntry] // nil: no record at least as new as known

	mu     sync.Mutex // protects the fields below
	known  Record     // the newest known revision (Data unused); Revision 0: none
	told   Record     // the newest revision emitted to watchers (Data unused)
	gen    uint64     // bumped by each announcement; flights remember theirs
	seq    uint64     // flights begun
	flight *flight    // the store read in flight that callers may join, or nil
	last   *flight    // the last flight that ended without error
	dead   bool       // removed from the map: callers must look it up again
}

// A flight is one store read of a topic.
type flight struct {
	gen  uint64
	seq  uint64
	done chan struct{}
	rec  Record // set before done is closed
	err  error
}

// newerThan reports whether a is a newer revision than b: another epoch
// counts as newer (the newest news of a store that lost its history is
// that it did), except that nothing is newer than b when a says nothing.
func newerThan(a, b Record) bool {
	if b.Revision == 0 && b.Epoch == "" {
		return true
	}
	if a.Epoch != b.Epoch {
		return true
	}
	return a.Revision > b.Revision
}

// state returns the topicState of topic, making it if create is set.
func (s *Source) state(topic string, create bool) *topicState {
	if v, ok := s.cache.Load(topic); ok {
		return v.(*topicState)
	}
	if !create {
		return nil
	}
	v, _ := s.cache.LoadOrStore(topic, &topicState{})
	return v.(*topicState)
}

// lock returns the locked, live topicState of topic, made if need be.
func (s *Source) lock(topic string) *topicState {
	for {
		ts := s.state(topic, true)
		ts.mu.Lock()
		if !ts.dead {
			return ts
		}
		ts.mu.Unlock()
	}
}

// remember records rec, a committed record with its data (a write's
// result), as the topic's newest if it is not older than what the source
// knows.
func (s *Source) remember(rec Record) {
	ts := s.lock(rec.Topic)
	ts.keep(rec)
	ts.mu.Unlock()
}

// keep is remember with ts locked.
func (ts *topicState) keep(rec Record) {
	switch {
	case newerThan(rec, ts.known):
		ts.known = Record{Topic: rec.Topic, Revision: rec.Revision, Epoch: rec.Epoch}
		ts.entry.Store(&cacheEntry{rec: rec})
	case ts.entry.Load() == nil && rec.Revision == ts.known.Revision && rec.Epoch == ts.known.Epoch:
		ts.entry.Store(&cacheEntry{rec: rec})
	}
}

// observe records that the store committed rec, reported by its feed or
// found by a resync, and reports whether rec is newer than anything
// emitted for its topic, which the caller then emits. A record with data
// is kept; one without (Record.DataOmitted) that is newer than what the
// source knows drops the cached record and detaches the read in flight.
func (s *Source) observe(rec Record) (news bool) {
	ts := s.lock(rec.Topic)
	defer ts.mu.Unlock()
	if rec.DataOmitted {
		ts.bump(rec)
	} else {
		ts.keep(rec)
	}
	if !newerThan(rec, ts.told) {
		return false
	}
	ts.told = Record{Topic: rec.Topic, Revision: rec.Revision, Epoch: rec.Epoch}
	return true
}

// bump records an announced revision with ts locked (see observe).
func (ts *topicState) bump(rec Record) {
	if !newerThan(rec, ts.known) {
		return
	}
	ts.known = Record{Topic: rec.Topic, Revision: rec.Revision, Epoch: rec.Epoch}
	ts.gen++
	ts.flight = nil
	ts.entry.Store(nil)
}

// satisfies reports whether rec answers a request for at least min.
func satisfies(rec Record, min minRevision) bool {
	if min.rev == 0 {
		return true
	}
	if min.epoch != "" && min.epoch != rec.Epoch {
		return false
	}
	return rec.Revision >= min.rev
}

// snapshotEntry returns the newest record of topic: from memory if it
// holds one that answers min, else from the store, single-flighted.
func (s *Source) snapshotEntry(ctx context.Context, topic string, min minRevision) (Record, error) {
	if ts := s.state(topic, false); ts != nil {
		if e := ts.entry.Load(); e != nil && satisfies(e.rec, min) {
			return e.rec, nil
		}
	}
	var joined *flight // a flight begun before this call, that fell short of min
	for {
		ts := s.lock(topic)
		if e := ts.entry.Load(); e != nil && satisfies(e.rec, min) {
			ts.mu.Unlock()
			return e.rec, nil
		}
		if joined != nil && ts.last != nil && ts.last.seq > joined.seq {
			// A read that began after this caller arrived (when joined was
			// the flight to join) has ended: its answer is fresh enough.
			rec := ts.last.rec
			ts.mu.Unlock()
			return rec, nil
		}
		f, mine := ts.flight, false
		if f == nil {

			ts.seq++
			f, mine = &flight{gen: ts.gen, seq: ts.seq, done: make(chan struct{})}, true
			ts.flight = f
		}
		ts.mu.Unlock()
		if mine {
			s.fly(ctx, topic, f)
		} else {
			select {
			case <-f.done:
			case <-ctx.Done():
				return Record{}, ctx.Err()
			}
		}
		if f.err != nil {
			if !mine && isContextError(f.err) && ctx.Err() == nil {
				continue // the caller who began it gave up; this one has not
			}
			return Record{}, f.err
		}
		if mine || joined != nil || satisfies(f.rec, min) {
			return f.rec, nil
		}
		joined = f
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// fly reads topic from the store for f and settles the result.
func (s *Source) fly(ctx context.Context, topic string, f *flight) {
	s.storeReads.Add(1)
	func() {
		defer func() {
			if r := recover(); r != nil {
				f.err = &PanicError{Value: r}
			}
		}()
		f.rec, f.err = s.store.Get(ctx, topic)
	}()
	ts := s.lock(topic)
	if ts.flight == f {
		ts.flight = nil
	}
	if f.err == nil && (ts.last == nil || f.seq > ts.last.seq) {
		ts.last = f
	}
	if f.err == nil && f.rec.Revision > 0 &&
		(f.gen == ts.gen || f.rec.Epoch == ts.known.Epoch && f.rec.Revision >= ts.known.Revision) {
		// Nothing was announced since the read began, or the read is at
		// least the newest revision known: it may be cached.
		ts.keep(f.rec)
	}
	// A topic never written, never announced and not being read is not
	// kept, so that reading made-up names costs no memory.
	if ts.known.Revision == 0 && ts.known.Epoch == "" && ts.flight == nil && ts.entry.Load() == nil {
		ts.dead = true
		s.cache.CompareAndDelete(topic, ts)
	}
	ts.mu.Unlock()
	close(f.done)
}

// resyncRequested is the store feed's Resync record: the feed may have
// missed changes. Every cached record is dropped at once, so reads go to
// the store from now on, and a resync goroutine (one at a time; requests
// made while it runs make it run again) compares the store's list with
// what the source knows and emits an invalidation for each difference.
func (s *Source) resyncRequested() {
	s.resyncs.Add(1)
	s.cache.Range(func(_, v any) bool {
		ts := v.(*topicState)
		ts.mu.Lock()
		ts.gen++
		ts.flight = nil
		ts.entry.Store(nil)
		ts.mu.Unlock()
		return true
	})
	s.resyncMu.Lock()
	defer s.resyncMu.Unlock()
	if s.resyncClosed {
		return
	}
	s.resyncAgain = true
	if !s.resyncRunning {
		s.resyncRunning = true
		s.resyncWG.Add(1)
		go s.resyncLoop()
	}
}

func (s *Source) resyncLoop() {
	defer s.resyncWG.Done()
	for {
		s.resyncMu.Lock()
		if !s.resyncAgain || s.resyncClosed {
			s.resyncRunning = false
			s.resyncMu.Unlock()
			return
		}
		s.resyncAgain = false
		s.resyncMu.Unlock()
		// An error means the store is unreachable: its feed will
		// reconnect and ask again; until then reads go to the store,
		// which fails too.
		_ = s.resync(s.resyncCtx)
	}
}

// resync lists the store and emits an invalidation for every topic whose
// revision or epoch differs from what the source knows, and for every
// topic it did not know (a stream may follow it at revision 0).
func (s *Source) resync(ctx context.Context) error {
	recs, err := s.store.List(ctx)
	if err != nil {
		return err
	}
	listed := make(map[string]struct{}, len(recs))
	for _, r := range recs {
		listed[r.Topic] = struct{}{}
		r.DataOmitted = true // List carries no data
		if s.observe(r) {
			s.resyncChanged.Add(1)
			s.emit(r)
		}
	}
	// Topics known but no longer listed: the store lost them.
	var gone []string
	s.cache.Range(func(k, v any) bool {
		if _, ok := listed[k.(string)]; !ok {
			ts := v.(*topicState)
			ts.mu.Lock()
			told := ts.told.Revision != 0 || ts.told.Epoch != ""
			ts.mu.Unlock()
			if told {
				gone = append(gone, k.(string))
			}
		}
		return true
	})
	for _, topic := range gone {
		r, err := s.store.Get(ctx, topic)
		if err != nil {
			return err
		}
		r.Data, r.DataOmitted = nil, true
		if s.observe(r) {
			s.resyncChanged.Add(1)
			s.emit(r)
		}
	}
	return nil
}
