// Package storetest holds the helpers the store packages' tests share
// (pgstore, natsstore, redisstore): a [Recorder] of what a Watch function
// receives, per-operation contexts, unique topics, and Write and Get that
// fail the test on error. It is imported by _test files only.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/faultproxy"
	"github.com/statesync-go/statesync/internal/poll"
)

// OpTimeout bounds the context [OpContext] returns.
const OpTimeout = 30 * time.Second

// OpContext returns a context for one store operation: it times out after
// [OpTimeout] and is cancelled at t's cleanup.
func OpContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	t.Cleanup(cancel)
	return ctx
}

// NewTopic returns base followed by a dot and 12 random hex digits, a
// topic no other test uses.
func NewTopic(base string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base + "." + hex.EncodeToString(b[:])
}

// MustWrite writes w to s and returns the record, failing t on error.
func MustWrite(t testing.TB, s statesync.Store, w statesync.Write) statesync.Record {
	t.Helper()
	rec, err := s.Write(OpContext(t), w)
	if err != nil {
		t.Fatalf("Write(%q): %v", w.Topic, err)
	}
	return rec
}

// MustGet returns s's record of topic, failing t on error.
func MustGet(t testing.TB, s statesync.Store, topic string) statesync.Record {
	t.Helper()
	rec, err := s.Get(OpContext(t), topic)
	if err != nil {
		t.Fatalf("Get(%q): %v", topic, err)
	}
	return rec
}

// Recorder collects what a Watch function receives. It is safe for
// concurrent use.
type Recorder struct {
	mu   sync.Mutex         // protects recs
	recs []statesync.Record // in the order received
}

// Watch starts watching s with a new Recorder, stopped at t's cleanup.
func Watch(t testing.TB, s statesync.Store) *Recorder {
	t.Helper()
	r := &Recorder{}
	stop, err := s.Watch(context.Background(), r.add)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(stop)
	return r
}

func (r *Recorder) add(rec statesync.Record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

// Records returns a copy of the records received so far, in order.
func (r *Recorder) Records() []statesync.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]statesync.Record(nil), r.recs...)
}

// Resyncs returns how many of the records received are Resyncs.
func (r *Recorder) Resyncs() int {
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

// Find returns the first record received of topic at rev, and whether
// there is one.
func (r *Recorder) Find(topic string, rev statesync.Revision) (statesync.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Topic == topic && rec.Revision == rev {
			return rec, true
		}
	}
	return statesync.Record{}, false
}

// WaitSeen waits until r has received rec's topic at rec's revision and
// returns the record received. It fails t after [poll.Timeout].
func WaitSeen(t testing.TB, r *Recorder, rec statesync.Record) statesync.Record {
	t.Helper()
	var got statesync.Record
	poll.Until(t, "the watcher to see "+rec.Topic+" at "+rec.Revision.String(), func() bool {
		var ok bool
		got, ok = r.Find(rec.Topic, rec.Revision)
		return ok
	})
	return got
}

// NewProxy returns a fault proxy to target, closed at t's cleanup.
func NewProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// WithOpt returns rawURL with its query option key set to value.
func WithOpt(t testing.TB, rawURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
