package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/faultproxy"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/redisstore"
)

// admin runs f with a client of the Redis at storeURL.
func admin(t testing.TB, storeURL string, f func(ctx context.Context, c *redis.Client) error) {
	t.Helper()
	if err := redistest.Do(storeURL, f); err != nil {
		t.Fatal(err)
	}
}

// open opens a store closed at cleanup.
func open(t testing.TB, storeURL string, opts *redisstore.Options) *redisstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := redisstore.Open(ctx, storeURL, opts)
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
	rec, err := s.Write(opContext(t), w)
	if err != nil {
		t.Fatalf("Write(%q) error: %v", w.Topic, err)
	}
	return rec
}

func mustGet(t testing.TB, s statesync.Store, topic string) statesync.Record {
	t.Helper()
	rec, err := s.Get(opContext(t), topic)
	if err != nil {
		t.Fatalf("Get(%q) error: %v", topic, err)
	}
	return rec
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

// waitSeen waits until r has seen rec's topic at rec's revision.
func waitSeen(t testing.TB, r *recorder, rec statesync.Record) statesync.Record {
	t.Helper()
	var got statesync.Record
	poll.Until(t, "the watcher sees "+rec.Topic, func() bool {
		var ok bool
		got, ok = r.find(rec.Topic, rec.Revision)
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

// withOpt returns storeURL with the query option key set to value.
func withOpt(t testing.TB, storeURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// withHost returns storeURL with its host:port replaced.
func withHost(t testing.TB, storeURL, hostport string) string {
	t.Helper()
	u, err := url.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	return u.String()
}

// hostOf returns the host:port of storeURL.
func hostOf(t testing.TB, storeURL string) string {
	t.Helper()
	u, err := url.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
