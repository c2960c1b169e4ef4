package natsstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/faultproxy"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/natsstore"
)

// open opens a store closed at cleanup.
func open(t testing.TB, url string, opts *natsstore.Options) *natsstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := natsstore.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func opContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTopic(base string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base + "." + hex.EncodeToString(b[:])
}

func mustWrite(t testing.TB, s statesync.Store, w statesync.Write) statesync.Record {
	t.Helper()
	r, err := s.Write(opContext(t), w)
	if err != nil {
		t.Fatalf("Write(%q): %v", w.Topic, err)
	}
	return r
}

func mustGet(t testing.TB, s statesync.Store, topic string) statesync.Record {
	t.Helper()
	r, err := s.Get(opContext(t), topic)
	if err != nil {
		t.Fatalf("Get(%q): %v", topic, err)
	}
	return r
}

// recorder collects what a Watch function receives.
type recorder struct {
	mu   sync.Mutex
	recs []statesync.Record
}

func watch(t testing.TB, s statesync.Store) *recorder {
	t.Helper()
	r := &recorder{}
	stop, err := s.Watch(context.Background(), func(rec statesync.Record) {
		r.mu.Lock()
		r.recs = append(r.recs, rec)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(stop)
	return r
}

func (r *recorder) resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Resync {
			n++
		}
	}
	return n
}

func (r *recorder) find(topic string, rev statesync.Revision) (statesync.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Topic == topic && rec.Revision == rev {
			return rec, true
		}
	}
	return statesync.Record{}, false
}

// waitSeen waits until w has seen rec's topic at rec's revision.
func waitSeen(t testing.TB, w *recorder, rec statesync.Record) statesync.Record {
	t.Helper()
	var got statesync.Record
	poll.Until(t, "the watcher to see "+rec.Topic, func() bool {
		var ok bool
		got, ok = w.find(rec.Topic, rec.Revision)
		return ok
	})
	return got
}

// newProxy returns a fault proxy to target, closed at cleanup.
func newProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// hostPort returns the host:port of a nats:// URL.
func hostPort(url string) string { return strings.TrimPrefix(url, "nats://") }

// quick is set by the gremlins build tag (quick_test.go).
var quick bool

// skipSlow skips a slow test in -short mode and in mutation testing.
func skipSlow(t *testing.T, why string) {
	t.Helper()
	if testing.Short() || quick {
		t.Skip(why)
	}
}
