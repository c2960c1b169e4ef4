package statesynctest_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/statesynctest"
)

func newMemoryStore(t *testing.T) statesync.Store {
	s := statesync.NewMemoryStore(nil)
	t.Cleanup(func() { s.Close() })
	return s
}

// B-TRANS-08, B-STORE-18, B-GO-01: the Store contract (see TestStore).
func TestMemoryStore(t *testing.T) {
	statesynctest.TestStore(t, newMemoryStore)
}

// The degenerate pair: one MemoryStore is trivially shared with itself.
// It runs the shared-store suite, which real shared backends need.
func TestMemoryStoreShared(t *testing.T) {
	statesynctest.TestSharedStore(t, func(t *testing.T) (a, b statesync.Store) {
		s := newMemoryStore(t)
		return s, s
	})
}

// newSource returns a Source over a fresh MemoryStore and a put function
// that writes through it.
func newSource(t *testing.T) (*statesync.Source, func(string, json.RawMessage) statesync.Snapshot) {
	src, err := statesync.NewSource(newMemoryStore(t), nil)
	if err != nil {
		t.Fatalf("NewSource error: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src, func(topic string, data json.RawMessage) statesync.Snapshot {
		t.Helper()
		s, err := src.Put(context.Background(), topic, data)
		if err != nil {
			t.Fatalf("Put(%q, %s) error: %v", topic, data, err)
		}
		return s
	}
}

func newBus(t *testing.T, src *statesync.Source) *memsync.Bus {
	b := memsync.New(src)
	t.Cleanup(func() { b.Close() })
	return b
}

// B-TRANS-03, B-TRANS-08, B-TOPIC-03: the Provider contract.
func TestSourceProvider(t *testing.T) {
	statesynctest.TestProvider(t, func(t *testing.T) (statesync.Provider, func(string, json.RawMessage) statesync.Snapshot) {
		return newSource(t)
	})
}

// B-TRANS-01, B-TRANS-02, B-TOPIC-01..03, B-GO-02: the Subscriber contract.
func TestMemsyncSubscriber(t *testing.T) {
	statesynctest.TestSubscriber(t, func(t *testing.T) (statesync.Subscriber, func(statesync.Invalidation)) {
		b := newBus(t, nil)
		return b, b.Publish
	})
}

// B-TRANS-03, B-TRANS-08, B-TOPIC-03: the Provider contract.
func TestMemsyncProvider(t *testing.T) {
	statesynctest.TestProvider(t, func(t *testing.T) (statesync.Provider, func(string, json.RawMessage) statesync.Snapshot) {
		src, put := newSource(t)
		return newBus(t, src), put
	})
}

// B-E2E-02, B-E2E-03, B-E2E-10, B-E2E-32, B-GATE-06: consumers over memsync converge.
func TestMemsyncTransport(t *testing.T) {
	statesynctest.TestTransport(t, func(t *testing.T) statesynctest.Transport {
		src, put := newSource(t)
		b := newBus(t, src)
		return statesynctest.Transport{Subscriber: b, Provider: b, Put: put}
	})
}

// newChaos wraps a memsync bus over a fresh Source in a Chaos with opts.
func newChaos(t *testing.T, opts statesynctest.ChaosOptions) (*statesynctest.Chaos, *memsync.Bus, func(string, json.RawMessage) statesync.Snapshot) {
	src, put := newSource(t)
	b := newBus(t, src)
	opts.Logf = t.Logf
	c := statesynctest.NewChaos(b, b, opts)
	t.Cleanup(func() { c.Close() })
	return c, b, put
}

// A Chaos that injects nothing, or only duplicates (which every consumer
// and suite must tolerate, B-GATE-08), is a conforming transport.
func TestChaosConforms(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts statesynctest.ChaosOptions
	}{
		{"NoFaults", statesynctest.ChaosOptions{}},
		{"Duplicates", statesynctest.ChaosOptions{Duplicate: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("Subscriber", func(t *testing.T) {
				statesynctest.TestSubscriber(t, func(t *testing.T) (statesync.Subscriber, func(statesync.Invalidation)) {
					c, b, _ := newChaos(t, tc.opts)
					return c, b.Publish
				})
			})
			t.Run("Provider", func(t *testing.T) {
				statesynctest.TestProvider(t, func(t *testing.T) (statesync.Provider, func(string, json.RawMessage) statesync.Snapshot) {
					c, _, put := newChaos(t, tc.opts)
					return c, put
				})
			})
			t.Run("Transport", func(t *testing.T) {
				statesynctest.TestTransport(t, func(t *testing.T) statesynctest.Transport {
					c, _, put := newChaos(t, tc.opts)
					return statesynctest.Transport{Subscriber: c, Provider: c, Put: put}
				})
			})
		})
	}
}
