package httpsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/poll"
)

// fastBackoff keeps reconnections quick in tests.
var fastBackoff = httpsync.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, ResetAfter: time.Second}

func newClient(t testing.TB, url string, opts *httpsync.ClientOptions) *httpsync.Client {
	t.Helper()
	if opts == nil {
		opts = &httpsync.ClientOptions{}
	}
	if opts.Backoff == (httpsync.Backoff{}) {
		opts.Backoff = fastBackoff
	}
	c, err := httpsync.NewClient(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recorder is an Applier that keeps what it applied.
type recorder struct {
	mu      sync.Mutex
	applied []statesync.Snapshot
}

func (r *recorder) Apply(ctx context.Context, s statesync.Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, s)
	return nil
}

func (r *recorder) last() (statesync.Snapshot, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return statesync.Snapshot{}, 0
	}
	return r.applied[len(r.applied)-1], len(r.applied)
}

// increasing reports whether the applied revisions strictly increase
// within each epoch.
func (r *recorder) increasing() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.applied); i++ {
		a, b := r.applied[i-1], r.applied[i]
		if a.Epoch == b.Epoch && b.Revision <= a.Revision {
			return fmt.Errorf("applied revision %d after %d in epoch %q", b.Revision, a.Revision, a.Epoch)
		}
	}
	return nil
}

// startConsumer starts a consumer of topic over c.
func startConsumer(t testing.TB, c *httpsync.Client, topic string, opts *statesync.ConsumerOptions) (*statesync.Consumer, *recorder) {
	t.Helper()
	rec := &recorder{}
	con, err := statesync.NewConsumer(topic, c, c, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := con.Start(ctx); err != nil {
		t.Fatalf("Start(%q) = %v", topic, err)
	}
	t.Cleanup(func() {
		con.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		con.Wait(ctx)
	})
	return con, rec
}

// The Provider makes conditional GETs: the second one of an unchanged topic
// is a 304 answered from the client's cache.
func TestClientSnapshot(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.ts.URL, nil)
	ctx := context.Background()
	s.put(t, "a", `{"v":1}`)
	for i := range 3 {
		snap, err := c.Snapshot(ctx, "a")
		if err != nil || snap.Revision != 1 || snap.Epoch != "ep0" || string(snap.Data) != `{"v":1}` {
			t.Fatalf("Snapshot(%q) #%d = %+v, %v; want {v:1} at 1 in ep0", "a", i, snap, err)
		}
	}
	if st := s.h.Stats(); st.SnapshotGets != 1 || st.NotModified != 2 {
		t.Errorf("server saw %d GETs and %d 304s; want 1 and 2", st.SnapshotGets, st.NotModified)
	}
	s.put(t, "a", `{"v":2}`)
	if snap, err := c.Snapshot(ctx, "a"); err != nil || snap.Revision != 2 || string(snap.Data) != `{"v":2}` {
		t.Errorf("Snapshot after a write = %+v, %v; want {v:2} at 2", snap, err)
	}
	if snap, err := c.Snapshot(ctx, "never"); err != nil || snap.Revision != 0 || string(snap.Data) != "null" {
		t.Errorf("Snapshot(never written) = %+v, %v; want null at 0", snap, err)
	}
	if _, err := c.Snapshot(ctx, "bad\ntopic"); !errors.Is(err, statesync.ErrInvalidTopic) {
		t.Errorf("Snapshot(bad topic) = %v; want ErrInvalidTopic", err)
	}
}

// A malformed snapshot body is returned as the *SnapshotError of
// DecodeSnapshot (B-PROTO-12); failed statuses as a *StatusError that is
// retryable for 5xx and 429 only.
func TestClientSnapshotErrors(t *testing.T) {
	var status int
	var body string
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ts.Close)
	c := newClient(t, ts.URL, nil)
	set := func(s int, b string) { mu.Lock(); status, body = s, b; mu.Unlock() }

	for _, b := range []string{`{"revision":5,"data":1}`, `{"revision":"05","data":1}`, `{"revision":"5"}`, `not json`} {
		set(200, b)
		_, err := c.Snapshot(context.Background(), "t")
		var se *statesync.SnapshotError
		if !errors.As(err, &se) || statesync.IsRetryable(err) {
			t.Errorf("Snapshot of body %s = %v; want a non-retryable *SnapshotError", b, err)
		}
	}
	for code, retry := range map[int]bool{500: true, 502: true, 503: true, 429: true, 408: true, 400: false, 401: false, 403: false, 404: false} {
		set(code, `{"error":{"code":"x","message":"boom"}}`)
		_, err := c.Snapshot(context.Background(), "t")
		var he *httpsync.StatusError
		if !errors.As(err, &he) || he.StatusCode != code || he.Message != "boom" || he.Code != "x" {
			t.Errorf("Snapshot with status %d = %v; want a *StatusError with code x and message boom", code, err)
			continue
		}
		if he.Retryable() != retry || statesync.IsRetryable(err) != retry {
			t.Errorf("status %d: Retryable() = %v; want %v", code, he.Retryable(), retry)
		}
	}
}

// The writer's methods, their snapshots and their errors.
func TestClientWrites(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{SourceID: "cli"})
	ctx := context.Background()
	invs := make(chan statesync.Invalidation, 16)
	watchSource(t, s.src, func(inv statesync.Invalidation) { invs <- inv })

	snap, err := c.Put(ctx, "t", json.RawMessage(` {"a":1,"b":{"c":2}} `))
	if err != nil || snap.Revision != 1 || snap.Epoch != "ep0" || string(snap.Data) != `{"a":1,"b":{"c":2}}` {
		t.Fatalf("Put = %+v, %v; want {\"a\":1,…} at 1 in ep0", snap, err)
	}
	if inv := <-invs; inv.SourceID != "cli" {
		t.Errorf("invalidation of the Put = %+v; want sourceId cli", inv)
	}
	snap, err = c.PutIf(ctx, "t", json.RawMessage(`2`), 7)
	var ce *statesync.ConflictError
	if !errors.As(err, &ce) || ce.Current != 1 || ce.Expected != 7 || ce.Epoch != "ep0" || ce.Topic != "t" || !errors.Is(err, statesync.ErrConflict) {
		t.Fatalf("PutIf at a stale revision = %+v, %v; want *ConflictError expected 7 current 1 epoch ep0", snap, err)
	}
	if snap, err = c.PutIf(ctx, "t", json.RawMessage(`{"a":1,"b":{"c":2}}`), 1); err != nil || snap.Revision != 2 {
		t.Fatalf("PutIf at the current revision = %+v, %v; want revision 2", snap, err)
	}
	rev := statesync.Revision(2)
	snap, err = c.PatchIf(ctx, "t", json.RawMessage(`{"b":{"c":null,"d":3}}`), rev)
	if err != nil || snap.Revision != 3 || string(snap.Data) != `{"a":1,"b":{"d":3}}` {
		t.Fatalf("Patch = %+v, %v; want {\"a\":1,\"b\":{\"d\":3}} at 3", snap, err)
	}
	if _, err = c.PatchIf(ctx, "t", json.RawMessage(`{}`), rev); !errors.As(err, &ce) || ce.Current != 3 {
		t.Errorf("Patch at a stale revision = %v; want *ConflictError current 3", err)
	}
	if _, err = c.DeleteIf(ctx, "t", 2); !errors.As(err, &ce) {
		t.Errorf("DeleteIf at a stale revision = %v; want *ConflictError", err)
	}
	if snap, err = c.Delete(ctx, "t"); err != nil || snap.Revision != 4 || string(snap.Data) != "null" {
		t.Errorf("Delete = %+v, %v; want null at 4", snap, err)
	}
	if snap, err = c.DeleteIf(ctx, "t", 4); err != nil || snap.Revision != 5 {
		t.Errorf("DeleteIf at the current revision = %+v, %v; want revision 5", snap, err)
	}
	if got := s.get(t, "t"); got.Revision != 5 || string(got.Data) != "null" {
		t.Errorf("Get(%q) = %s at %d; want null at 5", "t", got.Data, got.Revision)
	}
	writes := s.h.Stats().Writes
	if _, err := c.Put(ctx, "t", json.RawMessage(`{nope`)); !errors.Is(err, statesync.ErrInvalidPayload) {
		t.Errorf("Put of invalid JSON = %v; want ErrInvalidPayload", err)
	}
	if _, err := c.Put(ctx, "bad\ntopic", json.RawMessage(`1`)); !errors.Is(err, statesync.ErrInvalidTopic) {
		t.Errorf("Put to a bad topic = %v; want ErrInvalidTopic", err)
	}
	if s.h.Stats().Writes != writes || s.h.Stats().Errors[400] != 0 {
		t.Errorf("invalid writes reached the server")
	}
	c.Put(ctx, "b", json.RawMessage(`1`))
	topics, err := c.Topics(ctx)
	want := []statesync.TopicInfo{{Topic: "b", Revision: 1, Epoch: "ep0"}, {Topic: "t", Revision: 5, Epoch: "ep0"}}
	if err != nil || fmt.Sprint(topics) != fmt.Sprint(want) {
		t.Errorf("Topics() = %v, %v; want %v", topics, err, want)
	}
}

// Consumers following topics through a Client converge on every write,
// their applied revisions strictly increasing; all their topics share one
// event stream (B-E2E-25, B-GATE-06, DESIGN §3 dispatch).
func TestClientConsumersConvergeOverOneStream(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.ts.URL, nil)
	const handles, topics = 60, 6
	type handle struct {
		topic string
		con   *statesync.Consumer
		rec   *recorder
	}
	var hs []handle
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range handles {
		wg.Go(func() {
			topic := "t" + strconv.Itoa(i%topics)
			con, rec := startConsumer(t, c, topic, nil)
			mu.Lock()
			hs = append(hs, handle{topic, con, rec})
			mu.Unlock()
		})
	}
	wg.Wait()
	for round := 1; round <= 5; round++ {
		for i := range topics {
			s.put(t, "t"+strconv.Itoa(i), strconv.Itoa(round))
		}
	}
	for _, h := range hs {
		want := s.get(t, h.topic)
		poll.Until(t, "consumer of "+h.topic+" at revision "+want.Revision.String(), func() bool { return h.con.Revision() == want.Revision })
		if last, _ := h.rec.last(); string(last.Data) != "5" {
			t.Errorf("consumer of %s applied %s last; want 5", h.topic, last.Data)
		}
		if err := h.rec.increasing(); err != nil {
			t.Error(err)
		}
	}
	st := s.h.Stats()
	if st.StreamsOpen != 1 {
		t.Errorf("StreamsOpen = %d with %d handles on one client; want 1", st.StreamsOpen, handles)
	}
	t.Logf("%d handles on %d topics: %d streams opened in all, %d snapshot GETs, %d 304s", handles, topics, st.StreamsTotal, st.SnapshotGets, st.NotModified)
}

// After the server stops and a new one starts on the same address (a
// restart, with a new epoch and lower revisions), the client reconnects
// and its consumers converge on the new state (B-REV-13, B-TRANS-09,
// B-E2E-18).
func TestClientReconnectsAfterRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s1 := newTestServerOn(t, ln, "before", nil)
	c := newClient(t, "http://"+addr, nil)
	for range 5 {
		s1.put(t, "a", `"old"`)
	}
	conA, recA := startConsumer(t, c, "a", nil)
	conB, recB := startConsumer(t, c, "b", nil)
	if conA.Revision() != 5 {
		t.Fatalf("consumer of a at %d; want 5", conA.Revision())
	}
	s1.stop()

	var s2 *testServer
	poll.Until(t, "listening again on "+addr, func() bool {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		s2 = newTestServerOn(t, ln, "after", nil)
		return true
	})
	s2.put(t, "a", `"new"`) // revision 1 of a new epoch
	s2.put(t, "b", `"new"`)
	for _, h := range []struct {
		con *statesync.Consumer
		rec *recorder
	}{{conA, recA}, {conB, recB}} {
		poll.Until(t, "consumer in the new epoch", func() bool { return h.con.Epoch() == "after" && h.con.Revision() == 1 })
		if last, _ := h.rec.last(); string(last.Data) != `"new"` {
			t.Errorf("after the restart %s applied %s; want \"new\"", h.con.Topic(), last.Data)
		}
	}
	s2.put(t, "a", `"newer"`)
	poll.Until(t, "consumer of a at 2", func() bool { return conA.Revision() == 2 })
	if st := s2.h.Stats(); st.StreamsOpen != 1 {
		t.Errorf("StreamsOpen on the new server = %d; want 1", st.StreamsOpen)
	}
}

// Unsubscribing the last handle of a topic reopens the stream without it
// (B-TRANS-02).
func TestClientUnsubscribeReopens(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.ts.URL, nil)
	got := make(chan statesync.Invalidation, 100)
	h := handlerFunc(func(inv statesync.Invalidation) { got <- inv })
	unsubA, err := c.Subscribe(context.Background(), "a", h)
	if err != nil {
		t.Fatal(err)
	}
	unsubB, _ := c.Subscribe(context.Background(), "b", h)
	defer unsubB()
	seen := map[string]bool{}
	for len(seen) < 2 { // the initial frames
		seen[(<-got).Topic] = true
	}
	// Under load the debounce may have opened a stream for a alone before
	// the one for a and b: count from here.
	poll.Until(t, "one open stream", func() bool { return s.h.Stats().StreamsOpen == 1 })
	before := s.h.Stats().StreamsTotal
	unsubA()
	unsubA() // idempotent
	poll.Until(t, "a reopened stream", func() bool { st := s.h.Stats(); return st.StreamsTotal == before+1 && st.StreamsOpen == 1 })
	s.put(t, "a", `1`)
	s.put(t, "b", `1`)
	for {
		inv := <-got
		if inv.Topic == "a" && inv.Revision == 1 {
			t.Fatalf("got %+v after unsubscribing a", inv)
		}
		if inv.Topic == "b" && inv.Revision == 1 {
			break
		}
	}
}

// handlerFunc is a Handler of decoded invalidations; raw ones are decoded.
type handlerFunc func(statesync.Invalidation)

func (f handlerFunc) Invalidate(inv statesync.Invalidation) { f(inv) }
func (f handlerFunc) InvalidateRaw(p []byte) {
	if inv, err := statesync.DecodeInvalidation(p); err == nil {
		f(inv)
	}
}

// Inline snapshot frames reach consumers without a GET.
func TestClientInline(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Inline: 1024})
	s.put(t, "small", `{"v":0}`)
	con, rec := startConsumer(t, c, "small", nil)
	// Wait for the stream, then count the GETs from here on.
	poll.Until(t, "the stream", func() bool { return s.h.Stats().SnapshotsSent >= 1 })
	gets := s.h.Stats().SnapshotGets
	for i := 1; i <= 10; i++ {
		s.put(t, "small", `{"v":`+strconv.Itoa(i)+`}`)
	}
	want := s.get(t, "small").Revision
	poll.Until(t, "consumer at the last revision", func() bool { return con.Revision() == want })
	if last, _ := rec.last(); string(last.Data) != `{"v":10}` {
		t.Errorf("last applied %s; want {\"v\":10}", last.Data)
	}
	if got := s.h.Stats().SnapshotGets; got != gets {
		t.Errorf("%d GETs for inline topics; want none", got-gets)
	}
	// A write by the client itself makes its cached inline snapshot stale:
	// Snapshot must not return it.
	if _, err := c.Put(context.Background(), "small", json.RawMessage(`{"v":"mine"}`)); err != nil {
		t.Fatal(err)
	}
	snap, err := c.Snapshot(context.Background(), "small")
	if err != nil || string(snap.Data) != `{"v":"mine"}` {
		t.Errorf("Snapshot after own write = %s, %v; want {\"v\":\"mine\"}", snap.Data, err)
	}
}

// A consumer with InlineRefresh over a Client with inline snapshots
// applies them through PeekSnapshot, on the stream's goroutine, without a
// GET; a topic whose snapshots are too large to ride inline is fetched
// (on the consumer's goroutine) and converges too.
func TestClientInlineRefreshPeeks(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Inline: 64})
	s.put(t, "small", `{"v":0}`)
	big := `{"pad":"` + strings.Repeat("x", 200) + `","v":0}`
	s.put(t, "big", big)
	opts := &statesync.ConsumerOptions{InlineRefresh: true}
	small, rec := startConsumer(t, c, "small", opts)
	large, _ := startConsumer(t, c, "big", opts)
	poll.Until(t, "the stream", func() bool { return s.h.Stats().SnapshotsSent >= 1 })
	gets := s.h.Stats().SnapshotGets
	for i := 1; i <= 10; i++ {
		s.put(t, "small", `{"v":`+strconv.Itoa(i)+`}`)
	}
	want := s.get(t, "small").Revision
	poll.Until(t, "consumer at the last revision", func() bool { return small.Revision() == want })
	if snap, ok := c.PeekSnapshot("small"); !ok || snap.Revision != want {
		t.Errorf("PeekSnapshot(small) = %v, %v; want revision %v at hand", snap.Revision, ok, want)
	}
	if last, _ := rec.last(); string(last.Data) != `{"v":10}` {
		t.Errorf("last applied %s; want {\"v\":10}", last.Data)
	}
	if got := s.h.Stats().SnapshotGets - gets; got != 0 {
		t.Errorf("%d GETs for an inline topic; want none", got)
	}
	wb := s.put(t, "big", strings.Replace(big, `"v":0`, `"v":1`, 1))
	poll.Until(t, "the large topic fetched", func() bool { return large.Revision() == wb.Revision })
	if _, ok := c.PeekSnapshot("big"); ok {
		t.Error("PeekSnapshot(big) = at hand; want not (too large to ride inline)")
	}
}

// A frame that breaks the protocol goes to InvalidateRaw, so that the
// consumer reports it (phase protocol, or invalidation for a payload that
// is not JSON) with the raw payload, and is
// dropped; valid frames around it still work (B-PROTO-03, B-PROTO-04,
// B-PROTO-06, B-PROTO-07, B-PROTO-10, B-TRANS-01).
func TestClientMalformedFrames(t *testing.T) {
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{Epoch: "e", FirstRevision: 1}), nil)
	t.Cleanup(func() { src.Close() })
	api := httpsync.NewHandler(src, hijackOpts(nil))
	t.Cleanup(func() { api.Close() })
	frames := []string{
		`{"topic":"t","revision":"01"}`,
		`{"topic":"t","revision":7}`,
		`{garbage:true}`,
		`{"topic":"","revision":"2"}`,
		`{"topic":"other","revision":"x"}`,
	}
	valid := `{"topic":"t","revision":"1","epoch":"e"}`
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			api.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, f := range frames {
			fmt.Fprintf(w, "event: invalidation\ndata: %s\n\n", f)
		}
		w.(http.Flusher).Flush()
		select {
		case <-release:
			fmt.Fprintf(w, "event: invalidation\ndata: %s\n\n", valid)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close) // after the client's Close
	c := newClient(t, ts.URL, nil)
	var mu sync.Mutex
	var errs []*statesync.Error
	con, _ := startConsumer(t, c, "t", &statesync.ConsumerOptions{OnError: func(e *statesync.Error) {
		mu.Lock()
		errs = append(errs, e)
		mu.Unlock()
	}})
	src.Put(context.Background(), "t", json.RawMessage(`"v1"`))
	close(release)
	poll.Until(t, "the valid frame applied", func() bool { return con.Revision() == 1 })
	poll.Until(t, "4 errors", func() bool { mu.Lock(); defer mu.Unlock(); return len(errs) >= 4 })
	c.Close() // no more frames
	mu.Lock()
	defer mu.Unlock()
	// Not JSON at all is phase invalidation; JSON that breaks the rules, protocol.
	want := map[string]statesync.Phase{frames[0]: statesync.PhaseProtocol, frames[1]: statesync.PhaseProtocol,
		frames[2]: statesync.PhaseInvalidation, frames[3]: statesync.PhaseProtocol}
	for _, e := range errs {
		if p, ok := want[string(e.SourceEvent)]; !ok || e.Phase != p {
			t.Errorf("reported %v (phase %s, source event %s); want the malformed frames of t, each once", e, e.Phase, e.SourceEvent)
		}
		delete(want, string(e.SourceEvent))
	}
	if len(want) != 0 || len(errs) != 4 {
		t.Errorf("%d errors reported; frames not reported: %v", len(errs), want)
	}
}

// After Close the client refuses work, and its goroutines are gone (goleak
// checks the latter for the whole package, B-GO-06).
func TestClientClose(t *testing.T) {
	s := newTestServer(t, nil)
	c, err := httpsync.NewClient(s.ts.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	unsub, err := c.Subscribe(context.Background(), "a", handlerFunc(func(statesync.Invalidation) {}))
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the stream", func() bool { return s.h.Stats().StreamsOpen == 1 })
	c.Close()
	c.Close()
	unsub()
	poll.Until(t, "the stream closed", func() bool { return s.h.Stats().StreamsOpen == 0 })
	if _, err := c.Subscribe(context.Background(), "a", handlerFunc(func(statesync.Invalidation) {})); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Subscribe after Close = %v; want ErrClosed", err)
	}
	if _, err := c.Snapshot(context.Background(), "a"); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Snapshot after Close = %v; want ErrClosed", err)
	}
	if _, err := c.Put(context.Background(), "a", json.RawMessage(`1`)); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Put after Close = %v; want ErrClosed", err)
	}
	for _, u := range []string{"ftp://x", "http://", "x", "http://h/?q=1", "http://h/#f"} {
		if _, err := httpsync.NewClient(u, nil); err == nil {
			t.Errorf("NewClient(%q) = nil error", u)
		}
	}
}
