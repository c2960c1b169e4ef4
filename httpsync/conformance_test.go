package httpsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/statesynctest"
)

// feedStore is a MemoryStore whose change feed the test can also drive, to
// publish arbitrary invalidations (any revision, epoch, source id and time)
// through a Source to the Handler's streams, as a shared store's feed would.
type feedStore struct {
	*statesync.MemoryStore
	mu  sync.Mutex
	fns []func(statesync.Record)
}

func (s *feedStore) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	s.mu.Lock()
	s.fns = append(s.fns, fn)
	s.mu.Unlock()
	return s.MemoryStore.Watch(ctx, fn)
}

func (s *feedStore) publish(inv statesync.Invalidation) {
	rec := statesync.Record{Topic: inv.Topic, Revision: inv.Revision, Epoch: inv.Epoch, SourceID: inv.SourceID, DataOmitted: true}
	if inv.TimestampMs != 0 {
		rec.Time = time.UnixMilli(inv.TimestampMs)
	}
	s.mu.Lock()
	fns := s.fns
	s.mu.Unlock()
	for _, fn := range fns {
		fn(rec)
	}
}

// newPair starts a Source over store behind a Handler behind a loopback
// server, and a Client of it.
func newPair(t *testing.T, store statesync.Store, copts *httpsync.ClientOptions) (*statesync.Source, string, *httpsync.Client) {
	t.Helper()
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := httpsync.NewHandler(src, hijackOpts(nil))
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		ts.Close()
		src.Close()
	})
	return src, ts.URL, newClient(t, ts.URL, copts)
}

// B-TRANS-01, B-TRANS-02, B-TOPIC-01..03, B-GO-01, B-GO-02: the Client is a
// Subscriber that keeps the contract, over a real server.
func TestConformanceSubscriber(t *testing.T) {
	statesynctest.TestSubscriber(t, func(t *testing.T) (statesync.Subscriber, func(statesync.Invalidation)) {
		store := &feedStore{MemoryStore: statesync.NewMemoryStore(nil)}
		_, _, c := newPair(t, store, nil)
		return c, store.publish
	})
}

// B-TRANS-03, B-TRANS-08: the Client is a Provider that keeps the contract.
func TestConformanceProvider(t *testing.T) {
	for _, inline := range []int{0, 1 << 10} {
		t.Run(fmt.Sprintf("inline=%d", inline), func(t *testing.T) {
			statesynctest.TestProvider(t, func(t *testing.T) (statesync.Provider, func(string, json.RawMessage) statesync.Snapshot) {
				src, _, c := newPair(t, statesync.NewMemoryStore(nil), &httpsync.ClientOptions{Inline: inline})
				return c, putWith(t, src)
			})
		})
	}
}

// B-E2E-02, B-E2E-03, B-E2E-16: consumers over the Client converge.
func TestConformanceTransport(t *testing.T) {
	for _, inline := range []int{0, 1 << 10} {
		t.Run(fmt.Sprintf("inline=%d", inline), func(t *testing.T) {
			statesynctest.TestTransport(t, func(t *testing.T) statesynctest.Transport {
				src, _, c := newPair(t, statesync.NewMemoryStore(nil), &httpsync.ClientOptions{Inline: inline})
				return statesynctest.Transport{Subscriber: c, Provider: c, Put: putWith(t, src)}
			})
		})
	}
}

func putWith(t *testing.T, src *statesync.Source) func(string, json.RawMessage) statesync.Snapshot {
	return func(topic string, data json.RawMessage) statesync.Snapshot {
		t.Helper()
		s, err := src.Put(context.Background(), topic, data)
		if err != nil {
			t.Fatalf("Put(%q, %s): %v", topic, data, err)
		}
		return s
	}
}

// B-TRANS-10, B-E2E-50, B-E2E-55, B-GATE-06: consumers over the HTTP client
// wrapped in a Chaos (dropped, duplicated, reordered, delayed and garbage
// invalidations; failing and stalling snapshot calls), while two writers
// make compare-and-set increments through the HTTP API, converge on the
// last write with strictly increasing revisions once the chaos stops.
func TestChaosOverHTTP(t *testing.T) {
	const topic, consumers, writers, increments = "chaos", 8, 2, 25
	_, url, c := newPair(t, statesync.NewMemoryStore(nil), nil)
	writer := newClient(t, url, nil)
	ch := statesynctest.NewChaos(c, c, statesynctest.ChaosOptions{
		Drop: 0.2, Duplicate: 0.2, Reorder: 0.2, MaxDelay: 10 * time.Millisecond, Garbage: 0.05,
		FailRate: 0.2, StallRate: 0.1, Stall: 200 * time.Millisecond, Logf: t.Logf,
	})
	t.Cleanup(func() { ch.Close() })
	hist := statesynctest.NewHistory()
	for i := range consumers {
		opts := &statesync.ConsumerOptions{OnError: func(*statesync.Error) {}}
		if i%2 == 0 {
			opts.FetchTimeout = 100 * time.Millisecond
			opts.Retry = &statesync.RetryPolicy{MaxAttempts: 3, InitialDelay: 5 * time.Millisecond, Jitter: 0.5}
		}
		con, err := statesync.NewConsumer(topic, ch, ch, hist.Applier(fmt.Sprintf("c%d", i), nil), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			con.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			con.Wait(ctx)
		})
		for attempt := 1; ; attempt++ { // the chaos may fail Start's fetch
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := con.Start(ctx)
			cancel()
			if err == nil {
				break
			} else if attempt == 20 {
				t.Fatalf("consumer %d: Start failed %d times, last: %v", i, attempt, err)
			}
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < increments; {
				cur, err := writer.Snapshot(ctx, topic)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				var v struct{ N int }
				if string(cur.Data) != "null" {
					json.Unmarshal(cur.Data, &v)
				}
				_, err = writer.PutIf(ctx, topic, json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1)), cur.Revision)
				var ce *statesync.ConflictError
				switch {
				case errors.As(err, &ce):
					continue // lost the race: read again
				case err != nil:
					t.Errorf("writer %d: PutIf: %v", w, err)
					return
				}
				i++
			}
		})
	}
	wg.Wait()
	ch.Quiesce()
	last, err := writer.Patch(ctx, topic, json.RawMessage(`{"done":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"n":%d,"done":true}`, writers*increments); string(last.Data) != want {
		t.Fatalf("final data %s; want %s", last.Data, want)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := hist.WaitConverged(wctx, last.Revision, last.Epoch); err != nil {
		t.Fatal(err)
	}
	hist.Check(t)
	for _, name := range hist.Names() {
		if got, _ := hist.Last(name); string(got.Data) != string(last.Data) {
			t.Errorf("consumer %s last applied %s; want %s", name, got.Data, last.Data)
		}
	}
	t.Logf("chaos: %+v", ch.Stats())
}
