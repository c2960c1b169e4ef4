package statesynctest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/statesync-go/statesync"
)

// TestSubscriber checks that the subscribers made by newPair keep the
// contract of [statesync.Subscriber] when nothing fails, in subtests:
//
//   - an invalidation published to a topic reaches its handlers with every
//     field (topic, revision, epoch, source id, timestamp) intact;
//   - a handler receives the invalidations of its topic only;
//   - after the unsubscribe function returns the handler is not called
//     again for that subscription; calling it again does nothing, and the
//     other subscriptions of the topic keep receiving (a delivery already
//     under way on another goroutine when unsubscribe returns may still
//     land: this suite does not count it);
//   - many topics and many handlers per topic each get their own;
//   - subscribing and unsubscribing while invalidations are published is
//     safe (run it with -race).
//
// newPair returns a Subscriber and a publish function that sends an
// invalidation to it, as the transport's source side would (for example
// by notifying the server the subscriber is connected to); publish may be
// called from several goroutines and may deliver asynchronously. Handlers
// may receive invalidations the suite did not publish for their topic
// (such as the current revision sent on connect); they are ignored.
// Delivery is waited for with a timeout of 10 s; to check that something
// was not delivered, the suite publishes a later invalidation and waits
// for it, so a transport must deliver the invalidations of one publisher
// in order when nothing fails. newPair is called once per subtest and must
// register its own cleanup.
func TestSubscriber(t *testing.T, newPair func(t *testing.T) (statesync.Subscriber, func(statesync.Invalidation))) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, sub statesync.Subscriber, publish func(statesync.Invalidation))
	}{
		{"Delivery", testSubDelivery},
		{"SubscribedTopicOnly", testSubTopicOnly},
		{"Unsubscribe", testSubUnsubscribe},
		{"ManyTopicsAndHandlers", testSubMany},
		{"ConcurrentSubscribeAndPublish", testSubConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, publish := newPair(t)
			if sub == nil || publish == nil {
				t.Fatal("newPair returned a nil Subscriber or publish function")
			}
			tt.f(t, sub, publish)
		})
	}
}

// A recHandler is a [statesync.InvalidationHandler] that records what it receives.
type recHandler struct {
	topic string
	sig   *signal

	mu           sync.Mutex // protects the fields below
	got          []statesync.Invalidation
	wrong        []statesync.Invalidation // of another topic
	bad          [][]byte                 // raw payloads that do not decode
	unsubscribed bool                     // set once unsubscribe returned
	late         int                      // calls after that
}

func newRecHandler(topic string, sig *signal) *recHandler {
	return &recHandler{topic: topic, sig: sig}
}

func (h *recHandler) Invalidate(inv statesync.Invalidation) { h.record(inv, nil) }

func (h *recHandler) InvalidateRaw(payload []byte) {
	inv, err := statesync.DecodeInvalidation(payload)
	if err != nil {
		h.record(statesync.Invalidation{}, slices.Clone(payload))
		return
	}
	h.record(inv, nil)
}

func (h *recHandler) record(inv statesync.Invalidation, bad []byte) {
	h.mu.Lock()
	if h.unsubscribed {
		h.late++
	}
	switch {
	case bad != nil:
		h.bad = append(h.bad, bad)
	case inv.Topic != h.topic:
		h.wrong = append(h.wrong, inv)
	default:
		h.got = append(h.got, inv)
	}
	h.mu.Unlock()
	h.sig.fire()
}

func (h *recHandler) has(want statesync.Invalidation) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.got, want)
}

func (h *recHandler) hasRevision(rev statesync.Revision) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.got, func(i statesync.Invalidation) bool { return i.Revision == rev })
}

func (h *recHandler) markUnsubscribed() {
	h.mu.Lock()
	h.unsubscribed = true
	h.mu.Unlock()
}

func (h *recHandler) status() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("handler of %q received %v", h.topic, h.got)
}

// waitHas waits until h received want.
func (h *recHandler) waitHas(t testing.TB, want statesync.Invalidation) bool {
	t.Helper()
	return waitFor(t, h.sig, fmt.Sprintf("delivery of %+v", want), func() bool { return h.has(want) }, h.status)
}

// checkClean reports invalidations of other topics, undecodable payloads
// and calls after unsubscribe.
func (h *recHandler) checkClean(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.wrong) > 0 {
		t.Errorf("handler subscribed to %q received invalidations of other topics: %+v", h.topic, h.wrong)
	}
	if len(h.bad) > 0 {
		t.Errorf("handler subscribed to %q received %d undecodable payloads, first %q", h.topic, len(h.bad), h.bad[0])
	}
	if h.late > 0 {
		t.Errorf("handler subscribed to %q was called %d times after unsubscribe returned; want 0", h.topic, h.late)
	}
}

func subscribe(t testing.TB, ctx context.Context, sub statesync.Subscriber, topic string, h statesync.InvalidationHandler) func() {
	t.Helper()
	unsub, err := sub.Subscribe(ctx, topic, h)
	if err != nil {
		t.Fatalf("Subscribe(%q) error: %v", topic, err)
	}
	if unsub == nil {
		t.Fatalf("Subscribe(%q) returned a nil unsubscribe function", topic)
	}
	t.Cleanup(unsub)
	return unsub
}

// Payloads reach the handler unchanged.
func testSubDelivery(t *testing.T, sub statesync.Subscriber, publish func(statesync.Invalidation)) {
	ctx := opContext(t)
	var sig signal
	topic := newTopic(t, "delivery")
	h := newRecHandler(topic, &sig)
	subscribe(t, ctx, sub, topic, h)
	full := statesync.Invalidation{Topic: topic, Revision: 42, Epoch: "epoch-1", SourceID: "writer-1", TimestampMs: 1764000000000}
	publish(full)
	h.waitHas(t, full)
	bare := statesync.Invalidation{Topic: topic, Revision: 43}
	publish(bare)
	h.waitHas(t, bare)
	big := statesync.Invalidation{Topic: topic, Revision: statesync.MaxRevision, Epoch: "e"}
	publish(big)
	h.waitHas(t, big)
	h.checkClean(t)
}

// A handler gets its topic only.
func testSubTopicOnly(t *testing.T, sub statesync.Subscriber, publish func(statesync.Invalidation)) {
	ctx := opContext(t)
	var sig signal
	ta, tb, tc := newTopic(t, "a"), newTopic(t, "b"), newTopic(t, "c")
	ha, hb := newRecHandler(ta, &sig), newRecHandler(tb, &sig)
	subscribe(t, ctx, sub, ta, ha)
	subscribe(t, ctx, sub, tb, hb)
	publish(statesync.Invalidation{Topic: tc, Revision: 7})
	publish(statesync.Invalidation{Topic: tb, Revision: 1})
	publish(statesync.Invalidation{Topic: ta, Revision: 1})
	publish(statesync.Invalidation{Topic: tc, Revision: 8})
	publish(statesync.Invalidation{Topic: tb, Revision: 2})
	publish(statesync.Invalidation{Topic: ta, Revision: 2})
	ha.waitHas(t, statesync.Invalidation{Topic: ta, Revision: 2})
	hb.waitHas(t, statesync.Invalidation{Topic: tb, Revision: 2})
	ha.checkClean(t)
	hb.checkClean(t)
}

// Nothing is delivered after unsubscribe returns.
func testSubUnsubscribe(t *testing.T, sub statesync.Subscriber, publish func(statesync.Invalidation)) {
	ctx := opContext(t)
	var sig signal
	topic := newTopic(t, "unsub")
	h1, h2 := newRecHandler(topic, &sig), newRecHandler(topic, &sig)
	unsub1 := subscribe(t, ctx, sub, topic, h1)
	unsub2 := subscribe(t, ctx, sub, topic, h2)
	i1 := statesync.Invalidation{Topic: topic, Revision: 1}
	publish(i1)
	h1.waitHas(t, i1)
	h2.waitHas(t, i1)

	unsub1()
	h1.markUnsubscribed()
	unsub1() // idempotent: must not disturb h2's subscription
	i2 := statesync.Invalidation{Topic: topic, Revision: 2}
	publish(i2)
	h2.waitHas(t, i2)
	if h1.hasRevision(2) {
		t.Errorf("unsubscribed handler received revision 2")
	}

	// A new subscription of the same handler works.
	h1b := newRecHandler(topic, &sig)
	subscribe(t, ctx, sub, topic, h1b)
	unsub2()
	h2.markUnsubscribed()
	i3 := statesync.Invalidation{Topic: topic, Revision: 3}
	publish(i3)
	h1b.waitHas(t, i3)
	if h2.hasRevision(3) {
		t.Errorf("unsubscribed handler received revision 3")
	}
	h1.checkClean(t)
	h2.checkClean(t)
	h1b.checkClean(t)
}

// Many topics and handlers.
func testSubMany(t *testing.T, sub statesync.Subscriber, publish func(statesync.Invalidation)) {
	ctx := opContext(t)
	var sig signal
	const topics, perTopic = 16, 4
	names := make([]string, topics)
	handlers := make([][]*recHandler, topics)
	for i := range topics {
		names[i] = newTopic(t, fmt.Sprintf("many%d", i))
		for range perTopic {
			h := newRecHandler(names[i], &sig)
			handlers[i] = append(handlers[i], h)
			subscribe(t, ctx, sub, names[i], h)
		}
	}
	for round := range 2 {
		for i, name := range names {
			publish(statesync.Invalidation{Topic: name, Revision: statesync.Revision(100*round + i + 1)})
		}
	}
	for i, hs := range handlers {
		for _, h := range hs {
			h.waitHas(t, statesync.Invalidation{Topic: names[i], Revision: statesync.Revision(100 + i + 1)})
			h.checkClean(t)
		}
	}
}

// Subscribing, unsubscribing and publishing concurrently.
func testSubConcurrent(t *testing.T, sub statesync.Subscriber, publish func(statesync.Invalidation)) {
	ctx := opContext(t)
	var sig signal
	topic := newTopic(t, "churn")
	steady := newRecHandler(topic, &sig)
	subscribe(t, ctx, sub, topic, steady)

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for rev := statesync.Revision(1); ; rev++ {
			select {
			case <-done:
				return
			default:
			}
			publish(statesync.Invalidation{Topic: topic, Revision: rev})
		}
	})
	var churned []*recHandler
	var mu sync.Mutex
	var churners sync.WaitGroup
	for range 4 {
		churners.Go(func() {
			for range 20 {
				h := newRecHandler(topic, &sig)
				unsub, err := sub.Subscribe(ctx, topic, h)
				if err != nil {
					t.Errorf("Subscribe(%q) error: %v", topic, err)
					return
				}
				unsub()
				h.markUnsubscribed()
				mu.Lock()
				churned = append(churned, h)
				mu.Unlock()
			}
		})
	}
	churners.Wait()
	close(done)
	wg.Wait()
	// Only now, with no publish in flight, is a call after unsubscribe
	// surely a violation: a delivery racing with unsubscribe on another
	// goroutine may land just after it returns (see the Unsubscribe
	// subtest for the strict check).
	final := statesync.Invalidation{Topic: topic, Revision: 1 << 40}
	publish(final)
	steady.waitHas(t, final)
	steady.checkClean(t)
	for _, h := range churned {
		h.mu.Lock()
		h.late = 0
		h.mu.Unlock()
		h.checkClean(t)
		if h.hasRevision(final.Revision) {
			t.Errorf("handler unsubscribed before the last publish received it")
		}
	}
}

// TestProvider checks that the providers made by newProvider keep the
// contract of [statesync.Provider], in subtests:
//
//   - a topic never written is at revision 0 with null data;
//   - after put returns, the provider returns the snapshot put committed:
//     the same revision and epoch and the same JSON value;
//   - a put of null data (a deletion) is a new, higher revision;
//   - topics are independent;
//   - the data is the provider's own: a caller changing its buffer after
//     put changes nothing;
//   - an invalid topic name is an error;
//   - concurrent reads during writes see revisions that never go back,
//     each with the data committed at that revision.
//
// newProvider returns a Provider and a put function that writes data (nil
// means null) to a topic at the source of truth behind the provider and
// returns the committed snapshot; put must fail its t itself and may be
// called from one goroutine at a time. newProvider is called once per
// subtest and must register its own cleanup.
func TestProvider(t *testing.T, newProvider func(t *testing.T) (statesync.Provider, func(topic string, data json.RawMessage) statesync.Snapshot)) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot)
	}{
		{"UnknownTopic", testProvUnknown},
		{"LatestPut", testProvLatest},
		{"Delete", testProvDelete},
		{"TopicsIndependent", testProvIndependent},
		{"DataCopied", testProvDataCopied},
		{"InvalidTopic", testProvInvalidTopic},
		{"ConcurrentReads", testProvConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prov, put := newProvider(t)
			if prov == nil || put == nil {
				t.Fatal("newProvider returned a nil Provider or put function")
			}
			tt.f(t, prov, put)
		})
	}
}

func mustSnapshot(t testing.TB, ctx context.Context, prov statesync.Provider, topic string) statesync.Snapshot {
	t.Helper()
	s, err := prov.Snapshot(ctx, topic)
	if err != nil {
		t.Fatalf("Snapshot(%q) error: %v", topic, err)
	}
	return s
}

// wantSnapshot checks that got is want (same revision, epoch and value).
func wantSnapshot(t testing.TB, op string, got, want statesync.Snapshot) {
	t.Helper()
	if got.Revision != want.Revision || got.Epoch != want.Epoch || !jsonEqual(got.Data, want.Data) {
		t.Errorf("%s = {revision %d, epoch %q, data %s}; want {revision %d, epoch %q, data %s}",
			op, got.Revision, got.Epoch, got.Data, want.Revision, want.Epoch, want.Data)
	}
}

// A topic never written is {"revision":"0","data":null}.
func testProvUnknown(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot) {
	ctx := opContext(t)
	topic := newTopic(t, "unknown")
	s := mustSnapshot(t, ctx, prov, topic)
	if s.Revision != 0 || !isNullData(s.Data) {
		t.Errorf("Snapshot(%q) of a topic never written = {revision %d, data %s}; want {revision 0, data null}", topic, s.Revision, s.Data)
	}
	put(newTopic(t, "other"), json.RawMessage(`1`))
	if s := mustSnapshot(t, ctx, prov, topic); s.Revision != 0 || !isNullData(s.Data) {
		t.Errorf("Snapshot(%q) after a put to another topic = {revision %d, data %s}; want {revision 0, data null}", topic, s.Revision, s.Data)
	}
}

// The provider returns what was committed last.
func testProvLatest(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot) {
	ctx := opContext(t)
	topic := newTopic(t, "latest")
	var prev statesync.Snapshot
	for i := range 3 {
		data := json.RawMessage(fmt.Sprintf(`{"v":%d,"nested":{"list":[1,2,%d]}}`, i, i))
		p := put(topic, data)
		if !jsonEqual(p.Data, data) {
			t.Errorf("put(%q, %s) returned data %s; want %s", topic, data, p.Data, data)
		}
		if i > 0 && p.Revision <= prev.Revision {
			t.Errorf("put #%d (%q) returned revision %d; want > %d", i+1, topic, p.Revision, prev.Revision)
		}
		if i > 0 && p.Epoch != prev.Epoch {
			t.Errorf("put #%d (%q) returned epoch %q; want %q, that of put #%d", i+1, topic, p.Epoch, prev.Epoch, i)
		}
		for range 2 {
			wantSnapshot(t, fmt.Sprintf("Snapshot(%q) after put #%d", topic, i+1), mustSnapshot(t, ctx, prov, topic), p)
		}
		prev = p
	}
}

func testProvDelete(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot) {
	ctx := opContext(t)
	topic := newTopic(t, "delete")
	p1 := put(topic, json.RawMessage(`{"a":1}`))
	p2 := put(topic, nil)
	if p2.Revision <= p1.Revision || !isNullData(p2.Data) {
		t.Errorf("put(%q, nil) = {revision %d, data %s}; want {revision > %d, data null}", topic, p2.Revision, p2.Data, p1.Revision)
	}
	wantSnapshot(t, fmt.Sprintf("Snapshot(%q) after deletion", topic), mustSnapshot(t, ctx, prov, topic), p2)
}

// Topics have their own revisions and data.
func testProvIndependent(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot) {
	ctx := opContext(t)
	ta, tb := newTopic(t, "user"), newTopic(t, "document")
	pa := put(ta, json.RawMessage(`"Bob"`))
	pb := put(tb, json.RawMessage(`42`))
	pb2 := put(tb, json.RawMessage(`43`))
	if pb2.Revision <= pb.Revision {
		t.Errorf("second put(%q) revision = %d; want > %d", tb, pb2.Revision, pb.Revision)
	}
	wantSnapshot(t, fmt.Sprintf("Snapshot(%q)", ta), mustSnapshot(t, ctx, prov, ta), pa)
	wantSnapshot(t, fmt.Sprintf("Snapshot(%q)", tb), mustSnapshot(t, ctx, prov, tb), pb2)
}

// The provider's data is not the caller's buffer.
func testProvDataCopied(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot) {
	ctx := opContext(t)
	topic := newTopic(t, "copy")
	buf := []byte(`{"k":"original"}`)
	p := put(topic, buf)
	copy(buf, `{"k":"CHANGED!"}`)
	want := json.RawMessage(`{"k":"original"}`)
	if got := mustSnapshot(t, ctx, prov, topic); got.Revision != p.Revision || !jsonEqual(got.Data, want) {
		t.Errorf("Snapshot(%q) after the caller changed its buffer = {revision %d, data %s}; want {revision %d, data %s}", topic, got.Revision, got.Data, p.Revision, want)
	}
}

// Invalid topic names are refused.
func testProvInvalidTopic(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot) {
	ctx := opContext(t)
	for _, topic := range []string{"", " ", "new\nline", "..", "bad\xff"} {
		if s, err := prov.Snapshot(ctx, topic); err == nil {
			t.Errorf("Snapshot(%q) = %+v, nil; want an error for an invalid topic", topic, s)
		}
	}
}

// A snapshot's revision and data are read together; reads never go back,
// and a read that begins after a put sees it.
func testProvConcurrent(t *testing.T, prov statesync.Provider, put func(string, json.RawMessage) statesync.Snapshot) {
	ctx := opContext(t)
	topic := newTopic(t, "concurrent")
	const readers, writes = 4, 30
	type obs struct {
		rev  statesync.Revision
		data []byte
	}
	seen := make([][]obs, readers)
	reads := make([]atomic.Int64, readers)
	var sig signal
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for {
				s, err := prov.Snapshot(ctx, topic)
				if err != nil {
					t.Errorf("reader %d: Snapshot(%q) error: %v", r, topic, err)
					return
				}
				seen[r] = append(seen[r], obs{s.Revision, slices.Clone([]byte(s.Data))})
				reads[r].Add(1)
				sig.fire()
				select {
				case <-done:
					return
				default:
					runtime.Gosched() // let the writer in
				}
			}
		})
	}
	// readAfter waits until every reader has completed a read that began
	// after this call, so that reads and writes really interleave.
	readAfter := func() bool {
		var base [readers]int64
		for r := range readers {
			base[r] = reads[r].Load()
		}
		return waitFor(t, &sig, "readers to read", func() bool {
			for r := range readers {
				if reads[r].Load() < base[r]+2 {
					return false
				}
			}
			return true
		}, nil)
	}
	committed := map[statesync.Revision][]byte{0: []byte("null")}
	var last statesync.Snapshot
	for i := range writes {
		last = put(topic, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
		committed[last.Revision] = last.Data
		if !readAfter() {
			break
		}
	}
	close(done)
	wg.Wait()
	for r, os := range seen {
		if n := len(os); n > 0 && os[n-1].rev != last.Revision {
			t.Errorf("reader %d: last Snapshot(%q), begun after the last put, = revision %d; want %d", r, topic, os[n-1].rev, last.Revision)
		}
	}
	for r, os := range seen {
		for i, o := range os {
			if i > 0 && o.rev < os[i-1].rev {
				t.Errorf("reader %d: Snapshot(%q) revision went from %d to %d; want never backwards", r, topic, os[i-1].rev, o.rev)
				break
			}
			want, ok := committed[o.rev]
			if !ok {
				t.Errorf("reader %d: Snapshot(%q) returned revision %d, which no put committed", r, topic, o.rev)
				break
			}
			if !jsonEqual(o.data, want) {
				t.Errorf("reader %d: Snapshot(%q) at revision %d has data %s; want %s, committed at that revision", r, topic, o.rev, o.data, want)
				break
			}
		}
	}
}

// A Transport is what [TestTransport] needs of a transport: a Subscriber
// and a Provider on the same source of truth, and a way to write to it.
type Transport struct {
	Subscriber statesync.Subscriber
	Provider   statesync.Provider
	// Put writes data (nil means null) to topic at the source of truth,
	// which notifies the subscribers, and returns the committed snapshot.
	// It must fail the test itself on error. The suite calls it from one
	// goroutine at a time.
	Put func(topic string, data json.RawMessage) statesync.Snapshot
}

// TestTransport checks that [statesync.Consumer] handles built on the
// transports made by newTransport converge, in subtests:
//
//   - several consumers on two topics follow a stream of writes and end at
//     the last one, with its data, having applied strictly increasing
//     revisions (checked with a [History]), and with no error reported;
//   - a consumer started after writes applies the latest state at start;
//   - a stopped consumer applies nothing more while the others go on.
//
// newTransport is called once per subtest and must register its own
// cleanup.
func TestTransport(t *testing.T, newTransport func(t *testing.T) Transport) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, tr Transport)
	}{
		{"Converge", testTransportConverge},
		{"LateJoin", testTransportLateJoin},
		{"StopEndsApplies", testTransportStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(t)
			if tr.Subscriber == nil || tr.Provider == nil || tr.Put == nil {
				t.Fatal("newTransport returned a Transport with a nil field")
			}
			tt.f(t, tr)
		})
	}
}

// errSink collects the errors consumers report.
type errSink struct {
	mu   sync.Mutex
	errs []*statesync.Error
}

func (s *errSink) add(e *statesync.Error) {
	s.mu.Lock()
	s.errs = append(s.errs, e)
	s.mu.Unlock()
}

func (s *errSink) check(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Errorf("consumer reported an error: %v", e)
	}
}

// startConsumer starts a consumer of topic over tr, recording into h under
// name; it is stopped and waited for at cleanup.
func startConsumer(t testing.TB, tr Transport, topic, name string, h *History, errs *errSink) *statesync.Consumer {
	t.Helper()
	c, err := statesync.NewConsumer(topic, tr.Subscriber, tr.Provider, h.Applier(name, nil), &statesync.ConsumerOptions{OnError: errs.add})
	if err != nil {
		t.Fatalf("NewConsumer(%q) error: %v", topic, err)
	}
	t.Cleanup(func() {
		c.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := c.Wait(ctx); err != nil {
			t.Errorf("consumer %s: Wait after Stop: %v", name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("consumer %s: Start error: %v", name, err)
	}
	return c
}

// waitConverged waits until every handle of h applied want.
func waitConverged(t testing.TB, h *History, what string, want statesync.Snapshot) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.WaitConverged(ctx, want.Revision, want.Epoch); err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	for _, name := range h.activeNames() {
		if last, ok := h.Last(name); ok && !jsonEqual(last.Data, want.Data) {
			t.Errorf("%s: handle %s last applied data %s; want %s", what, name, last.Data, want.Data)
		}
	}
	return true
}

// Consumers converge on the last write.
func testTransportConverge(t *testing.T, tr Transport) {
	ta, tb := newTopic(t, "conv-a"), newTopic(t, "conv-b")
	ha, hb := NewHistory(), NewHistory()
	var errs errSink
	for i := range 4 {
		startConsumer(t, tr, ta, fmt.Sprintf("a%d", i), ha, &errs)
	}
	for i := range 2 {
		startConsumer(t, tr, tb, fmt.Sprintf("b%d", i), hb, &errs)
	}
	var lastA, lastB statesync.Snapshot
	for i := range 60 {
		if i%3 == 2 {
			lastB = tr.Put(tb, json.RawMessage(fmt.Sprintf(`%d`, i)))
		} else {
			lastA = tr.Put(ta, json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
		}
	}
	waitConverged(t, ha, "topic a", lastA)
	waitConverged(t, hb, "topic b", lastB)
	ha.Check(t)
	hb.Check(t)
	errs.check(t)
}

// A late joiner applies the current state at start.
func testTransportLateJoin(t *testing.T, tr Transport) {
	topic := newTopic(t, "late")
	var last statesync.Snapshot
	for i := range 5 {
		last = tr.Put(topic, json.RawMessage(fmt.Sprintf(`"v%d"`, i+1)))
	}
	h := NewHistory()
	var errs errSink
	c := startConsumer(t, tr, topic, "late", h, &errs)
	if c.Revision() != last.Revision {
		t.Errorf("Revision() after Start = %d; want %d, the last write's", c.Revision(), last.Revision)
	}
	applies := h.Applies("late")
	if len(applies) != 1 || applies[0].Revision != last.Revision || !jsonEqual(applies[0].Data, last.Data) {
		t.Errorf("late joiner applied %+v; want exactly one apply at revision %d with data %s", applies, last.Revision, last.Data)
	}
	errs.check(t)
}

// A stopped consumer applies nothing; the others go on.
func testTransportStop(t *testing.T, tr Transport) {
	topic := newTopic(t, "stop")
	h := NewHistory()
	var errs errSink
	stopped := startConsumer(t, tr, topic, "stopped", h, &errs)
	startConsumer(t, tr, topic, "running", h, &errs)
	first := tr.Put(topic, json.RawMessage(`1`))
	waitConverged(t, h, "before stop", first)

	stopped.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := stopped.Wait(ctx); err != nil {
		t.Fatalf("Wait after Stop: %v", err)
	}
	h.Retire("stopped")
	before := len(h.Applies("stopped"))
	var last statesync.Snapshot
	for i := range 3 {
		last = tr.Put(topic, json.RawMessage(fmt.Sprintf(`%d`, i+2)))
	}
	waitConverged(t, h, "after stop", last)
	if n := len(h.Applies("stopped")); n != before {
		t.Errorf("stopped consumer applied %d snapshots after Stop; want 0", n-before)
	}
	h.Check(t)
	errs.check(t)
}
