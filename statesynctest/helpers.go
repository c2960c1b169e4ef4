package statesynctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

// waitTimeout bounds every wait of the suites for something asynchronous
// (a delivery, a watch callback, a consumer converging). It is generous so
// that a loaded CI machine does not flake; a conforming backend is done in
// milliseconds.
const waitTimeout = 10 * time.Second

// newTopic returns a topic name unique to this run, so that suites run
// against a shared server (a database, a NATS or Redis server) never see
// the topics of an earlier run or of another test.
func newTopic(t testing.TB, base string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	topic := base + "." + hex.EncodeToString(b[:])
	if err := statesync.CheckTopic(topic); err != nil {
		t.Fatalf("statesynctest: generated topic: %v", err)
	}
	return topic
}

// jsonEqual reports whether a and b hold the same JSON value. Backends may
// re-encode data (PostgreSQL jsonb reorders keys and drops whitespace), so
// data is compared as values, never as bytes.
func jsonEqual(a, b []byte) bool {
	va, okA := decodeJSON(a)
	vb, okB := decodeJSON(b)
	return okA && okB && reflect.DeepEqual(va, vb)
}

func decodeJSON(b []byte) (any, bool) {
	if len(b) == 0 {
		b = []byte("null") // nil Data stands for null
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	if d.More() {
		return nil, false
	}
	return v, true
}

// isNullData reports whether d is JSON null (nil Data stands for null).
func isNullData(d json.RawMessage) bool {
	return len(d) == 0 || bytes.Equal(bytes.TrimSpace(d), []byte("null"))
}

// A signal wakes the goroutines waiting for something to change. The
// channel returned by wait is closed by the next fire.
type signal struct {
	mu sync.Mutex // protects ch
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// waitFor waits until cond is true, re-checking it each time sig fires, for
// at most waitTimeout. On timeout it reports what it waited for, with
// status() if not nil, and returns false.
func waitFor(t testing.TB, sig *signal, what string, cond func() bool, status func() string) bool {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		ch := sig.wait() // before cond, so that no change is missed
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			msg := ""
			if status != nil {
				msg = "; " + status()
			}
			t.Errorf("timed out after %v waiting for %s%s", waitTimeout, what, msg)
			return false
		}
	}
}

// opContext returns a context for one store or provider call of a suite.
func opContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
