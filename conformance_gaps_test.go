package statesync_test

// Tests for behaviour ids that docs/CONFORMANCE.md found without a pinning
// test. They use the fakes of consumer_test.go.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// B-PROTO-16: NewConsumer rejects a topic that is not a valid name with
// ErrInvalidTopic (one that is empty after trimming, as the TypeScript core
// refuses, and the others CheckTopic refuses) but takes " test" and "a b",
// as the TypeScript core does; it rejects a nil Subscriber, Provider or Applier with
// ErrMissingDependency, before any I/O.
func TestConformanceNewConsumerValidates(t *testing.T) {
	sub, prov, app := &engSub{}, &engProvider{}, &engApplier{}
	for _, topic := range []string{"", "   ", "\u00a0\t", "a\nb", "..", "\xff", strings.Repeat("a", statesync.MaxTopicLen+1)} {
		c, err := statesync.NewConsumer(topic, sub, prov, app, nil)
		if !errors.Is(err, statesync.ErrInvalidTopic) || c != nil {
			t.Errorf("NewConsumer(%q) = %v, %v; want nil, ErrInvalidTopic", topic, c, err)
		}
	}
	for _, topic := range []string{" test", "test ", "a b", "settings/ui", "café"} {
		if _, err := statesync.NewConsumer(topic, sub, prov, app, nil); err != nil {
			t.Errorf("NewConsumer(%q) = %v; want a consumer", topic, err)
		}
	}
	for _, tc := range []struct {
		name string
		sub  statesync.Subscriber
		prov statesync.Provider
		app  statesync.Applier
	}{
		{"Subscriber", nil, prov, app},
		{"Provider", sub, nil, app},
		{"Applier", sub, prov, nil},
	} {
		c, err := statesync.NewConsumer(engTopic, tc.sub, tc.prov, tc.app, nil)
		if !errors.Is(err, statesync.ErrMissingDependency) || c != nil {
			t.Errorf("NewConsumer(nil %s) = %v, %v; want nil, ErrMissingDependency", tc.name, c, err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.name) {
			t.Errorf("NewConsumer(nil %s) error = %q; want it to name the %s", tc.name, err, tc.name)
		}
	}
	if subs, _ := sub.counts(); subs != 0 || prov.count() != 0 || app.count() != 0 {
		t.Errorf("calls after failed NewConsumer: subscribe %d, provider %d, applier %d; want none", subs, prov.count(), app.count())
	}
}

// B-PROTO-09 (with the Go change of B-PROTO-10): an event is checked in the
// order stopped → topic validity → topic match → revision validity → gate →
// ShouldRefresh → trigger. Each step is observed by an event that would fail
// a later step too.
func TestConformanceEventCheckOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var filtered []statesync.Revision
		e := newEngEnv(t, &statesync.ConsumerOptions{ShouldRefresh: func(inv statesync.Invalidation) bool {
			mu.Lock()
			defer mu.Unlock()
			filtered = append(filtered, inv.Revision)
			return inv.SourceID != "me"
		}})
		e.start(t)
		filterCalls := func() []statesync.Revision {
			mu.Lock()
			defer mu.Unlock()
			return append([]statesync.Revision(nil), filtered...)
		}

		// Topic validity before revision validity: an empty topic with a bad
		// revision is reported for its topic.
		e.c.InvalidateRaw([]byte(`{"topic":"  ","revision":"01"}`))
		e.c.InvalidateRaw([]byte(`{"topic":5,"revision":"01"}`))
		errs := e.errs.all()
		if len(errs) != 2 {
			t.Fatalf("errors reported for bad topics = %v; want 2", errs)
		}
		for _, se := range errs {
			if se.Phase != statesync.PhaseProtocol || !errors.Is(se, statesync.ErrInvalidPayload) || errors.Is(se, statesync.ErrNonCanonicalRevision) {
				t.Errorf("reported %v (phase %s); want a protocol error about the topic, not the revision", se, se.Phase)
			}
		}
		if !strings.Contains(errs[0].Error(), "empty topic") {
			t.Errorf("error for a blank topic = %q; want it to mention the empty topic", errs[0])
		}

		// Topic match before revision validity (B-PROTO-10): silent.
		e.c.InvalidateRaw([]byte(`{"topic":"other","revision":"01"}`))
		if n := e.errs.count(); n != 2 {
			t.Errorf("errors after a bad event of another topic = %d; want still 2", n)
		}

		// Revision validity before the gate: "00" is reported, not gated.
		e.c.InvalidateRaw([]byte(`{"topic":"test","revision":"00"}`))
		errs = e.errs.all()
		if len(errs) != 3 || !errors.Is(errs[2], statesync.ErrNonCanonicalRevision) {
			t.Errorf("errors after revision 00 = %v; want a third, wrapping ErrNonCanonicalRevision", errs)
		}

		// The gate before ShouldRefresh: a not-newer event never reaches it.
		e.c.Invalidate(statesync.Invalidation{Topic: engTopic, Revision: 1})
		if got := filterCalls(); len(got) != 0 {
			t.Errorf("ShouldRefresh saw %v for a not-newer event; want no call", got)
		}

		// ShouldRefresh before the trigger: false costs no fetch, true does.
		e.prov.set(2, `"v2"`)
		e.c.Invalidate(statesync.Invalidation{Topic: engTopic, Revision: 2, SourceID: "me"})
		synctest.Wait()
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls after a filtered event = %d; want 1", n)
		}
		e.c.Invalidate(statesync.Invalidation{Topic: engTopic, Revision: 2, SourceID: "other"})
		synctest.Wait()
		if n := e.prov.count(); n != 2 {
			t.Errorf("provider calls after a passing event = %d; want 2", n)
		}
		if got := filterCalls(); len(got) != 2 {
			t.Errorf("ShouldRefresh calls = %v; want 2", got)
		}

		// Stopped comes first: nothing after Stop is checked at all.
		e.c.Stop()
		e.c.InvalidateRaw([]byte(`{"topic":"  ","revision":"01"}`))
		e.c.Invalidate(statesync.Invalidation{Topic: engTopic, Revision: 9})
		synctest.Wait()
		if n := e.errs.count(); n != 3 {
			t.Errorf("errors after Stop = %d; want still 3", n)
		}
		if got := filterCalls(); len(got) != 2 {
			t.Errorf("ShouldRefresh calls after Stop = %v; want still 2", got)
		}
	})
}

// B-PROTO-15: the engine matches topics exactly (case-sensitive, no
// trimming): " test", "test ", "Test" are other topics, dropped silently.
func TestConformanceTopicMatchIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.set(2, `"v2"`)
		for _, topic := range []string{" test", "test ", "Test", "TEST", "test\t"} {
			e.c.Invalidate(statesync.Invalidation{Topic: topic, Revision: 2})
			e.c.InvalidateRaw([]byte(`{"topic":"` + strings.ReplaceAll(topic, "\t", `\t`) + `","revision":"2"}`))
		}
		synctest.Wait()
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls after events for near-miss topics = %d; want 1", n)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
		e.c.Invalidate(engInv(2))
		synctest.Wait()
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() after an event for %q = %v; want 2", engTopic, got)
		}
	})
}

// B-LIFE-10, B-THR-19: when Subscribe fails, Start disposes the scheduler
// it made: an event the subscriber delivered before failing, debounced,
// never fires.
func TestConformanceSubscribeFailureDisposesScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		subErr := errors.New("transport down")
		prov, app, errs := &engProvider{}, &engApplier{}, &engErrs{}
		prov.set(2, `"v2"`)
		sub := statesync.SubscriberFunc(func(ctx context.Context, topic string, h statesync.InvalidationHandler) (func(), error) {
			h.Invalidate(statesync.Invalidation{Topic: topic, Revision: 2}) // debounced until 100 ms
			return nil, subErr
		})
		c := newEngConsumer(t, engTopic, sub, prov, app, &statesync.ConsumerOptions{
			Throttle: statesync.Throttle{Debounce: 100 * time.Millisecond}, OnError: errs.onError})
		if err := c.Start(context.Background()); !errors.Is(err, subErr) {
			t.Fatalf("Start() = %v; want %v", err, subErr)
		}
		time.Sleep(time.Second)
		if n := prov.count(); n != 0 {
			t.Errorf("provider calls = %d; want 0 (the debounced event died with the failed Start)", n)
		}
		if got := errs.phases(); len(got) != 1 || got[0] != statesync.PhaseSubscribe {
			t.Errorf("reported phases = %v; want [subscribe]", got)
		}
	})
}
