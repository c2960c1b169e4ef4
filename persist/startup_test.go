package persist_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/persist"
)

// server is a Provider whose snapshot and failure can be set.
type server struct {
	mu    sync.Mutex
	snap  statesync.Snapshot
	err   error
	calls atomic.Int32
}

func (s *server) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, s.err
}

func (s *server) set(snap statesync.Snapshot, err error) {
	s.mu.Lock()
	s.snap, s.err = snap, err
	s.mu.Unlock()
}

// cached returns a storage holding the record of rev/epoch/data.
func cached(t *testing.T, rev statesync.Revision, epoch, data string) *persist.MemoryStorage {
	t.Helper()
	return stored(t, record(t, statesync.Snapshot{Revision: rev, Epoch: epoch, Data: []byte(data)}, &persist.RecordOptions{Topic: "settings"}))
}

// startWithCache builds the usual stack (consumer → persister → inner),
// restores the cache and starts the consumer.
func startWithCache(t *testing.T, m persist.Storage, srv *server, consumerErrs *[]error) (*statesync.Consumer, *recorder, persist.LoadInfo, error) {
	t.Helper()
	inner := &recorder{}
	p := newPersister(t, m, inner, &persist.Options{Topic: "settings"})
	bus := memsync.New(nil)
	var mu sync.Mutex
	c, err := statesync.NewConsumer("settings", bus, srv, p, &statesync.ConsumerOptions{OnError: func(e *statesync.Error) {
		mu.Lock()
		defer mu.Unlock()
		if consumerErrs != nil {
			*consumerErrs = append(*consumerErrs, e)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(); c.Wait(context.Background()) })
	info, _ := p.Restore(context.Background(), c)
	err = c.Start(context.Background())
	if err := p.Flush(context.Background()); err != nil {
		t.Errorf("Flush() = %v", err)
	}
	return c, inner, info, err
}

// B-BOOT-01, B-BOOT-02, B-BOOT-03, B-BOOT-07: with the provider failing, a
// consumer still comes up at once with the cached state, and with the
// cached revision and epoch; nothing is saved again.
func TestRestoreProviderDown(t *testing.T) {
	m := cached(t, 7, "e1", `{"theme":"dark"}`)
	srv := &server{err: errors.New("connection refused")}
	c, inner, info, err := startWithCache(t, m, srv, nil)
	if err == nil {
		t.Errorf("Restore and Start with the provider down = nil error; want Start's error")
	}
	if !info.Applied {
		t.Errorf("LoadInfo = %+v; want the cache applied", info)
	}
	if got := inner.datas(); got != `7:{"theme":"dark"}` {
		t.Errorf("inner applied %s; want the cached state", got)
	}
	if c.Revision() != 7 || c.Epoch() != "e1" {
		t.Errorf("consumer at revision %d epoch %q; want 7 e1 (from the cache)", c.Revision(), c.Epoch())
	}
	if n := len(m.SavedRecords()); n != 1 {
		t.Errorf("%d saves; want 1 (the cache is not saved again, B-BOOT-04)", n)
	}

	// The source comes back: a later Start applies only newer state.
	srv.set(statesync.Snapshot{Revision: 8, Epoch: "e1", Data: []byte(`{"theme":"light"}`)}, nil)
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start() after the source came back = %v", err)
	}
	if got := inner.datas(); got != `7:{"theme":"dark"} 8:{"theme":"light"}` {
		t.Errorf("inner applied %s; want the cache then revision 8", got)
	}
}

// B-BOOT-03: the source's first snapshot is skipped if it equals the
// cached one, applied (and saved) if newer or of another epoch; an
// invalidation not newer than the cache costs no fetch.
func TestRestoreGate(t *testing.T) {
	tests := []struct {
		name   string
		server statesync.Snapshot
		want   string
		saves  int
	}{
		{"same", statesync.Snapshot{Revision: 7, Epoch: "e1", Data: []byte(`"server"`)}, `7:"cache"`, 1},
		{"newer", statesync.Snapshot{Revision: 9, Epoch: "e1", Data: []byte(`"server"`)}, `7:"cache" 9:"server"`, 2},
		{"other epoch", statesync.Snapshot{Revision: 2, Epoch: "e2", Data: []byte(`"server"`)}, `7:"cache" 2:"server"`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := cached(t, 7, "e1", `"cache"`)
			srv := &server{snap: tt.server}
			c, inner, _, err := startWithCache(t, m, srv, nil)
			if err != nil {
				t.Fatalf("Restore and Start = %v", err)
			}
			if got := inner.datas(); got != tt.want {
				t.Errorf("inner applied %s; want %s", got, tt.want)
			}
			if n := len(m.SavedRecords()); n != tt.saves {
				t.Errorf("%d saves; want %d", n, tt.saves)
			}
			calls := srv.calls.Load()
			c.Invalidate(statesync.Invalidation{Topic: "settings", Revision: c.Revision(), Epoch: c.Epoch()})
			c.Wait(context.Background())
			if srv.calls.Load() != calls {
				t.Errorf("an invalidation at the cached revision fetched again; want it gated")
			}
		})
	}
}

// Without epochs, a source whose revision is below the cache is the
// engine's B-REV-13 case: it is reported (ErrRevisionRegressed) and not
// applied. (B-BOOT-03 asks for it to be applied; see CONFORMANCE.)
func TestRestoreLowerRevisionSameEpoch(t *testing.T) {
	m := cached(t, 7, "", `"cache"`)
	srv := &server{snap: statesync.Snapshot{Revision: 3, Data: []byte(`"server"`)}}
	var errs []error
	_, inner, _, _ := startWithCache(t, m, srv, &errs)
	if got := inner.datas(); got != `7:"cache"` {
		t.Errorf("inner applied %s; want only the cache", got)
	}
	if len(errs) != 1 || !errors.Is(errs[0], statesync.ErrRevisionRegressed) {
		t.Errorf("consumer reported %v; want one ErrRevisionRegressed", errs)
	}
}

// A corrupt or foreign cache is reported and ignored: the consumer starts
// from the source as if there were no cache.
func TestRestoreIgnoresBadCache(t *testing.T) {
	foreign := stored(t, record(t, statesync.Snapshot{Revision: 50, Data: []byte(`"other"`)}, &persist.RecordOptions{Topic: "billing"}))
	srv := &server{snap: statesync.Snapshot{Revision: 3, Data: []byte(`"server"`)}}
	c, inner, info, err := startWithCache(t, foreign, srv, nil)
	if err != nil || info.Applied {
		t.Fatalf("Restore and Start = %+v, %v; want a started consumer and the cache not applied", info, err)
	}
	if got := inner.datas(); got != `3:"server"` || c.Revision() != 3 {
		t.Errorf("inner applied %s, consumer at %d; want only the server's 3", got, c.Revision())
	}
	// The rejected record, though at a higher revision, does not keep the
	// new state out of the storage.
	if r, _ := rawOf(foreign); r.Meta.Revision != 3 || r.Meta.Topic != "settings" {
		t.Errorf("stored record after start = revision %d topic %q; want 3 settings", r.Meta.Revision, r.Meta.Topic)
	}
}
