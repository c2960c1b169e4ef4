package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/faultproxy"
	"github.com/statesync-go/statesync/pgstore"
)

// admin runs statements on a new connection to dbURL.
func admin(t testing.TB, dbURL string, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// open opens a store closed at cleanup.
func open(t testing.TB, dbURL string, opts *pgstore.Options) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pgstore.Open(ctx, dbURL, opts)
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

// withOpt returns dbURL with the query option key set to value.
func withOpt(t testing.TB, dbURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
