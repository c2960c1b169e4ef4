package koanfsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	kjson "github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/v2"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	koanfsync "github.com/statesync-go/statesync/integrations/koanf"
	"github.com/statesync-go/statesync/memsync"
	"go.uber.org/goleak"
)

// server starts a loopback statesync HTTP server over an in-memory source
// and returns a client of it; everything is closed at the end of the test.
func server(t testing.TB) *httpsync.Client {
	t.Helper()
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := httpsync.NewHandler(src, nil)
	srv := httptest.NewServer(h)
	c, err := httpsync.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		h.Close()
		srv.Close()
		src.Close()
	})
	return c
}

func put(t testing.TB, c *httpsync.Client, topic, data string) statesync.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := c.Put(ctx, topic, json.RawMessage(data))
	if err != nil {
		t.Fatalf("Put(%q, %s) = %v", topic, data, err)
	}
	return snap
}

func load(t testing.TB, p *koanfsync.Provider) *koanf.Koanf {
	t.Helper()
	k := koanf.New(".")
	if err := k.Load(p, kjson.Parser()); err != nil {
		t.Fatalf("Load(%q) = %v", p.Topic(), err)
	}
	return k
}

// watcher records the callbacks of a watch and reloads a koanf instance on
// each, swapping it atomically: the documented hot-reload pattern.
type watcher struct {
	p     *koanfsync.Provider
	cfg   atomic.Pointer[koanf.Koanf]
	calls atomic.Int64
	errs  chan error    // errors given to the callback
	fired chan struct{} // one send per successful reload
}

func newWatcher(p *koanfsync.Provider, k *koanf.Koanf) *watcher {
	w := &watcher{p: p, errs: make(chan error, 16), fired: make(chan struct{}, 16)}
	w.cfg.Store(k)
	return w
}

func (w *watcher) callback(event any, err error) {
	w.calls.Add(1)
	if event != nil {
		err = errors.Join(err, errors.New("unexpected event value"))
	}
	if err != nil {
		w.errs <- err
		return
	}
	k := koanf.New(".")
	if err := k.Load(w.p, kjson.Parser()); err != nil {
		w.errs <- err
		return
	}
	w.cfg.Store(k)
	w.fired <- struct{}{}
}

// waitFor waits, up to a deadline, for the callback to reload a
// configuration in which key has value want.
func (w *watcher) waitFor(t testing.TB, key, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for w.cfg.Load().String(key) != want {
		select {
		case <-w.fired:
		case err := <-w.errs:
			t.Fatalf("watch callback error: %v", err)
		case <-deadline:
			t.Fatalf("String(%q) = %q; want %q before the deadline", key, w.cfg.Load().String(key), want)
		}
	}
}

// A PUT on the topic changes the configuration seen through koanf once the
// watch callback has fired (B-GATE-05: a newer snapshot is applied on
// invalidation), over a real HTTP server.
func TestPutChangesKoanfConfig(t *testing.T) {
	c := server(t)
	put(t, c, "settings", `{"theme":"light","limits":{"max":3}}`)
	p, err := koanfsync.New(c, "settings", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	k := load(t, p)
	if got := k.String("theme"); got != "light" {
		t.Fatalf("String(%q) = %q; want %q", "theme", got, "light")
	}
	if got := k.Int("limits.max"); got != 3 {
		t.Fatalf("Int(%q) = %d; want %d", "limits.max", got, 3)
	}

	w := newWatcher(p, k)
	if err := p.Watch(w.callback); err != nil {
		t.Fatalf("Watch = %v", err)
	}
	// B-LIFE-03/B-GATE-03: Watch returns after the initial snapshot, which is
	// the one already loaded, so the callback has not fired.
	if n := w.calls.Load(); n != 0 {
		t.Fatalf("callbacks after Watch = %d; want 0", n)
	}

	snap := put(t, c, "settings", `{"theme":"dark","limits":{"max":5},"beta":true}`)
	w.waitFor(t, "theme", "dark")
	k = w.cfg.Load()
	if got := k.Int("limits.max"); got != 5 {
		t.Fatalf("Int(%q) = %d; want %d", "limits.max", got, 5)
	}
	if !k.Bool("beta") {
		t.Fatalf("Bool(%q) = false; want true", "beta")
	}
	if got := p.Revision(); got != snap.Revision {
		t.Fatalf("Revision() = %d; want %d", got, snap.Revision)
	}

	// Read (nil parser) sees the same configuration.
	k2 := koanf.New(".")
	if err := k2.Load(p, nil); err != nil {
		t.Fatalf("Load(nil parser) = %v", err)
	}
	if got := k2.String("theme"); got != "dark" {
		t.Fatalf("String(%q) = %q; want %q", "theme", got, "dark")
	}

	// A key removed by a later PUT disappears: each reload replaces the
	// configuration whole.
	put(t, c, "settings", `{"theme":"solarized"}`)
	w.waitFor(t, "theme", "solarized")
	if w.cfg.Load().Exists("beta") {
		t.Fatalf("Exists(%q) = true; want false after a PUT without it", "beta")
	}
}

// Without a prior Load, Watch calls back for the initial snapshot, which is
// new to the provider (B-LIFE-04).
func TestWatchWithoutLoadCallsBack(t *testing.T) {
	c := server(t)
	put(t, c, "svc", `{"port":8080}`)
	p, err := koanfsync.New(c, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := newWatcher(p, koanf.New("."))
	if err := p.Watch(w.callback); err != nil {
		t.Fatalf("Watch = %v", err)
	}
	if n := w.calls.Load(); n != 1 {
		t.Fatalf("callbacks after Watch = %d; want 1", n)
	}
	if got := w.cfg.Load().Int("port"); got != 8080 {
		t.Fatalf("Int(%q) = %d; want %d", "port", got, 8080)
	}
	if err := p.Watch(w.callback); !errors.Is(err, koanfsync.ErrWatching) {
		t.Fatalf("second Watch = %v; want ErrWatching", err)
	}
}

// A topic that does not hold a JSON object gives a clear error wrapping
// ErrNotObject, naming the topic and what it holds.
func TestNotObject(t *testing.T) {
	c := server(t)
	for _, tc := range []struct {
		topic, data, kind string
	}{
		{"arr", `[1,2]`, "an array"},
		{"str", `"x"`, "a string"},
		{"num", `42`, "a number"},
		{"bool", `true`, "a boolean"},
		{"nul", `null`, "null"},
		{"never-written", ``, "null"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			if tc.data != "" {
				put(t, c, tc.topic, tc.data)
			}
			p, err := koanfsync.New(c, tc.topic, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, err = p.ReadBytes()
			if !errors.Is(err, koanfsync.ErrNotObject) {
				t.Fatalf("ReadBytes(%q) = %v; want ErrNotObject", tc.topic, err)
			}
			for _, part := range []string{tc.topic, tc.kind} {
				if !strings.Contains(err.Error(), part) {
					t.Fatalf("ReadBytes(%q) error %q does not mention %q", tc.topic, err, part)
				}
			}
			if err := koanf.New(".").Load(p, nil); !errors.Is(err, koanfsync.ErrNotObject) {
				t.Fatalf("Load(%q, nil parser) = %v; want ErrNotObject", tc.topic, err)
			}
		})
	}
}

// NullAsEmpty reads a null topic as an empty configuration.
func TestNullAsEmpty(t *testing.T) {
	c := server(t)
	p, err := koanfsync.New(c, "fresh", &koanfsync.Options{NullAsEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m, err := p.Read()
	if err != nil || len(m) != 0 {
		t.Fatalf("Read() = %v, %v; want empty map, nil", m, err)
	}
	if _, err := koanfsync.New(c, "bad\ntopic", nil); !errors.Is(err, statesync.ErrInvalidTopic) {
		t.Fatalf("New(%q) = %v; want ErrInvalidTopic", "bad\ntopic", err)
	}
}

// While watching, a snapshot that is not an object is not applied: the
// callback receives the error, reads keep the last object, and a later
// object is applied again (B-GATE-04: the revision advances only after a
// successful apply).
func TestWatchNotObjectKeepsConfig(t *testing.T) {
	c := server(t)
	put(t, c, "settings", `{"theme":"light"}`)
	p, err := koanfsync.New(c, "settings", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := newWatcher(p, load(t, p))
	if err := p.Watch(w.callback); err != nil {
		t.Fatalf("Watch = %v", err)
	}
	rev := p.Revision()

	put(t, c, "settings", `["not","config"]`)
	select {
	case err := <-w.errs:
		if !errors.Is(err, koanfsync.ErrNotObject) {
			t.Fatalf("callback error = %v; want ErrNotObject", err)
		}
		var se *statesync.Error
		if !errors.As(err, &se) || se.Phase != statesync.PhaseApply {
			t.Fatalf("callback error = %#v; want a *statesync.Error of phase apply", err)
		}
	case <-w.fired:
		t.Fatal("callback reloaded a non-object snapshot")
	case <-time.After(10 * time.Second):
		t.Fatal("no callback error before the deadline")
	}
	if got := p.Revision(); got != rev {
		t.Fatalf("Revision() = %d; want %d (unchanged)", got, rev)
	}
	if got := load(t, p).String("theme"); got != "light" {
		t.Fatalf("String(%q) = %q; want %q (the last object)", "theme", got, "light")
	}

	put(t, c, "settings", `{"theme":"dark"}`)
	w.waitFor(t, "theme", "dark")
}

// Close stops the consumer and waits for its goroutines, a running callback
// included; afterwards nothing of the provider runs and reads fail with
// ErrClosed (B-LIFE-09: a stopped handle is single-use).
func TestCloseLeavesNoGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		bus := memsync.New(src)
		ctx := context.Background()
		if _, err := src.Put(ctx, "settings", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		ignore := goleak.IgnoreCurrent()

		p, err := koanfsync.New(bus, "settings", nil)
		if err != nil {
			t.Fatal(err)
		}
		load(t, p)
		entered := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		if err := p.Watch(func(any, error) {
			once.Do(func() { close(entered) })
			<-release
		}); err != nil {
			t.Fatalf("Watch = %v", err)
		}
		if _, err := src.Put(ctx, "settings", json.RawMessage(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		<-entered // the callback is running on the consumer's goroutine

		closed := make(chan error, 1)
		go func() { closed <- p.Close() }()
		synctest.Wait() // Close is blocked, or has returned
		select {
		case err := <-closed:
			t.Fatalf("Close returned %v while the callback was running", err)
		default:
		}
		close(release)
		if err := <-closed; err != nil {
			t.Fatalf("Close = %v", err)
		}
		goleak.VerifyNone(t, ignore)

		if n := bus.Subscribers("settings"); n != 0 {
			t.Fatalf("Subscribers(%q) = %d after Close; want 0", "settings", n)
		}
		if _, err := p.ReadBytes(); !errors.Is(err, statesync.ErrClosed) {
			t.Fatalf("ReadBytes after Close = %v; want ErrClosed", err)
		}
		if err := p.Watch(func(any, error) {}); !errors.Is(err, statesync.ErrClosed) {
			t.Fatalf("Watch after Close = %v; want ErrClosed", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})
}
