package statesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/statesync-go/statesync"
)

// B-GO-01: every public method is safe for concurrent use, Stop included,
// and the applied revisions still strictly increase (run under -race).
func TestEngineConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{Throttle: statesync.Throttle{Interval: time.Millisecond}})
		e.prov.setDelay(time.Millisecond)
		var next atomic.Uint64
		next.Store(1)
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				ctx := context.Background()
				for i := range 40 {
					switch (g + i) % 8 {
					case 0:
						_ = e.c.Start(ctx)
					case 1:
						r := statesync.Revision(next.Add(1))
						e.prov.set(r, `"x"`)
						e.c.Invalidate(engInv(r))
					case 2:
						e.c.InvalidateRaw(fmt.Appendf(nil, `{"topic":"test","revision":"%d"}`, next.Add(1)))
					case 3:
						_ = e.c.Refresh(ctx)
					case 4:
						_ = e.c.Offer(ctx, engSnap(statesync.Revision(next.Add(1)), `"o"`))
					case 5:
						_, _ = e.c.Revision(), e.c.Epoch()
					case 6:
						e.sub.send(engInv(statesync.Revision(next.Load())))
					case 7:
						if g == 5 && i > 30 {
							e.c.Stop()
						}
					}
					time.Sleep(100 * time.Microsecond)
				}
			})
		}
		wg.Wait()
		e.c.Stop()
		if err := e.c.Wait(context.Background()); err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		revs := e.app.revs()
		for i := 1; i < len(revs); i++ {
			if revs[i] <= revs[i-1] {
				t.Fatalf("applied revisions not strictly increasing at %d: %v", i, revs)
			}
		}
		if len(revs) == 0 {
			t.Fatal("nothing applied")
		}
		if got, last := e.c.Revision(), revs[len(revs)-1]; got != last {
			t.Errorf("Revision() = %v; want the last applied %v", got, last)
		}
	})
}

// B-GO-02: the handler returns at once, whatever the provider does: 100
// events are delivered while the provider hangs.
func TestEngineHandlerNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		release := make(chan struct{})
		e.prov.setHook(func(context.Context, int) error { <-release; return nil })
		t0 := time.Now()
		for i := range 100 {
			e.sub.send(engInv(statesync.Revision(2 + i)))
			e.sub.sendRaw(fmt.Sprintf(`{"topic":"test","revision":"%d"}`, 200+i))
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("delivering 200 events took %v; want 0", d)
		}
		synctest.Wait()
		if got := e.prov.count(); got != 2 {
			t.Errorf("provider calls = %d; want 2 (one hanging, the rest coalesced)", got)
		}
		close(release)
	})
}

// B-GO-03, B-LIFE-06: an applier may cause a write whose invalidation comes
// back synchronously, inside the apply, without deadlock; the write is
// then applied.
func TestEngineApplierWriteEchoesSynchronously(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		src, bus := newSourceBus(t)
		var err error // of the Put made by the applier
		app := &engApplier{}
		var once sync.Once
		app.hook = func(ctx context.Context, s statesync.Snapshot) error {
			once.Do(func() { _, err = src.Put(ctx, engTopic, json.RawMessage(`"from applier"`)) })
			return nil
		}
		c := newEngConsumer(t, engTopic, bus, bus, app, nil)
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start() = %v; want nil", err)
		}
		synctest.Wait()
		if err != nil {
			t.Fatalf("Put() from applier = %v", err)
		}
		if got := c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1", got)
		}
		if got := string(app.last().Data); got != `"from applier"` {
			t.Errorf("last applied data = %s; want \"from applier\"", got)
		}
	})
}

// B-GO-03, B-COAL-08: an applier may call Revision, Refresh with the ctx it
// received (which queues a refresh instead of waiting for itself) and Stop.
func TestEngineApplierMayCallConsumer(t *testing.T) {
	t.Run("refresh with its ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			results := make(chan error, 1)
			e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
				if s.Revision == 1 {
					if got := e.c.Revision(); got != 0 {
						t.Errorf("Revision() inside the first apply = %v; want 0", got)
					}
					e.prov.set(2, `"v2"`)
					results <- e.c.Refresh(ctx)
				}
				return nil
			})
			e.start(t)
			if err := <-results; err != nil {
				t.Errorf("Refresh(applier ctx) = %v; want nil", err)
			}
			synctest.Wait()
			if got := e.c.Revision(); got != 2 {
				t.Errorf("Revision() = %v; want 2 (the queued refresh ran)", got)
			}
		})
	})
	t.Run("stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
				e.c.Stop()
				if ctx.Err() == nil {
					t.Errorf("applier ctx not cancelled by Stop")
				}
				return nil
			})
			e.publish(2, `"v2"`)
			if got := e.c.Revision(); got != 1 {
				t.Errorf("Revision() = %v; want 1 (stopped during the apply)", got)
			}
			if got := e.sub.active(); got != 0 {
				t.Errorf("active subscriptions = %d; want 0", got)
			}
		})
	})
}

// B-GO-03: the provider and ShouldRefresh run without engine locks: they
// may call Revision, Refresh (ShouldRefresh, on the delivering goroutine)
// and Stop.
func TestEngineCallbacksMayCallConsumer(t *testing.T) {
	t.Run("provider stops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			e.prov.setHook(func(ctx context.Context, call int) error {
				_ = e.c.Revision()
				e.c.Stop()
				return ctx.Err()
			})
			e.sub.send(engInv(2))
			synctest.Wait()
			if n := e.errs.count(); n != 0 {
				t.Errorf("errors reported = %v; want none", e.errs.all())
			}
		})
	})
	t.Run("filter refreshes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var c *statesync.Consumer
			var filterErr error
			e := newEngEnv(t, &statesync.ConsumerOptions{ShouldRefresh: func(statesync.Invalidation) bool {
				filterErr = c.Refresh(context.Background())
				return false
			}})
			c = e.c
			e.start(t)
			e.prov.set(2, `"v2"`)
			e.sub.send(engInv(2))
			if filterErr != nil {
				t.Errorf("Refresh() from ShouldRefresh = %v; want nil", filterErr)
			}
			if got := e.c.Revision(); got != 2 {
				t.Errorf("Revision() = %v; want 2", got)
			}
		})
	})
}

// B-GO-05: Revision is consistent with the last successful apply: inside
// each apply it still reads the previous applied revision, and after it the
// new one.
func TestEngineRevisionConsistentWithApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		var prev atomic.Uint64
		var bad atomic.Int32
		e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			if e.c.Revision() != statesync.Revision(prev.Load()) {
				bad.Add(1)
			}
			prev.Store(uint64(s.Revision))
			return nil
		})
		e.start(t)
		for r := statesync.Revision(2); r < 50; r++ {
			e.prov.set(r, `"v"`)
			e.sub.send(engInv(r))
			if r%7 == 0 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		if n := bad.Load(); n != 0 {
			t.Errorf("%d applies saw a Revision() other than the previous apply's", n)
		}
		if got := e.c.Revision(); got != statesync.Revision(prev.Load()) || got != 49 {
			t.Errorf("Revision() = %v; want the last applied %v (49)", got, prev.Load())
		}
	})
}

// B-GO-06, B-LIFE-25: once Stop has returned and Wait too, no goroutine of
// the consumer is left, even with a provider blocked on its ctx, a pending
// debounce and a pending retry backoff.
func TestEngineNoGoroutineLeftAfterStopWait(t *testing.T) {
	for _, name := range []string{"provider blocked", "debounce pending", "retry backoff"} {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := &statesync.ConsumerOptions{}
			switch name {
			case "debounce pending":
				opts.Throttle = statesync.Throttle{Debounce: time.Hour}
			case "retry backoff":
				opts.Retry = &statesync.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Hour}
			}
			sub, prov, app := &engSub{}, &engProvider{}, &engApplier{}
			prov.set(1, `1`)
			c, err := statesync.NewConsumer(engTopic, sub, prov, app, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			entered := make(chan struct{}, 10)
			prov.setHook(func(ctx context.Context, call int) error {
				entered <- struct{}{}
				switch name {
				case "provider blocked":
					<-ctx.Done()
					return ctx.Err()
				case "retry backoff":
					return errors.New("down")
				}
				return nil
			})
			sub.send(engInv(2))
			if name != "debounce pending" {
				<-entered
			}
			c.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Wait(ctx); err != nil {
				t.Fatalf("Wait() = %v; want nil", err)
			}
		})
	}
}

// B-GO-06: a Wait abandoned because its ctx ended leaves no goroutine
// behind, even while a provider call that ignores cancellation hangs.
func TestEngineAbandonedWaitLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sub, prov, app := &engSub{}, &engProvider{}, &engApplier{}
	prov.set(1, `1`)
	c, err := statesync.NewConsumer(engTopic, sub, prov, app, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	prov.setHook(func(ctx context.Context, call int) error {
		close(entered)
		<-release // ignores ctx
		return nil
	})
	sub.send(engInv(2))
	<-entered
	c.Stop()
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		if err := c.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait(cancelled ctx) with a hung provider = %v; want context.Canceled", err)
		}
	}
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Errorf("goroutines after 100 abandoned Waits = %d; want about %d", after, before)
	}
	close(release)
	if err := c.Wait(context.Background()); err != nil {
		t.Fatalf("Wait() after the provider returned = %v; want nil", err)
	}
}

// B-GO-07: the caller's ctx bounds how long that caller waits; the refresh
// itself goes on, and its result is adopted.
func TestEngineCallerContextBoundsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(time.Second)
		e.prov.set(2, `"v2"`)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		if err := e.c.Refresh(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Refresh() = %v; want %v", err, context.DeadlineExceeded)
		}
		if d := time.Since(t0); d != 10*time.Millisecond {
			t.Errorf("Refresh() returned after %v; want 10ms", d)
		}
		time.Sleep(2 * time.Second)
		if got := e.c.Revision(); got != 2 {
			t.Errorf("Revision() = %v; want 2 (the refresh went on)", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-25, B-GO-07: Stop does not block on in-flight work, and callers
// waiting in Refresh, Start or Offer learn of it at once, even when the
// provider ignores its ctx.
func TestEngineStopReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		release := make(chan struct{})
		e.prov.setHook(func(context.Context, int) error { <-release; return nil })
		startErr := make(chan error, 1)
		go func() { startErr <- e.c.Start(context.Background()) }()
		synctest.Wait()
		refreshErr := make(chan error, 1)
		go func() { refreshErr <- e.c.Refresh(context.Background()) }()
		offerErr := make(chan error, 1)
		go func() { offerErr <- e.c.Offer(context.Background(), engSnap(9, `"o"`)) }()
		synctest.Wait()
		e.c.Stop()
		synctest.Wait()
		for name, ch := range map[string]chan error{"Start": startErr, "Refresh": refreshErr, "Offer": offerErr} {
			want := map[string]error{"Start": statesync.ErrStopped, "Refresh": nil, "Offer": statesync.ErrStopped}[name]
			select {
			case err := <-ch:
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Errorf("%s() after Stop = %v; want %v", name, err, want)
				}
			default:
				t.Errorf("%s() still waits for the provider after Stop", name)
			}
		}
		close(release)
		synctest.Wait()
		if got := e.app.count(); got != 0 {
			t.Errorf("applier calls = %d; want 0", got)
		}
		if subs, unsubs := e.sub.counts(); subs != 1 || unsubs != 1 {
			t.Errorf("Subscribe/unsubscribe calls = %d/%d; want 1/1", subs, unsubs)
		}
	})
}
