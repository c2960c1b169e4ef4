package statesync_test

// Tests of what Stop waits for (issue 15): once Stop returns, the applier
// and OnError are not running and never called again, except that a Stop
// called from inside one of them does not wait.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/statesync-go/statesync"
)

// B-LIFE-15: a Stop that comes after a snapshot passed the revision gate
// but before the applier is called does not return before that applier
// call (it used to return at once, and the applier ran after it).
func TestEngineStopBetweenGateAndApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		gated, release := make(chan struct{}), make(chan struct{})
		statesync.SetGateHook(e.c, func() {
			close(gated)
			<-release
		})
		var stopReturned atomic.Bool
		var lateCalls atomic.Int32
		e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			if stopReturned.Load() {
				lateCalls.Add(1)
			}
			return nil
		})
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		<-gated // the refresh passed the gate and waits before the applier

		stopDone := make(chan struct{})
		go func() {
			e.c.Stop()
			stopReturned.Store(true)
			close(stopDone)
		}()
		synctest.Wait() // Stop ran as far as it goes without the applier
		select {
		case <-stopDone:
			t.Errorf("Stop returned between the gate and the applier call; want it to wait for the call")
		default:
		}
		close(release)
		<-stopDone
		synctest.Wait()
		if n := lateCalls.Load(); n != 0 {
			t.Errorf("applier calls begun after Stop returned = %d; want 0", n)
		}
		if n := e.app.count(); n != 2 {
			t.Errorf("applier calls = %d; want 2 (the initial one and the one that passed the gate)", n)
		}
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1 (not adopted after Stop)", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-LIFE-15, B-LIFE-25: Stop cancels the applier's context, then waits for
// the call in progress, even one that ignores its context.
func TestEngineStopWaitsForApplier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		entered, release := make(chan struct{}), make(chan struct{})
		var running atomic.Bool
		ctxErr := make(chan error, 1)
		e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			running.Store(true)
			defer running.Store(false)
			close(entered)
			<-release // ignores ctx
			ctxErr <- ctx.Err()
			return nil
		})
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		<-entered
		stopDone := make(chan struct{})
		go func() {
			e.c.Stop()
			if running.Load() {
				t.Errorf("Stop returned while the applier ran")
			}
			close(stopDone)
		}()
		synctest.Wait()
		select {
		case <-stopDone:
			t.Errorf("Stop returned while the applier ran; want it to wait")
		default:
		}
		close(release)
		<-stopDone
		if err := <-ctxErr; !errors.Is(err, context.Canceled) {
			t.Errorf("applier ctx.Err() after Stop = %v; want %v", err, context.Canceled)
		}
		e.c.Stop() // idempotent, and nothing left to wait for
	})
}

// B-LIFE-13: Stop called from inside the applier returns at once (it cannot
// wait for the call it is part of), and the applier is not called again.
func TestEngineStopFromApplier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			e.c.Stop()
			e.c.Stop()
			return nil
		})
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		synctest.Wait()
		e.prov.set(3, `"v3"`)
		e.sub.send(engInv(3))
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Errorf("Refresh() after Stop = %v; want nil", err)
		}
		synctest.Wait()
		if n := e.app.count(); n != 2 {
			t.Errorf("applier calls = %d; want 2", n)
		}
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1", got)
		}
	})
}

// Stop called from inside another consumer's applier does not wait for
// this consumer's applier either: here that applier waits for the other
// one, so waiting would deadlock.
func TestEngineStopFromAnotherApplier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newEngEnv(t, nil)
		b.start(t)
		a := newEngEnv(t, nil)
		a.start(t)

		bEntered, aDone := make(chan struct{}), make(chan struct{})
		b.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			close(bEntered)
			<-aDone
			return nil
		})
		a.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
			b.c.Stop()
			close(aDone)
			return nil
		})
		b.prov.set(2, `"v2"`)
		b.sub.send(engInv(2))
		<-bEntered
		a.prov.set(2, `"v2"`)
		a.sub.send(engInv(2))
		synctest.Wait()
		select {
		case <-aDone:
		default:
			t.Fatalf("B.Stop() from A's applier did not return")
		}
		if got := a.c.Revision(); got != 2 {
			t.Errorf("A.Revision() = %v; want 2", got)
		}
		if got := b.c.Revision(); got != 1 {
			t.Errorf("B.Revision() = %v; want 1 (stopped during the apply)", got)
		}
	})
}

// B-LIFE-17: Stop waits for an OnError call in progress, and OnError is not
// called after Stop returns; Stop from inside OnError does not wait.
func TestEngineStopWaitsForOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		entered, release := make(chan struct{}), make(chan struct{})
		var running atomic.Bool
		e.errs.mu.Lock()
		e.errs.hook = func(*statesync.Error) {
			running.Store(true)
			defer running.Store(false)
			close(entered)
			<-release
			e.c.Stop() // from inside: returns at once
		}
		e.errs.mu.Unlock()
		e.prov.setErr(errors.New("boom"))
		e.sub.send(engInv(2))
		<-entered
		stopDone := make(chan struct{})
		go func() {
			e.c.Stop()
			if running.Load() {
				t.Errorf("Stop returned while OnError ran")
			}
			close(stopDone)
		}()
		synctest.Wait()
		select {
		case <-stopDone:
			t.Errorf("Stop returned while OnError ran; want it to wait")
		default:
		}
		close(release)
		<-stopDone
		if n := e.errs.count(); n != 1 {
			t.Errorf("errors reported = %d; want 1", n)
		}
	})
}
