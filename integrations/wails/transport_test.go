package wailssync_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/integrations/wails"
)

// fakeListener is a Listener recording its calls; Deliver plays an event.
type fakeListener struct {
	err error // returned by Listen if set

	mu        sync.Mutex
	events    []string
	fns       map[string][]func(json.RawMessage)
	unlistens int
}

func (l *fakeListener) Listen(_ context.Context, event string, fn func(json.RawMessage)) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, event)
	if l.err != nil {
		return nil, l.err
	}
	if l.fns == nil {
		l.fns = make(map[string][]func(json.RawMessage))
	}
	l.fns[event] = append(l.fns[event], fn)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.unlistens++
		delete(l.fns, event)
	}, nil
}

func (l *fakeListener) Deliver(event string, payload string) {
	l.mu.Lock()
	fns := slices.Clone(l.fns[event])
	l.mu.Unlock()
	for _, fn := range fns {
		fn(json.RawMessage(payload))
	}
}

// rawHandler records what a Subscriber hands the engine.
type rawHandler struct {
	mu  sync.Mutex
	raw []string
}

func (h *rawHandler) Invalidate(statesync.Invalidation) { panic("unexpected decoded invalidation") }
func (h *rawHandler) InvalidateRaw(p []byte) {
	h.mu.Lock()
	h.raw = append(h.raw, string(p))
	h.mu.Unlock()
}

// B-TRANS-01: Subscribe listens exactly once on the configured event and
// forwards every payload unchanged, garbage included; the unlisten is
// handed back.
// B-TRANS-02: calling it calls the transport's unlisten, and nothing is
// delivered afterwards, even by a late Listener.
func TestSubscriberForwardsUnchanged(t *testing.T) {
	l := &fakeListener{}
	sub := wailssync.NewSubscriber(l, "statesync:invalidation")
	h := &rawHandler{}
	unsub, err := sub.Subscribe(context.Background(), "settings", h)
	if err != nil {
		t.Fatalf("Subscribe = %v; want nil", err)
	}
	if !reflect.DeepEqual(l.events, []string{"statesync:invalidation"}) {
		t.Errorf("Listen events = %q; want one call on statesync:invalidation", l.events)
	}
	payloads := []string{`{"garbage":true}`, `{"topic":"settings","revision":"5"}`, `{"topic":"other","revision":"1"}`, `not json`}
	for _, p := range payloads {
		l.Deliver("statesync:invalidation", p)
	}
	l.Deliver("unrelated", `{"topic":"settings","revision":"9"}`)
	if !reflect.DeepEqual(h.raw, payloads) {
		t.Errorf("handler got %q; want %q", h.raw, payloads)
	}

	l.mu.Lock()
	late := l.fns["statesync:invalidation"][0]
	l.mu.Unlock()
	unsub()
	unsub()
	if l.unlistens != 1 {
		t.Errorf("unlisten calls = %d; want 1", l.unlistens)
	}
	late(json.RawMessage(`{"topic":"settings","revision":"6"}`))
	l.Deliver("statesync:invalidation", `{"topic":"settings","revision":"7"}`)
	if len(h.raw) != len(payloads) {
		t.Errorf("handler got %d payloads after unsubscribe; want none", len(h.raw)-len(payloads))
	}
}

// recordingInvoker records its calls and returns result or err.
type recordingInvoker struct {
	mu       sync.Mutex
	commands []string
	args     []map[string]any
	result   string
	err      error
}

func (i *recordingInvoker) Invoke(_ context.Context, command string, args map[string]any) (json.RawMessage, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.commands = append(i.commands, command)
	i.args = append(i.args, args)
	if i.err != nil {
		return nil, i.err
	}
	return json.RawMessage(i.result), nil
}

func (i *recordingInvoker) set(result string) {
	i.mu.Lock()
	i.result = result
	i.mu.Unlock()
}

// B-TRANS-03: the provider invokes the command with args exactly as
// configured (or none) and returns the result unmodified.
// B-TRANS-07: it decodes the {revision, data} envelope.
func TestProviderInvokesWithArgs(t *testing.T) {
	for _, args := range []map[string]any{{"topic": "settings", "windowId": "main", "extra": 42}, nil} {
		inv := &recordingInvoker{result: `{"revision":"1","data":{"ok":true}}`}
		p := wailssync.NewProvider(inv, "GetSnapshot", args)
		s, err := p.Snapshot(context.Background(), "settings")
		if err != nil {
			t.Fatalf("Snapshot = %v; want nil", err)
		}
		if s.Revision != 1 || string(s.Data) != `{"ok":true}` {
			t.Errorf("Snapshot = {%v %s}; want {1 {\"ok\":true}}", s.Revision, s.Data)
		}
		if !reflect.DeepEqual(inv.commands, []string{"GetSnapshot"}) {
			t.Errorf("commands = %q; want [GetSnapshot]", inv.commands)
		}
		if got := inv.args[0]; !reflect.DeepEqual(got, args) || (args != nil && reflect.ValueOf(got).Pointer() != reflect.ValueOf(args).Pointer()) {
			t.Errorf("args = %v; want the configured map %v itself", got, args)
		}
	}
}

// B-TRANS-04: errors from Listen and Invoke come back unchanged, and a
// consumer reports them with PhaseSubscribe and PhaseGetSnapshot.
func TestErrorsPropagateUnchanged(t *testing.T) {
	listenErr := errors.New("listen failed")
	invokeErr := errors.New("invoke failed")
	l := &fakeListener{err: listenErr}
	if _, err := wailssync.NewSubscriber(l, "ev").Subscribe(context.Background(), "settings", &rawHandler{}); err != listenErr {
		t.Errorf("Subscribe error = %v; want %v unchanged", err, listenErr)
	}
	inv := &recordingInvoker{err: invokeErr}
	if _, err := wailssync.NewProvider(inv, "cmd", nil).Snapshot(context.Background(), "settings"); err != invokeErr {
		t.Errorf("Snapshot error = %v; want %v unchanged", err, invokeErr)
	}

	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			l     *fakeListener
			inv   *recordingInvoker
			phase statesync.Phase
			want  error
		}{
			{"listen", &fakeListener{err: listenErr}, &recordingInvoker{result: `{"revision":"1","data":1}`}, statesync.PhaseSubscribe, listenErr},
			{"invoke", &fakeListener{}, &recordingInvoker{err: invokeErr}, statesync.PhaseGetSnapshot, invokeErr},
		} {
			var mu sync.Mutex
			var errs []*statesync.Error
			c, err := statesync.NewConsumer("settings", wailssync.NewSubscriber(tc.l, "ev"), wailssync.NewProvider(tc.inv, "cmd", nil),
				statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil }),
				&statesync.ConsumerOptions{OnError: func(e *statesync.Error) { mu.Lock(); errs = append(errs, e); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			startErr := c.Start(context.Background())
			c.Stop()
			synctest.Wait()
			if !errors.Is(startErr, tc.want) {
				t.Errorf("%s: Start = %v; want it to wrap %v", tc.name, startErr, tc.want)
			}
			mu.Lock()
			found := false
			for _, e := range errs {
				if e.Phase == tc.phase && e.Err == tc.want {
					found = true
				}
			}
			mu.Unlock()
			if !found {
				t.Errorf("%s: errors %v; want one with phase %s and Err %v unchanged", tc.name, errs, tc.phase, tc.want)
			}
		}
	})
}

// harness is a consumer built from NewSubscriber and NewProvider over the
// fakes, the Go counterpart of the Tauri sync factory (B-TRANS-05).
type harness struct {
	l   *fakeListener
	inv *recordingInvoker
	c   *statesync.Consumer

	mu      sync.Mutex
	applies []statesync.Snapshot
	errs    []*statesync.Error
}

func newHarness(t *testing.T, snapshot string) *harness {
	t.Helper()
	h := &harness{l: &fakeListener{}, inv: &recordingInvoker{result: snapshot}}
	app := statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
		h.mu.Lock()
		h.applies = append(h.applies, s)
		h.mu.Unlock()
		return nil
	})
	var err error
	h.c, err = statesync.NewConsumer("settings",
		wailssync.NewSubscriber(h.l, "statesync:invalidation"),
		wailssync.NewProvider(h.inv, "GetSnapshot", map[string]any{"topic": "settings"}),
		app, &statesync.ConsumerOptions{OnError: func(e *statesync.Error) {
			h.mu.Lock()
			h.errs = append(h.errs, e)
			h.mu.Unlock()
		}})
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	return h
}

func (h *harness) counts() (applies, protocolErrs, allErrs int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.errs {
		if e.Phase == statesync.PhaseProtocol {
			protocolErrs++
		}
	}
	return len(h.applies), protocolErrs, len(h.errs)
}

// B-TRANS-05 and B-TRANS-06 (happy path): Start applies {1, initial}; the
// event {settings, 5} leads to a second apply {5, updated}; LocalRevision
// is 5 and no error is reported.
func TestConsumerHappyPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, `{"revision":"1","data":{"v":"initial"}}`)
		if err := h.c.Start(context.Background()); err != nil {
			t.Fatalf("Start = %v; want nil", err)
		}
		defer h.c.Stop()
		h.inv.set(`{"revision":"5","data":{"v":"updated"}}`)
		h.l.Deliver("statesync:invalidation", `{"topic":"settings","revision":"5"}`)
		synctest.Wait()
		h.mu.Lock()
		var got []string
		for _, s := range h.applies {
			got = append(got, s.Revision.String()+" "+string(s.Data))
		}
		h.mu.Unlock()
		want := []string{`1 {"v":"initial"}`, `5 {"v":"updated"}`}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("applies = %q; want %q", got, want)
		}
		if r := h.c.Revision(); r != 5 {
			t.Errorf("Revision() = %v; want 5", r)
		}
		if _, _, n := h.counts(); n != 0 {
			t.Errorf("errors = %d (%v); want 0", n, h.errs)
		}
	})
}

// B-TRANS-06: a garbage payload gives exactly one protocol error and no
// apply.
func TestConsumerGarbagePayload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, `{"revision":"1","data":{"v":"initial"}}`)
		if err := h.c.Start(context.Background()); err != nil {
			t.Fatalf("Start = %v; want nil", err)
		}
		defer h.c.Stop()
		h.l.Deliver("statesync:invalidation", `{"garbage":true}`)
		synctest.Wait()
		applies, proto, all := h.counts()
		if applies != 1 {
			t.Errorf("applies = %d; want 1 (the initial one only)", applies)
		}
		if proto != 1 || all != 1 {
			t.Errorf("errors = %d, protocol errors = %d; want exactly 1 protocol error", all, proto)
		}
		if calls := len(h.inv.commands); calls != 1 {
			t.Errorf("invoke calls = %d; want 1 (garbage must not trigger a pull)", calls)
		}
	})
}

// B-TRANS-06: a snapshot with revision "01" fails Start with a
// non-canonical error, 1 protocol error and 0 applies.
func TestConsumerNonCanonicalSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, `{"revision":"01","data":{"v":"initial"}}`)
		err := h.c.Start(context.Background())
		h.c.Stop()
		synctest.Wait()
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "non-canonical") {
			t.Errorf("Start = %v; want an error containing non-canonical", err)
		}
		if !errors.Is(err, statesync.ErrNonCanonicalRevision) {
			t.Errorf("Start = %v; want it to wrap ErrNonCanonicalRevision", err)
		}
		applies, proto, _ := h.counts()
		if applies != 0 || proto != 1 {
			t.Errorf("applies = %d, protocol errors = %d; want 0 and 1", applies, proto)
		}
	})
}

// End to end over the Go side: a Bridge emits into a Listener (through the
// JSON encoding Wails uses) and serves a consumer built from NewSubscriber
// and NewProvider through its bound GetSnapshot (B-TRANS-05, B-TRANS-08).
func TestBridgeToConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newSource(t)
		l := &fakeListener{}
		emit := func(_ context.Context, event string, data ...any) {
			raw, err := json.Marshal(data[0])
			if err != nil {
				t.Errorf("Marshal(%v) = %v", data[0], err)
				return
			}
			l.Deliver(event, string(raw))
		}
		b := wailssync.NewBridge(src, emit, &wailssync.Options{Context: context.Background()})
		defer b.Close()
		inv := wailssync.InvokerFunc(func(_ context.Context, _ string, args map[string]any) (json.RawMessage, error) {
			s, err := b.API().GetSnapshot(args["topic"].(string))
			if err != nil {
				return nil, err
			}
			return json.Marshal(s)
		})
		var mu sync.Mutex
		var applied []string
		c, err := statesync.NewConsumer("settings", wailssync.NewSubscriber(l, b.Event()),
			wailssync.NewProvider(inv, "GetSnapshot", map[string]any{"topic": "settings"}),
			statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
				mu.Lock()
				applied = append(applied, string(s.Data))
				mu.Unlock()
				return nil
			}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put("settings", json.RawMessage(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatalf("Start = %v", err)
		}
		defer c.Stop()
		if _, err := b.Patch("settings", json.RawMessage(`{"n":2}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Put(context.Background(), "other", json.RawMessage(`0`)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if want := []string{`{"n":1}`, `{"n":2}`}; !reflect.DeepEqual(applied, want) {
			t.Errorf("applied = %q; want %q", applied, want)
		}
		if r := c.Revision(); r != 2 {
			t.Errorf("Revision() = %v; want 2", r)
		}
	})
}
