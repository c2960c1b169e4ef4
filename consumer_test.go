package statesync_test

// Tests of the consumer engine: lifecycle (B-LIFE) and defaults (B-DEF-01),
// plus the fakes shared by the engine_*_test.go files. Every test that
// involves goroutines or time runs in a testing/synctest bubble, so that
// synctest.Wait gives exact synchronisation points and delays cost nothing.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

const engTopic = "test"

func engSnap(rev statesync.Revision, data string) statesync.Snapshot {
	return statesync.Snapshot{Revision: rev, Data: json.RawMessage(data)}
}

func engInv(rev statesync.Revision) statesync.Invalidation {
	return statesync.Invalidation{Topic: engTopic, Revision: rev}
}

// fakeProvider serves a settable snapshot, read when the call begins (the
// state of the source at request time), and answers after delay. The delay
// ignores ctx on purpose: a provider that does not honour cancellation is
// the harder case for the engine.
type engProvider struct {
	mu      sync.Mutex
	engSnap statesync.Snapshot
	err     error
	calls   int
	delay   time.Duration
	hook    func(ctx context.Context, call int) error // runs first, without lock; an error is returned
}

func (p *engProvider) set(rev statesync.Revision, data string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.engSnap = engSnap(rev, data)
}

func (p *engProvider) setSnap(s statesync.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.engSnap = s
}

func (p *engProvider) setHook(hook func(ctx context.Context, call int) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = hook
}

func (p *engProvider) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *engProvider) setDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

func (p *engProvider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (p *engProvider) Snapshot(ctx context.Context, engTopic string) (statesync.Snapshot, error) {
	p.mu.Lock()
	p.calls++
	n, hook := p.calls, p.hook
	s, err, d := p.engSnap, p.err, p.delay
	p.mu.Unlock()
	if hook != nil {
		if herr := hook(ctx, n); herr != nil {
			return statesync.Snapshot{}, herr
		}
	}
	if d > 0 {
		time.Sleep(d)
	}
	return s, err
}

// recorder is an Applier that records every call.
type engApplier struct {
	mu   sync.Mutex
	got  []statesync.Snapshot
	err  error
	hook func(ctx context.Context, s statesync.Snapshot) error // runs after recording, without lock
}

func (r *engApplier) Apply(ctx context.Context, s statesync.Snapshot) error {
	r.mu.Lock()
	r.got = append(r.got, s)
	err, hook := r.err, r.hook
	r.mu.Unlock()
	if hook != nil {
		if herr := hook(ctx, s); herr != nil {
			return herr
		}
	}
	return err
}

func (r *engApplier) setHook(hook func(ctx context.Context, s statesync.Snapshot) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = hook
}

func (r *engApplier) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *engApplier) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *engApplier) revs() []statesync.Revision {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]statesync.Revision, len(r.got))
	for i, s := range r.got {
		out[i] = s.Revision
	}
	return out
}

func (r *engApplier) last() statesync.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return statesync.Snapshot{}
	}
	return r.got[len(r.got)-1]
}

// fakeSub is a Subscriber that remembers its handler, so tests deliver
// invalidations with send and sendRaw, and counts subscriptions and
// unsubscribe calls (not deduplicated: a second call is visible).
type engSub struct {
	mu     sync.Mutex
	h      statesync.InvalidationHandler
	subs   int
	unsubs int
	err    error
	hook   func(ctx context.Context) // runs inside Subscribe, without lock
}

func (s *engSub) Subscribe(ctx context.Context, engTopic string, h statesync.InvalidationHandler) (func(), error) {
	s.mu.Lock()
	s.subs++
	err, hook := s.err, s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(ctx)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.unsubs++
		s.h = nil
	}, nil
}

func (s *engSub) setHook(hook func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

func (s *engSub) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *engSub) handler() statesync.InvalidationHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h
}

func (s *engSub) send(engInv statesync.Invalidation) {
	if h := s.handler(); h != nil {
		h.Invalidate(engInv)
	}
}

func (s *engSub) sendRaw(payload string) {
	if h := s.handler(); h != nil {
		h.InvalidateRaw([]byte(payload))
	}
}

// counts returns the number of Subscribe calls and of unsubscribe calls.
func (s *engSub) counts() (subs, unsubs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs, s.unsubs
}

// active returns the number of live subscriptions.
func (s *engSub) active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return 0
	}
	return 1
}

// errLog collects the errors a consumer reports.
type engErrs struct {
	mu   sync.Mutex
	errs []*statesync.Error
	hook func(*statesync.Error)
}

func (l *engErrs) onError(e *statesync.Error) {
	l.mu.Lock()
	l.errs = append(l.errs, e)
	hook := l.hook
	l.mu.Unlock()
	if hook != nil {
		hook(e)
	}
}

func (l *engErrs) all() []*statesync.Error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (l *engErrs) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs)
}

func (l *engErrs) phases() []statesync.Phase {
	var out []statesync.Phase
	for _, e := range l.all() {
		out = append(out, e.Phase)
	}
	return out
}

// newSourceBus returns a Source on a MemoryStore whose first revision is 1,
// and a Bus that follows it; both are closed when the test ends, after the
// consumers made with newEngConsumer are stopped.
func newSourceBus(t *testing.T) (*statesync.Source, *memsync.Bus) {
	t.Helper()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	bus := memsync.New(src)
	t.Cleanup(func() { _ = bus.Close() })
	return src, bus
}

// env is a consumer of topic "test" wired to fakes. The provider starts at
// revision 1 with data "v1".
type engEnv struct {
	sub  *engSub
	prov *engProvider
	app  *engApplier
	errs *engErrs
	c    *statesync.Consumer
}

// newEnv makes an env; opts.OnError is set to the env's errLog unless
// already set.
func newEngEnv(t *testing.T, opts *statesync.ConsumerOptions) *engEnv {
	t.Helper()
	e := &engEnv{sub: &engSub{}, prov: &engProvider{}, app: &engApplier{}, errs: &engErrs{}}
	e.prov.set(1, `"v1"`)
	var o statesync.ConsumerOptions
	if opts != nil {
		o = *opts
	}
	if o.OnError == nil {
		o.OnError = e.errs.onError
	}
	e.c = newEngConsumer(t, engTopic, e.sub, e.prov, e.app, &o)
	return e
}

// start starts e.c and fails the test on error.
func (e *engEnv) start(t *testing.T) {
	t.Helper()
	if err := e.c.Start(context.Background()); err != nil {
		t.Fatalf("Start() = %v; want nil", err)
	}
}

// publish sets the provider at rev with data, delivers the invalidation of
// rev and waits (inside a synctest bubble) until the bubble is idle.
func (e *engEnv) publish(rev statesync.Revision, data string) {
	e.prov.set(rev, data)
	e.sub.send(engInv(rev))
	synctest.Wait()
}

// newConsumer makes a consumer that is stopped and waited for when the
// test ends (inside the bubble, for synctest tests).
func newEngConsumer(t *testing.T, engTopic string, sub statesync.Subscriber, prov statesync.Provider, app statesync.Applier, opts *statesync.ConsumerOptions) *statesync.Consumer {
	t.Helper()
	c, err := statesync.NewConsumer(engTopic, sub, prov, app, opts)
	if err != nil {
		t.Fatalf("NewConsumer(%q) error = %v; want nil", engTopic, err)
	}
	t.Cleanup(func() { engStopWait(t, c) })
	return c
}

func engStopWait(t *testing.T, c *statesync.Consumer) {
	t.Helper()
	c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		t.Errorf("Wait() after Stop = %v; want nil", err)
	}
}

// asError returns err as an *statesync.Error or fails the test.
func asEngError(t *testing.T, err error) *statesync.Error {
	t.Helper()
	var se *statesync.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *statesync.Error", err, err)
	}
	return se
}

// ---- logging capture ----

type engRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]slog.Value
}

func (r engRecord) str(key string) string {
	v, ok := r.Attrs[key]
	if !ok {
		return "<missing>"
	}
	return v.Resolve().String()
}

// logCapture collects records; hook, if set, runs on each record after it is
// stored, on the logging goroutine, without the capture's lock.
type engLogs struct {
	mu    sync.Mutex
	recs  []engRecord
	level slog.Level
	hook  func(engRecord)
}

func newEngLogs(level slog.Level) (*slog.Logger, *engLogs) {
	lc := &engLogs{level: level}
	return slog.New(&engLogHandler{lc: lc}), lc
}

func (lc *engLogs) records() []engRecord {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return slices.Clone(lc.recs)
}

// find returns the records with message msg.
func (lc *engLogs) find(msg string) []engRecord {
	var out []engRecord
	for _, r := range lc.records() {
		if r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

func (lc *engLogs) messages() []string {
	var out []string
	for _, r := range lc.records() {
		out = append(out, r.Msg)
	}
	return out
}

type engLogHandler struct {
	lc    *engLogs
	attrs []slog.Attr
}

func (h *engLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.lc.level }

func (h *engLogHandler) Handle(_ context.Context, r slog.Record) error {
	rec := engRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]slog.Value{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool {
		if _, dup := rec.Attrs[a.Key]; dup {
			rec.Attrs["!dup:"+a.Key] = a.Value
		}
		rec.Attrs[a.Key] = a.Value
		return true
	})
	h.lc.mu.Lock()
	h.lc.recs = append(h.lc.recs, rec)
	hook := h.lc.hook
	h.lc.mu.Unlock()
	if hook != nil {
		hook(rec)
	}
	return nil
}

func (h *engLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &engLogHandler{lc: h.lc, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *engLogHandler) WithGroup(string) slog.Handler { return h }

// ---- B-LIFE ----

// B-LIFE-01: construction does no I/O.
func TestEngineNewDoesNoIO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		synctest.Wait()
		if subs, _ := e.sub.counts(); subs != 0 {
			t.Errorf("Subscribe calls after NewConsumer = %d; want 0", subs)
		}
		if n := e.prov.count(); n != 0 {
			t.Errorf("provider calls after NewConsumer = %d; want 0", n)
		}
		if n := e.app.count(); n != 0 {
			t.Errorf("applier calls after NewConsumer = %d; want 0", n)
		}
	})
}

// B-DEF-01, B-LIFE-02: nil options mean no throttle (an event refreshes at
// once), no filter, no logger, no OnError (errors still surface), initial
// revision 0 and no epoch.
func TestEngineDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sub, prov, app := &engSub{}, &engProvider{}, &engApplier{}
		prov.set(1, `"v1"`)
		c := newEngConsumer(t, engTopic, sub, prov, app, nil)
		if got := c.Revision(); got != 0 {
			t.Errorf("Revision() before Start = %v; want 0", got)
		}
		if got := c.Epoch(); got != "" {
			t.Errorf("Epoch() before Start = %q; want empty", got)
		}
		if got := c.Topic(); got != engTopic {
			t.Errorf("Topic() = %q; want %q", got, engTopic)
		}
		hasDeadline := make(chan bool, 1)
		prov.setHook(func(ctx context.Context, call int) error {
			_, ok := ctx.Deadline()
			hasDeadline <- ok
			return nil
		})
		if err := c.Start(context.Background()); err != nil {
			t.Fatalf("Start() = %v; want nil", err)
		}
		if <-hasDeadline {
			t.Errorf("provider ctx has a deadline; want none (FetchTimeout 0)")
		}
		prov.setHook(nil)
		if got := c.Revision(); got != 1 {
			t.Errorf("Revision() after Start = %v; want 1", got)
		}
		// No throttle and no filter: an event with any source id refreshes
		// with no time passing.
		t0 := time.Now()
		prov.set(2, `"v2"`)
		sub.send(statesync.Invalidation{Topic: engTopic, Revision: 2, SourceID: "me"})
		synctest.Wait()
		if got := prov.count(); got != 2 {
			t.Errorf("provider calls after event = %d; want 2", got)
		}
		if got := c.Revision(); got != 2 {
			t.Errorf("Revision() after event = %v; want 2", got)
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("refresh took %v of fake time; want 0 (no debounce by default)", d)
		}
		// No OnError, no logger: a failure is returned, nothing panics.
		boom := errors.New("boom")
		prov.setErr(boom)
		if err := c.Refresh(context.Background()); !errors.Is(err, boom) {
			t.Errorf("Refresh() = %v; want %v", err, boom)
		}
	})
}

// B-LIFE-03, B-LIFE-04: Start subscribes once, then applies the current
// snapshot before returning; no errors.
func TestEngineStartLateJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.prov.set(7, `{"theme":"dark"}`)
		e.start(t)
		if subs, _ := e.sub.counts(); subs != 1 {
			t.Errorf("Subscribe calls = %d; want 1", subs)
		}
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls = %d; want 1", n)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{7}) {
			t.Errorf("applied revisions = %v; want [7]", got)
		}
		if got := string(e.app.last().Data); got != `{"theme":"dark"}` {
			t.Errorf("applied data = %s; want {\"theme\":\"dark\"}", got)
		}
		if got := e.c.Revision(); got != 7 {
			t.Errorf("Revision() = %v; want 7", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-05, B-GATE-03, B-PROTO-13: the first snapshot applies even at
// revision 0.
func TestEngineStartAppliesRevisionZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.prov.set(0, `null`)
		e.start(t)
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{0}) {
			t.Errorf("applied revisions = %v; want [0]", got)
		}
		if got := e.c.Revision(); got != 0 {
			t.Errorf("Revision() = %v; want 0", got)
		}
	})
}

// B-LIFE-06: the handler is registered before the initial refresh, so a
// change made while Start fetches is not missed.
func TestEngineStartSubscribesBeforeRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		var activeAtFetch int
		e.prov.setHook(func(ctx context.Context, call int) error {
			if call == 1 {
				activeAtFetch = e.sub.active()
				// The source changes while the first snapshot is on its way.
				e.prov.set(2, `"v2"`)
				e.sub.send(engInv(2))
			}
			return nil
		})
		e.start(t)
		synctest.Wait()
		if activeAtFetch != 1 {
			t.Errorf("subscriptions during the initial fetch = %d; want 1", activeAtFetch)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2}) {
			t.Errorf("applied revisions = %v; want [1 2]", got)
		}
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() = %v; want 2", got)
		}
	})
}

// B-LIFE-07: Start is idempotent.
func TestEngineStartIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		for i := range 3 {
			if err := e.c.Start(context.Background()); err != nil {
				t.Fatalf("Start() #%d = %v; want nil", i+1, err)
			}
		}
		if subs, _ := e.sub.counts(); subs != 1 {
			t.Errorf("Subscribe calls = %d; want 1", subs)
		}
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls = %d; want 1", n)
		}
		if n := e.app.count(); n != 1 {
			t.Errorf("applier calls = %d; want 1", n)
		}
	})
}

// B-LIFE-08: concurrent Starts wait for the first and all return its
// result, success or failure.
func TestEngineConcurrentStartsShareResult(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{{"success", nil}, {"failure", errors.New("no snapshot configured")}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEngEnv(t, nil)
				e.prov.setDelay(50 * time.Millisecond)
				e.prov.setErr(tc.err)
				t0 := time.Now()
				type result struct {
					err     error
					applied int
					at      time.Duration
				}
				results := make(chan result, 3)
				for range 3 {
					go func() {
						err := e.c.Start(context.Background())
						results <- result{err, e.app.count(), time.Since(t0)}
					}()
				}
				for range 3 {
					r := <-results
					if !errors.Is(r.err, tc.err) || (tc.err == nil) != (r.err == nil) {
						t.Errorf("Start() = %v; want %v", r.err, tc.err)
					}
					if r.at != 50*time.Millisecond {
						t.Errorf("Start() returned after %v; want 50ms (the first Start's end)", r.at)
					}
					if tc.err == nil && r.applied != 1 {
						t.Errorf("applies when Start returned = %d; want 1", r.applied)
					}
				}
				if subs, _ := e.sub.counts(); subs != 1 {
					t.Errorf("Subscribe calls = %d; want 1", subs)
				}
				if n := e.prov.count(); n != 1 {
					t.Errorf("provider calls = %d; want 1", n)
				}
				if tc.err != nil && e.errs.count() != 1 {
					t.Errorf("errors reported = %v; want exactly 1", e.errs.all())
				}
			})
		})
	}
}

// B-LIFE-09, B-LIFE-14: a stopped handle cannot start, and Start then never
// subscribes.
func TestEngineStartAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.c.Stop()
		if err := e.c.Start(context.Background()); !errors.Is(err, statesync.ErrStartAfterStop) {
			t.Errorf("Start() after Stop = %v; want %v", err, statesync.ErrStartAfterStop)
		}
		if subs, _ := e.sub.counts(); subs != 0 {
			t.Errorf("Subscribe calls = %d; want 0", subs)
		}
		if n := e.prov.count(); n != 0 {
			t.Errorf("provider calls = %d; want 0", n)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.c.Stop()
		if err := e.c.Start(context.Background()); !errors.Is(err, statesync.ErrStartAfterStop) {
			t.Errorf("Start() after Start+Stop = %v; want %v", err, statesync.ErrStartAfterStop)
		}
		if subs, unsubs := e.sub.counts(); subs != 1 || unsubs != 1 {
			t.Errorf("Subscribe/unsubscribe calls = %d/%d; want 1/1", subs, unsubs)
		}
		if got := e.sub.active(); got != 0 {
			t.Errorf("active subscriptions = %d; want 0", got)
		}
	})
}

// B-LIFE-10, B-LIFE-12, B-ERR-02: a Subscribe failure fails Start with that
// error, is reported once with phase subscribe, leaves the handle
// not-started, and a later Start subscribes afresh.
func TestEngineStartSubscribeFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		subErr := errors.New("transport down")
		e.sub.setErr(subErr)
		err := e.c.Start(context.Background())
		if !errors.Is(err, subErr) {
			t.Fatalf("Start() = %v; want %v", err, subErr)
		}
		if got := asEngError(t, err).Phase; got != statesync.PhaseSubscribe {
			t.Errorf("Start() error phase = %q; want %q", got, statesync.PhaseSubscribe)
		}
		errs := e.errs.all()
		if len(errs) != 1 {
			t.Fatalf("errors reported = %v; want exactly 1", errs)
		}
		if errs[0].Phase != statesync.PhaseSubscribe || errs[0].Topic != engTopic || !errors.Is(errs[0], subErr) {
			t.Errorf("reported %+v; want phase subscribe, topic %q, error %v", errs[0], engTopic, subErr)
		}
		if n := e.prov.count(); n != 0 {
			t.Errorf("provider calls = %d; want 0", n)
		}
		// Not started: a second Start subscribes and refreshes (B-LIFE-12).
		e.sub.setErr(nil)
		e.start(t)
		if subs, _ := e.sub.counts(); subs != 2 {
			t.Errorf("Subscribe calls = %d; want 2", subs)
		}
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1", got)
		}
	})
}

// B-LIFE-11, B-LIFE-12, B-ERR-07, B-ERR-11, B-PROTO-12: an initial refresh
// failure (provider, protocol or applier) fails Start with that error,
// reported once, removes the subscription, and Start may be called again.
func TestEngineStartRefreshFailureRollsBack(t *testing.T) {
	provErr := errors.New("No snapshot configured")
	appErr := errors.New("apply failed")
	_, badSnapErr := statesync.DecodeSnapshot([]byte(`{"revision":"01","data":1}`))
	for _, tc := range []struct {
		name  string
		setup func(e *engEnv)
		fix   func(e *engEnv)
		want  error
		phase statesync.Phase
	}{
		{"provider", func(e *engEnv) { e.prov.setErr(provErr) }, func(e *engEnv) { e.prov.setErr(nil) }, provErr, statesync.PhaseGetSnapshot},
		{"protocol", func(e *engEnv) { e.prov.setErr(badSnapErr) }, func(e *engEnv) { e.prov.setErr(nil) }, statesync.ErrNonCanonicalRevision, statesync.PhaseProtocol},
		{"applier", func(e *engEnv) { e.app.setErr(appErr) }, func(e *engEnv) { e.app.setErr(nil) }, appErr, statesync.PhaseApply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEngEnv(t, nil)
				tc.setup(e)
				err := e.c.Start(context.Background())
				if !errors.Is(err, tc.want) {
					t.Fatalf("Start() = %v; want %v", err, tc.want)
				}
				if got := asEngError(t, err).Phase; got != tc.phase {
					t.Errorf("Start() error phase = %q; want %q", got, tc.phase)
				}
				if got := e.errs.phases(); !slices.Equal(got, []statesync.Phase{tc.phase}) {
					t.Errorf("reported phases = %v; want [%s]", got, tc.phase)
				}
				if subs, unsubs := e.sub.counts(); subs != 1 || unsubs != 1 {
					t.Errorf("Subscribe/unsubscribe calls = %d/%d; want 1/1", subs, unsubs)
				}
				if got := e.sub.active(); got != 0 {
					t.Errorf("active subscriptions = %d; want 0", got)
				}
				tc.fix(e)
				e.start(t)
				if subs, _ := e.sub.counts(); subs != 2 {
					t.Errorf("Subscribe calls after retry = %d; want 2", subs)
				}
				if got := e.sub.active(); got != 1 {
					t.Errorf("active subscriptions after retry = %d; want 1", got)
				}
				if got := e.c.Revision(); got != 1 {
					t.Errorf("Revision() after retry = %v; want 1", got)
				}
			})
		})
	}
}

// B-LIFE-13: Stop unsubscribes exactly once and is idempotent.
func TestEngineStopIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		for range 3 {
			e.c.Stop()
		}
		if _, unsubs := e.sub.counts(); unsubs != 1 {
			t.Errorf("unsubscribe calls = %d; want 1", unsubs)
		}
		if got := e.sub.active(); got != 0 {
			t.Errorf("active subscriptions = %d; want 0", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-15, B-LIFE-18: once Stop returns, the applier is never called
// again, even if a fetch in flight completes later (100 ms fetch, stop after
// 10 ms, still 1 apply after 200 ms); Revision keeps its value.
func TestEngineStopQuiescence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(100 * time.Millisecond)
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		time.Sleep(10 * time.Millisecond)
		e.c.Stop()
		time.Sleep(200 * time.Millisecond)
		if n := e.app.count(); n != 1 {
			t.Errorf("applier calls = %d; want 1", n)
		}
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() after Stop = %v; want 1", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-16, B-GATE-04: Stop while the applier runs: the revision is not
// advanced to that snapshot.
func TestEngineStopDuringApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		entered, release := make(chan struct{}), make(chan struct{})
		e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			close(entered)
			<-release
			return nil
		})
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		<-entered
		stopped := make(chan struct{})
		go func() { e.c.Stop(); close(stopped) }() // waits for the applier
		synctest.Wait()
		close(release)
		<-stopped
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1 (not advanced after Stop)", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-17: after Stop, events (valid or not) are dropped with no
// provider call, no error report and no log record.
func TestEngineEventsAfterStopAreSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
		e.start(t)
		h := e.sub.handler()
		e.c.Stop()
		n := len(logs.records())
		e.prov.set(5, `"v5"`)
		h.Invalidate(engInv(5))
		h.Invalidate(statesync.Invalidation{Topic: "", Revision: 6})
		h.InvalidateRaw([]byte(`{"topic":"test","revision":"01"}`))
		h.InvalidateRaw([]byte(`not json`))
		synctest.Wait()
		if got := e.prov.count(); got != 1 {
			t.Errorf("provider calls = %d; want 1", got)
		}
		if got := e.errs.count(); got != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
		if got := logs.messages()[n:]; len(got) != 0 {
			t.Errorf("log records after Stop = %q; want none", got)
		}
	})
}

// B-LIFE-19, B-THR-19: Refresh before Start fetches and applies without
// subscribing, with no errors.
func TestEngineRefreshBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1", got)
		}
		if subs, _ := e.sub.counts(); subs != 0 {
			t.Errorf("Subscribe calls = %d; want 0", subs)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-20: Refresh after Stop returns nil without calling the provider or
// the applier.
func TestEngineRefreshAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.c.Stop()
		e.prov.set(2, `"v2"`)
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Errorf("Refresh() after Stop = %v; want nil", err)
		}
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls = %d; want 1", n)
		}
		if n := e.app.count(); n != 1 {
			t.Errorf("applier calls = %d; want 1", n)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-21, B-ERR-11: a manual Refresh failure is reported once and
// returned.
func TestEngineManualRefreshFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		boom := errors.New("boom")
		e.prov.setErr(boom)
		err := e.c.Refresh(context.Background())
		if !errors.Is(err, boom) {
			t.Fatalf("Refresh() = %v; want %v", err, boom)
		}
		if got := e.errs.phases(); !slices.Equal(got, []statesync.Phase{statesync.PhaseGetSnapshot}) {
			t.Errorf("reported phases = %v; want [getSnapshot]", got)
		}
		// Applier failure during a manual Refresh is returned too.
		e.prov.setErr(nil)
		e.prov.set(2, `"v2"`)
		appErr := errors.New("apply failed")
		e.app.setErr(appErr)
		err = e.c.Refresh(context.Background())
		if !errors.Is(err, appErr) || asEngError(t, err).Phase != statesync.PhaseApply {
			t.Errorf("Refresh() = %v; want apply error %v", err, appErr)
		}
		if n := e.errs.count(); n != 2 {
			t.Errorf("errors reported = %d; want 2", n)
		}
	})
}

// B-LIFE-22, B-ERR-11: a failed invalidation-triggered refresh is only
// reported; the handle stays subscribed and the next event applies.
func TestEngineInvalidationRefreshFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		appErr := errors.New("apply failed")
		e.app.setErr(appErr)
		e.publish(2, `"v2"`)
		errs := e.errs.all()
		if len(errs) != 1 || errs[0].Phase != statesync.PhaseApply || !errors.Is(errs[0], appErr) {
			t.Fatalf("errors reported = %v; want one apply error", errs)
		}
		if got := e.sub.active(); got != 1 {
			t.Errorf("active subscriptions = %d; want 1", got)
		}
		e.app.setErr(nil)
		e.publish(3, `"v3"`)
		if got := e.c.Revision(); got != 3 {
			t.Errorf("Revision() = %v; want 3", got)
		}
		if got := string(e.app.last().Data); got != `"v3"` {
			t.Errorf("last applied data = %s; want \"v3\"", got)
		}
	})
}

// B-LIFE-23: a manual Refresh bypasses the throttle.
func TestEngineManualRefreshBypassesThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{Throttle: statesync.Throttle{Debounce: 100 * time.Millisecond, Interval: time.Second}})
		e.start(t)
		e.prov.set(2, `"v2"`)
		t0 := time.Now()
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("Refresh() took %v; want 0 (not throttled)", d)
		}
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() = %v; want 2", got)
		}
	})
}

// B-LIFE-24: Stop while Subscribe is in progress: the subscription is
// removed as soon as Subscribe returns, Start returns ErrStopped, and no
// refresh happens.
func TestEngineStopDuringSubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		entered, release := make(chan struct{}), make(chan struct{})
		e.sub.setHook(func(ctx context.Context) {
			close(entered)
			<-release
		})
		done := make(chan error)
		go func() { done <- e.c.Start(context.Background()) }()
		<-entered
		e.c.Stop()
		close(release)
		if err := <-done; !errors.Is(err, statesync.ErrStopped) {
			t.Errorf("Start() = %v; want %v", err, statesync.ErrStopped)
		}
		if subs, unsubs := e.sub.counts(); subs != 1 || unsubs != 1 {
			t.Errorf("Subscribe/unsubscribe calls = %d/%d; want 1/1", subs, unsubs)
		}
		if got := e.sub.active(); got != 0 {
			t.Errorf("active subscriptions = %d; want 0", got)
		}
		if n := e.prov.count(); n != 0 {
			t.Errorf("provider calls = %d; want 0", n)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-25, B-GO-07: Stop cancels the context given to the provider and
// the applier; the cancellation is neither reported nor logged, and Wait
// returns once the calls have returned.
func TestEngineStopCancelsInFlightWork(t *testing.T) {
	for _, where := range []string{"provider", "applier"} {
		t.Run(where, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				logger, logs := newEngLogs(slog.LevelWarn)
				e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
				e.start(t)
				entered := make(chan struct{})
				returned := make(chan error, 1)
				block := func(ctx context.Context) error {
					close(entered)
					<-ctx.Done()
					returned <- ctx.Err()
					return ctx.Err()
				}
				if where == "provider" {
					e.prov.setHook(func(ctx context.Context, call int) error { return block(ctx) })
				} else {
					e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error { return block(ctx) })
				}
				e.prov.set(2, `"v2"`)
				e.sub.send(engInv(2))
				<-entered
				e.c.Stop()
				if err := e.c.Wait(context.Background()); err != nil {
					t.Fatalf("Wait() = %v; want nil", err)
				}
				if err := <-returned; !errors.Is(err, context.Canceled) {
					t.Errorf("%s ctx.Err() = %v; want %v", where, err, context.Canceled)
				}
				if n := e.errs.count(); n != 0 {
					t.Errorf("errors reported = %v; want none", e.errs.all())
				}
				if got := logs.messages(); len(got) != 0 {
					t.Errorf("warn/error log records = %q; want none", got)
				}
				if got := e.c.Revision(); got != 1 {
					t.Errorf("Revision() = %v; want 1", got)
				}
			})
		})
	}
}

// B-LIFE-26: FetchTimeout bounds each provider call; a timeout is a
// getSnapshot error wrapping context.DeadlineExceeded, after which the
// queued refresh proceeds.
func TestEngineFetchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{FetchTimeout: 50 * time.Millisecond})
		e.start(t)
		deadlines := make(chan time.Duration, 1)
		e.prov.setHook(func(ctx context.Context, call int) error {
			if call == 2 { // hangs until its deadline
				d, _ := ctx.Deadline()
				deadlines <- time.Until(d)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		time.Sleep(10 * time.Millisecond)
		e.prov.set(3, `"v3"`)
		e.sub.send(engInv(3)) // queued behind the hung call
		time.Sleep(100 * time.Millisecond)
		if deadline := <-deadlines; deadline != 50*time.Millisecond {
			t.Errorf("provider deadline = %v from the call; want 50ms", deadline)
		}
		errs := e.errs.all()
		if len(errs) != 1 || errs[0].Phase != statesync.PhaseGetSnapshot || !errors.Is(errs[0], context.DeadlineExceeded) {
			t.Fatalf("errors reported = %v; want one getSnapshot error wrapping DeadlineExceeded", errs)
		}
		if n := e.prov.count(); n != 3 {
			t.Errorf("provider calls = %d; want 3", n)
		}
		if got := e.c.Revision(); got != 3 {
			t.Errorf("Revision() = %v; want 3", got)
		}
	})
}

// B-LIFE-27, B-ERR-13 (phase start): Start honours its ctx; if it ends
// during the initial refresh, Start rolls back and returns an error
// matching ctx.Err(), reported with phase start.
func TestEngineStartHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		release := make(chan struct{})
		e.prov.setHook(func(ctx context.Context, call int) error {
			<-release // ignores ctx: only the caller's ctx can end Start
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		err := e.c.Start(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Start() = %v; want %v", err, context.DeadlineExceeded)
		}
		if d := time.Since(t0); d != 30*time.Millisecond {
			t.Errorf("Start() returned after %v; want 30ms", d)
		}
		if got := asEngError(t, err).Phase; got != statesync.PhaseStart {
			t.Errorf("Start() error phase = %q; want %q", got, statesync.PhaseStart)
		}
		if got := e.errs.phases(); !slices.Equal(got, []statesync.Phase{statesync.PhaseStart}) {
			t.Errorf("reported phases = %v; want [start]", got)
		}
		if subs, unsubs := e.sub.counts(); subs != 1 || unsubs != 1 {
			t.Errorf("Subscribe/unsubscribe calls = %d/%d; want 1/1", subs, unsubs)
		}
		close(release)
		synctest.Wait()
		// Rolled back to not-started: Start may be called again.
		e.prov.setHook(nil)
		e.start(t)
		if got := e.sub.active(); got != 1 {
			t.Errorf("active subscriptions after second Start = %d; want 1", got)
		}
	})
}

// B-LIFE-27: a ctx already cancelled fails Start at Subscribe (a
// subscriber that honours ctx, here memsync), with the context's error, and
// leaves nothing subscribed and nothing fetched.
func TestEngineStartCancelledContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := memsync.New(nil)
		prov, app := &engProvider{}, &engApplier{}
		prov.set(1, `1`)
		c := newEngConsumer(t, engTopic, bus, prov, app, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Start(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Start(cancelled) = %v; want %v", err, context.Canceled)
		}
		if got := bus.Subscribers(engTopic); got != 0 {
			t.Errorf("Subscribers(%q) = %d; want 0", engTopic, got)
		}
		synctest.Wait()
		if n := prov.count(); n != 0 {
			t.Errorf("provider calls = %d; want 0", n)
		}
	})
}
