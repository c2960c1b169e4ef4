package statesynctest_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/statesynctest"
)

// brokenEnv selects the broken backend TestBrokenBackendHelper runs a
// suite against.
const brokenEnv = "STATESYNCTEST_BROKEN"

// The suites must fail on backends that break the contract, or they prove
// nothing. Each case runs one suite against a deliberately broken backend
// in a child process (a suite needs a real *testing.T) and expects the
// named subtests to fail.
func TestSuitesCatchBrokenBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	tests := []struct {
		broken   string
		wantFail []string
	}{
		{"store-nocopy", []string{"DataCopied"}},                                       // B-STORE-18
		{"store-cas-ignored", []string{"ConditionalWrite", "ConcurrentCompareAndSet"}}, // lost updates
		{"store-list-unsorted", []string{"List"}},
		{"store-watch-stop-noop", []string{"WatchStop"}},
		{"store-watch-before-commit", []string{"Watch"}},              // B-TRANS-08
		{"store-watch-drops", []string{"Watch", "ConcurrentWriters"}}, // a feed that loses writes, not claiming to skip superseded ones
		{"sub-all-topics", []string{"SubscribedTopicOnly"}},           // B-TOPIC-01
		{"sub-unsubscribe-noop", []string{"Unsubscribe"}},             // B-TRANS-02
		{"prov-stale", []string{"LatestPut", "ConcurrentReads"}},      // B-TRANS-08
		{"prov-shared-buffer", []string{"DataCopied"}},                // B-STORE-18
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenBackendHelper$", "-test.v", "-test.count=1", "-test.timeout=120s")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tt.broken)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed against broken backend %q; want failures in %v\n%s", tt.broken, tt.wantFail, out)
			}
			for _, sub := range tt.wantFail {
				if !strings.Contains(string(out), "--- FAIL: TestBrokenBackendHelper/"+sub+" ") {
					t.Errorf("subtest %s did not fail against broken backend %q\n%s", sub, tt.broken, out)
				}
			}
		})
	}
}

// TestBrokenBackendHelper runs a suite against the broken backend named by
// STATESYNCTEST_BROKEN; it is run by TestSuitesCatchBrokenBackends.
func TestBrokenBackendHelper(t *testing.T) {
	broken := os.Getenv(brokenEnv)
	switch {
	case broken == "":
		t.Skip("run by TestSuitesCatchBrokenBackends")
	case strings.HasPrefix(broken, "store-"):
		statesynctest.TestStore(t, func(t *testing.T) statesync.Store {
			return &brokenStore{MemoryStore: statesync.NewMemoryStore(nil), mode: strings.TrimPrefix(broken, "store-"), bufs: map[string]json.RawMessage{}}
		})
	case strings.HasPrefix(broken, "sub-"):
		statesynctest.TestSubscriber(t, func(t *testing.T) (statesync.Subscriber, func(statesync.Invalidation)) {
			s := &brokenSub{mode: strings.TrimPrefix(broken, "sub-"), bus: memsync.New(nil)}
			return s, s.publish
		})
	case strings.HasPrefix(broken, "prov-"):
		statesynctest.TestProvider(t, func(t *testing.T) (statesync.Provider, func(string, json.RawMessage) statesync.Snapshot) {
			src, put := newSource(t)
			p := &brokenProv{mode: strings.TrimPrefix(broken, "prov-"), src: src, cache: map[string]statesync.Snapshot{}}
			if p.mode == "shared-buffer" {
				return p, func(topic string, data json.RawMessage) statesync.Snapshot {
					s := put(topic, data)
					p.mu.Lock()
					p.cache[topic] = statesync.Snapshot{Revision: s.Revision, Epoch: s.Epoch, Data: data} // the caller's buffer
					p.mu.Unlock()
					return s
				}
			}
			return p, put
		})
	default:
		t.Fatalf("unknown %s=%q", brokenEnv, broken)
	}
}

// brokenStore is a MemoryStore with one defect, chosen by mode.
type brokenStore struct {
	*statesync.MemoryStore
	mode string
	mu   sync.Mutex
	bufs map[string]json.RawMessage
}

func (s *brokenStore) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	if s.mode == "cas-ignored" {
		w.Conditional = false
	}
	if s.mode == "watch-before-commit" {
		// While Write runs (and calls the watchers), Get shows the state
		// before the write, as a store that reports before committing would.
		s.mu.Lock()
		s.bufs[w.Topic] = json.RawMessage("hide")
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.bufs, w.Topic)
			s.mu.Unlock()
		}()
	}
	rec, err := s.MemoryStore.Write(ctx, w)
	if err == nil && s.mode == "nocopy" && w.Data != nil {
		s.mu.Lock()
		s.bufs[w.Topic] = w.Data
		s.mu.Unlock()
		rec.Data = w.Data
	}
	return rec, err
}

func (s *brokenStore) Get(ctx context.Context, topic string) (statesync.Record, error) {
	rec, err := s.MemoryStore.Get(ctx, topic)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch b, ok := s.bufs[topic]; {
	case !ok:
	case s.mode == "nocopy":
		rec.Data = b
	case s.mode == "watch-before-commit" && rec.Revision > 0:
		rec.Revision--
	}
	return rec, err
}

func (s *brokenStore) List(ctx context.Context) ([]statesync.Record, error) {
	l, err := s.MemoryStore.List(ctx)
	if s.mode == "list-unsorted" {
		slices.Reverse(l)
	}
	return l, err
}

func (s *brokenStore) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	if s.mode == "watch-drops" {
		var n int
		var mu sync.Mutex
		inner := fn
		fn = func(r statesync.Record) {
			mu.Lock()
			n++
			drop := n%2 == 0
			mu.Unlock()
			if !drop {
				inner(r)
			}
		}
	}
	stop, err := s.MemoryStore.Watch(ctx, fn)
	if s.mode == "watch-stop-noop" && err == nil {
		return func() {}, nil
	}
	return stop, err
}

// brokenSub is a memsync bus with one defect.
type brokenSub struct {
	mode string
	bus  *memsync.Bus
	mu   sync.Mutex
	all  []statesync.InvalidationHandler
}

func (s *brokenSub) Subscribe(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
	if s.mode == "all-topics" {
		s.mu.Lock()
		s.all = append(s.all, h)
		s.mu.Unlock()
	}
	unsub, err := s.bus.Subscribe(ctx, topic, h)
	if s.mode == "unsubscribe-noop" {
		return func() {}, err
	}
	return unsub, err
}

func (s *brokenSub) publish(inv statesync.Invalidation) {
	if s.mode == "all-topics" {
		s.mu.Lock()
		all := slices.Clone(s.all)
		s.mu.Unlock()
		for _, h := range all {
			h.Invalidate(inv)
		}
		return
	}
	s.bus.Publish(inv)
}

// brokenProv is a Source's provider with one defect.
type brokenProv struct {
	mode  string
	src   *statesync.Source
	mu    sync.Mutex
	cache map[string]statesync.Snapshot
}

func (p *brokenProv) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	p.mu.Lock()
	c, ok := p.cache[topic]
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	s, err := p.src.Snapshot(ctx, topic)
	if err == nil && s.Revision > 0 && p.mode == "stale" {
		p.mu.Lock()
		p.cache[topic] = s // never refreshed
		p.mu.Unlock()
	}
	return s, err
}
