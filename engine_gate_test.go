package statesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
)

// ---- B-GATE ----

// B-GATE-01: an event whose revision is not newer than the local one costs
// no fetch, and is logged at debug level.
func TestEngineGateInvalidationNotNewer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
		e.start(t)
		e.sub.send(engInv(0))
		e.sub.send(engInv(1))
		synctest.Wait()
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls = %d; want 1", n)
		}
		if n := e.app.count(); n != 1 {
			t.Errorf("applier calls = %d; want 1", n)
		}
		recs := logs.find("invalidation skipped (not newer)")
		if len(recs) != 2 {
			t.Fatalf("%q records = %d; want 2", "invalidation skipped (not newer)", len(recs))
		}
		if got := recs[1].str("eventRevision"); got != "1" {
			t.Errorf("eventRevision = %s; want 1", got)
		}
		if got := recs[1].str("localRevision"); got != "1" {
			t.Errorf("localRevision = %s; want 1", got)
		}
	})
}

// B-GATE-02: before the first apply the local revision is 0: an event at 0
// is dropped, an event at 1 refreshes.
func TestEngineGateBeforeFirstApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.c.Invalidate(engInv(0))
		synctest.Wait()
		if n := e.prov.count(); n != 0 {
			t.Errorf("provider calls after event 0 = %d; want 0", n)
		}
		e.c.Invalidate(engInv(1))
		synctest.Wait()
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls after event 1 = %d; want 1", n)
		}
		if got := e.c.Revision(); got != 1 {
			t.Errorf("Revision() = %v; want 1", got)
		}
	})
}

// B-GATE-03: after the first apply, a snapshot of equal revision is skipped
// (debug log), and it is not an error.
func TestEngineGateEqualSnapshotSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
		e.start(t)
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		if n := e.app.count(); n != 1 {
			t.Errorf("applier calls = %d; want 1", n)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
		recs := logs.find("snapshot skipped (not newer)")
		if len(recs) != 1 {
			t.Fatalf("%q records = %d; want 1", "snapshot skipped (not newer)", len(recs))
		}
		if got := recs[0].str("snapshotRevision") + "/" + recs[0].str("localRevision"); got != "1/1" {
			t.Errorf("snapshotRevision/localRevision = %s; want 1/1", got)
		}
	})
}

// B-GATE-05, B-GATE-11: a newer snapshot is applied on invalidation;
// ordering is numeric (10 > 9).
func TestEngineGateNewerApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.publish(5, `"v5"`)
		if got := e.app.count(); got != 2 {
			t.Errorf("applier calls = %d; want 2", got)
		}
		if got := string(e.app.last().Data); got != `"v5"` {
			t.Errorf("last applied data = %s; want \"v5\"", got)
		}
		if got := e.c.Revision(); got != 5 {
			t.Errorf("Revision() = %v; want 5", got)
		}
		e.publish(9, `"v9"`)
		e.publish(10, `"v10"`)
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 5, 9, 10}) {
			t.Errorf("applied revisions = %v; want [1 5 9 10]", got)
		}
	})
}

// B-GATE-06, B-GO-01: under concurrent writers the revisions a consumer
// applies strictly increase and end at the source's revision.
func TestEngineGateAppliedRevisionsIncrease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		src, bus := newSourceBus(t)
		app := &engApplier{}
		c := newEngConsumer(t, engTopic, bus, bus, app, nil)
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start() = %v; want nil", err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 50 {
					if _, err := src.Put(ctx, engTopic, json.RawMessage(`1`)); err != nil {
						t.Errorf("Put() = %v", err)
					}
					time.Sleep(time.Microsecond)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		revs := app.revs()
		for i := 1; i < len(revs); i++ {
			if revs[i] <= revs[i-1] {
				t.Fatalf("applied revisions not strictly increasing at %d: %v", i, revs)
			}
		}
		cur, _ := src.Snapshot(ctx, engTopic)
		if got := c.Revision(); got != cur.Revision || got != 200 {
			t.Errorf("Revision() = %v; want %v (the source's, 200)", got, cur.Revision)
		}
	})
}

// B-GATE-07: events delivered in reverse order converge on the newest.
func TestEngineGateOutOfOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.set(3, `"v3"`)
		for _, r := range []statesync.Revision{3, 2, 1} {
			e.sub.send(engInv(r))
		}
		synctest.Wait()
		if got := string(e.app.last().Data); got != `"v3"` {
			t.Errorf("last applied data = %s; want \"v3\"", got)
		}
		if got := e.c.Revision(); got != 3 {
			t.Errorf("Revision() = %v; want 3", got)
		}
	})
}

// B-GATE-08: duplicate deliveries add no apply and at most one extra
// provider call.
func TestEngineGateDuplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.set(2, `"v2"`)
		for range 3 {
			e.sub.send(engInv(2))
		}
		synctest.Wait()
		for range 3 {
			e.sub.send(engInv(2))
		}
		synctest.Wait()
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2}) {
			t.Errorf("applied revisions = %v; want [1 2]", got)
		}
		if got := e.prov.count(); got > 3 {
			t.Errorf("provider calls = %d; want at most 3", got)
		}
	})
}

// B-GATE-08, deterministically: a duplicate that passed the gate while a
// refresh was about to apply its revision asks for no refresh once that
// refresh has applied it. Seed 303007350 of the chaos campaign found the
// window: the duplicate queued a refresh behind the one the queue had
// started meanwhile, a fourth provider call where at most three may be.
func TestEngineGateDuplicateAfterApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.set(2, `"v2"`)
		release := map[int]chan struct{}{2: make(chan struct{}), 3: make(chan struct{})}
		e.prov.setHook(func(ctx context.Context, call int) error {
			if ch := release[call]; ch != nil {
				<-ch
			}
			return nil
		})
		e.sub.send(engInv(2)) // refresh 1: provider call 2, held
		synctest.Wait()
		e.sub.send(engInv(2)) // queued
		third := true
		statesync.SetHandleHook(e.c, func() {
			if !third {
				return
			}
			third = false
			// The third duplicate has passed the gate: now refresh 1
			// applies revision 2, and the queued refresh starts
			// (provider call 3, held).
			close(release[2])
			synctest.Wait()
		})
		e.sub.send(engInv(2))
		close(release[3])
		synctest.Wait()
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2}) {
			t.Errorf("applied revisions = %v; want [1 2]", got)
		}
		if got := e.prov.count(); got != 3 {
			t.Errorf("provider calls = %d; want 3 (start, the refresh, the one queued behind it)", got)
		}
	})
}

// B-GATE-09: revision jumps are accepted.
func TestEngineGateJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.prov.set(0, `null`)
		e.start(t)
		e.publish(999, `"big"`)
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{0, 999}) {
			t.Errorf("applied revisions = %v; want [0 999]", got)
		}
	})
}

// B-GATE-10: the gate compares revisions, not data: three writes of the
// same data still move the consumer to the third revision.
func TestEngineGateRevisionNotData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		src, bus := newSourceBus(t)
		app := &engApplier{}
		c := newEngConsumer(t, engTopic, bus, bus, app, nil)
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start() = %v; want nil", err)
		}
		for range 3 {
			if _, err := src.Put(ctx, engTopic, json.RawMessage(`{"same":true}`)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		if got := c.Revision(); got != 3 {
			t.Errorf("Revision() = %v; want 3", got)
		}
		if got := app.revs(); !slices.Equal(got, []statesync.Revision{0, 1, 2, 3}) {
			t.Errorf("applied revisions = %v; want [0 1 2 3]", got)
		}
	})
}

// ---- B-GATE-12: Offer ----

// B-GATE-12: Offer runs validate → gate → apply → advance, so the writer's
// own consumer skips the echo of its write without fetching.
func TestEngineOfferSuppressesEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
		e.start(t)
		if err := e.c.Offer(context.Background(), engSnap(5, `"written"`)); err != nil {
			t.Fatalf("Offer(5) = %v; want nil", err)
		}
		if got := e.c.Revision(); got != 5 {
			t.Errorf("Revision() after Offer = %v; want 5", got)
		}
		if got := string(e.app.last().Data); got != `"written"` {
			t.Errorf("applied data = %s; want \"written\"", got)
		}
		e.sub.send(engInv(5)) // the echo of our own write
		synctest.Wait()
		if got := e.prov.count(); got != 1 {
			t.Errorf("provider calls after the echo = %d; want 1 (echo suppressed)", got)
		}
		if len(logs.find("invalidation skipped (not newer)")) != 1 {
			t.Errorf("echo not logged as %q", "invalidation skipped (not newer)")
		}
		// An equal offer is skipped, not an error.
		if err := e.c.Offer(context.Background(), engSnap(5, `"again"`)); err != nil {
			t.Errorf("Offer(5) again = %v; want nil", err)
		}
		if got := e.app.count(); got != 2 {
			t.Errorf("applier calls = %d; want 2", got)
		}
		// Someone else's write still refreshes.
		e.publish(6, `"v6"`)
		if got := e.c.Revision(); got != 6 {
			t.Errorf("Revision() = %v; want 6", got)
		}
	})
}

// B-GATE-12: Offer is serialised with refreshes: it waits for the run in
// flight and applies after it.
func TestEngineOfferWaitsForRunInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.start(t)
		e.prov.setDelay(100 * time.Millisecond)
		e.prov.set(2, `"v2"`)
		e.sub.send(engInv(2))
		t0 := time.Now()
		time.Sleep(10 * time.Millisecond)
		if err := e.c.Offer(context.Background(), engSnap(5, `"v5"`)); err != nil {
			t.Fatalf("Offer() = %v; want nil", err)
		}
		if d := time.Since(t0); d != 100*time.Millisecond {
			t.Errorf("Offer() returned at %v; want 100ms (after the run in flight)", d)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2, 5}) {
			t.Errorf("applied revisions = %v; want [1 2 5]", got)
		}
	})
}

// B-GATE-12: Offer's other outcomes: applier failure (returned and
// reported), ctx ending while it waits, before Start, after Stop, and from
// inside the applier with the applier's ctx.
func TestEngineOfferOutcomes(t *testing.T) {
	t.Run("applier error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			appErr := errors.New("apply failed")
			e.app.setErr(appErr)
			err := e.c.Offer(context.Background(), engSnap(2, `"v2"`))
			if !errors.Is(err, appErr) || asEngError(t, err).Phase != statesync.PhaseApply {
				t.Errorf("Offer() = %v; want apply error %v", err, appErr)
			}
			if got := e.errs.phases(); !slices.Equal(got, []statesync.Phase{statesync.PhaseApply}) {
				t.Errorf("reported phases = %v; want [apply]", got)
			}
			if got := e.c.Revision(); got != 1 {
				t.Errorf("Revision() = %v; want 1", got)
			}
		})
	})
	t.Run("ctx ends while waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			e.prov.setDelay(100 * time.Millisecond)
			e.sub.send(engInv(2))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			if err := e.c.Offer(ctx, engSnap(5, `"v5"`)); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Offer() = %v; want %v", err, context.DeadlineExceeded)
			}
			time.Sleep(time.Second)
			if slices.Contains(e.app.revs(), 5) {
				t.Errorf("applied revisions = %v; the abandoned offer was applied", e.app.revs())
			}
		})
	})
	t.Run("before start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			if err := e.c.Offer(context.Background(), engSnap(4, `"v4"`)); err != nil {
				t.Fatalf("Offer() = %v; want nil", err)
			}
			if got := e.c.Revision(); got != 4 {
				t.Errorf("Revision() = %v; want 4", got)
			}
			if subs, _ := e.sub.counts(); subs != 0 {
				t.Errorf("Subscribe calls = %d; want 0", subs)
			}
		})
	})
	t.Run("after stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			e.c.Stop()
			if err := e.c.Offer(context.Background(), engSnap(4, `"v4"`)); !errors.Is(err, statesync.ErrStopped) {
				t.Errorf("Offer() after Stop = %v; want %v", err, statesync.ErrStopped)
			}
			if got := e.app.count(); got != 1 {
				t.Errorf("applier calls = %d; want 1", got)
			}
		})
	})
	t.Run("from the applier", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEngEnv(t, nil)
			e.start(t)
			offered := make(chan error, 1)
			e.app.setHook(func(ctx context.Context, s statesync.Snapshot) error {
				if s.Revision == 2 {
					offered <- e.c.Offer(ctx, engSnap(7, `"v7"`))
				}
				return nil
			})
			e.prov.set(2, `"v2"`)
			e.sub.send(engInv(2))
			if err := <-offered; err != nil {
				t.Errorf("Offer() from the applier = %v; want nil", err)
			}
			synctest.Wait()
			// The nested offer applied 7; the outer apply of 2 finished last
			// and must not move the revision back.
			if got := e.c.Revision(); got != 7 {
				t.Errorf("Revision() = %v; want 7", got)
			}
		})
	})
}

// ---- epochs (DESIGN §3) and B-REV-13 ----

// DESIGN §3, B-REV-13: an invalidation from another epoch refreshes
// whatever its revision, the snapshot of the new epoch is applied whatever
// its revision, and its epoch is adopted; within the adopted epoch the
// usual gate holds again.
func TestEngineEpochChangeRefreshesAndApplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.prov.setSnap(statesync.Snapshot{Revision: 10, Epoch: "A", Data: json.RawMessage(`"a10"`)})
		e.start(t)
		if got := e.c.Epoch(); got != "A" {
			t.Fatalf("Epoch() = %q; want %q", got, "A")
		}
		// Same epoch, lower revision: no fetch.
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 3, Epoch: "A"})
		synctest.Wait()
		if n := e.prov.count(); n != 1 {
			t.Errorf("provider calls after a lower same-epoch event = %d; want 1", n)
		}
		// The source restarted: epoch B, counter back at 3.
		e.prov.setSnap(statesync.Snapshot{Revision: 3, Epoch: "B", Data: json.RawMessage(`"b3"`)})
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 3, Epoch: "B"})
		synctest.Wait()
		if got := e.c.Revision(); got != 3 {
			t.Errorf("Revision() after epoch change = %v; want 3", got)
		}
		if got := e.c.Epoch(); got != "B" {
			t.Errorf("Epoch() after epoch change = %q; want %q", got, "B")
		}
		if got := string(e.app.last().Data); got != `"b3"` {
			t.Errorf("last applied data = %s; want \"b3\"", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none (an epoch change is not a regression)", e.errs.all())
		}
		// Within epoch B, the gate is back.
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 2, Epoch: "B"})
		synctest.Wait()
		if n := e.prov.count(); n != 2 {
			t.Errorf("provider calls after a lower event of the adopted epoch = %d; want 2", n)
		}
		e.prov.setSnap(statesync.Snapshot{Revision: 4, Epoch: "B", Data: json.RawMessage(`"b4"`)})
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 4, Epoch: "B"})
		synctest.Wait()
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{10, 3, 4}) {
			t.Errorf("applied revisions = %v; want [10 3 4]", got)
		}
	})
}

// DESIGN §3: a fetched snapshot of another epoch is applied whatever its
// revision (manual Refresh and Offer alike), and a snapshot of the same
// epoch is gated as usual.
func TestEngineEpochChangeSnapshotGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.prov.setSnap(statesync.Snapshot{Revision: 10, Epoch: "A", Data: json.RawMessage(`"a10"`)})
		e.start(t)
		e.prov.setSnap(statesync.Snapshot{Revision: 1, Epoch: "B", Data: json.RawMessage(`"b1"`)})
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh() = %v; want nil", err)
		}
		if got, ep := e.c.Revision(), e.c.Epoch(); got != 1 || ep != "B" {
			t.Errorf("Revision(), Epoch() = %v, %q; want 1, %q", got, ep, "B")
		}
		if err := e.c.Offer(context.Background(), statesync.Snapshot{Revision: 0, Epoch: "C", Data: json.RawMessage(`"c0"`)}); err != nil {
			t.Fatalf("Offer(epoch C) = %v; want nil", err)
		}
		if got, ep := e.c.Revision(), e.c.Epoch(); got != 0 || ep != "C" {
			t.Errorf("Revision(), Epoch() after Offer = %v, %q; want 0, %q", got, ep, "C")
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{10, 1, 0}) {
			t.Errorf("applied revisions = %v; want [10 1 0]", got)
		}
		if n := e.errs.count(); n != 0 {
			t.Errorf("errors reported = %v; want none", e.errs.all())
		}
	})
}

// B-REV-13: without an epoch change, a snapshot older than the applied one
// is skipped and reported once (phase protocol, ErrRevisionRegressed, warn
// log); a later apply re-arms the report.
func TestEngineRegressionReportedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelWarn)
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger})
		e.prov.set(10, `"v10"`)
		e.start(t)
		e.prov.set(3, `"v3"`) // the source lost its history
		err := e.c.Refresh(context.Background())
		if !errors.Is(err, statesync.ErrRevisionRegressed) {
			t.Fatalf("Refresh() = %v; want %v", err, statesync.ErrRevisionRegressed)
		}
		errs := e.errs.all()
		if len(errs) != 1 {
			t.Fatalf("errors reported = %v; want 1", errs)
		}
		got := errs[0]
		if got.Phase != statesync.PhaseProtocol || got.LocalRevision != 10 || got.SnapshotRevision != "3" || got.Topic != engTopic {
			t.Errorf("reported %+v; want phase protocol, local 10, snapshot \"3\", topic %q", got, engTopic)
		}
		warns := logs.find("snapshot revision went backwards")
		if len(warns) != 1 || warns[0].Level != slog.LevelWarn {
			t.Errorf("warn records %q = %v; want 1 at warn level", "snapshot revision went backwards", warns)
		} else if warns[0].str("snapshotRevision") != "3" || warns[0].str("localRevision") != "10" {
			t.Errorf("warn record attrs = %v; want snapshotRevision 3, localRevision 10", warns[0].Attrs)
		}
		if got := e.c.Revision(); got != 10 {
			t.Errorf("Revision() = %v; want 10", got)
		}
		// Reported once: further fetches of the old revision are silent.
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Errorf("second Refresh() = %v; want nil", err)
		}
		e.sub.send(engInv(11))
		synctest.Wait()
		if n := e.errs.count(); n != 1 {
			t.Errorf("errors reported = %d; want still 1", n)
		}
		if n := e.app.count(); n != 1 {
			t.Errorf("applier calls = %d; want 1", n)
		}
		// After a newer apply, a new regression is reported again.
		e.publish(12, `"v12"`)
		e.prov.set(4, `"v4"`)
		if err := e.c.Refresh(context.Background()); !errors.Is(err, statesync.ErrRevisionRegressed) {
			t.Errorf("Refresh() after re-arm = %v; want %v", err, statesync.ErrRevisionRegressed)
		}
		if n := e.errs.count(); n != 2 {
			t.Errorf("errors reported = %d; want 2", n)
		}
	})
}

// B-REV-13: a regressed Offer is refused the same way.
func TestEngineRegressionOffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, nil)
		e.prov.set(10, `"v10"`)
		e.start(t)
		if err := e.c.Offer(context.Background(), engSnap(9, `"v9"`)); !errors.Is(err, statesync.ErrRevisionRegressed) {
			t.Errorf("Offer(9) = %v; want %v", err, statesync.ErrRevisionRegressed)
		}
		if got := e.c.Revision(); got != 10 {
			t.Errorf("Revision() = %v; want 10", got)
		}
	})
}

// ---- B-TOPIC ----

// B-TOPIC-01: an event for another (valid) topic is ignored: no fetch, no
// error, no log.
func TestEngineTopicOtherIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		sub, prov, app, errs := &engSub{}, &engProvider{}, &engApplier{}, &engErrs{}
		prov.set(1, `"v1"`)
		c := newEngConsumer(t, "my-topic", sub, prov, app, &statesync.ConsumerOptions{Logger: logger, OnError: errs.onError})
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		n := len(logs.records())
		sub.send(statesync.Invalidation{Topic: "other-topic", Revision: 99})
		sub.sendRaw(`{"topic":"other-topic","revision":"99"}`)
		sub.sendRaw(`{"topic":"other-topic","revision":"007"}`) // B-PROTO-10: dropped before validation
		synctest.Wait()
		if got := app.count(); got != 1 {
			t.Errorf("applier calls = %d; want 1", got)
		}
		if got := prov.count(); got != 1 {
			t.Errorf("provider calls = %d; want 1", got)
		}
		if got := errs.count(); got != 0 {
			t.Errorf("errors reported = %v; want none", errs.all())
		}
		if got := logs.messages()[n:]; len(got) != 0 {
			t.Errorf("log records = %q; want none", got)
		}
	})
}

// B-TOPIC-02: two handles on separate transports: an event for topic-a on
// transport B is ignored by B.
func TestEngineTopicSeparateTransports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		subA, subB := &engSub{}, &engSub{}
		provA, provB := &engProvider{}, &engProvider{}
		appA, appB := &engApplier{}, &engApplier{}
		provA.set(1, `"a1"`)
		provB.set(1, `"b1"`)
		a := newEngConsumer(t, "topic-a", subA, provA, appA, nil)
		b := newEngConsumer(t, "topic-b", subB, provB, appB, nil)
		for _, c := range []*statesync.Consumer{a, b} {
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		provA.set(2, `"a2"`)
		subA.send(statesync.Invalidation{Topic: "topic-a", Revision: 2})
		subB.send(statesync.Invalidation{Topic: "topic-a", Revision: 2})
		synctest.Wait()
		if got := appA.count(); got != 2 {
			t.Errorf("topic-a applies = %d; want 2", got)
		}
		if got := appB.count(); got != 1 {
			t.Errorf("topic-b applies = %d; want 1", got)
		}
	})
}

// B-TOPIC-03: topics in one process are independent: separate revisions
// and data of different types.
func TestEngineTopicIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		src, bus := newSourceBus(t)
		appS, appN := &engApplier{}, &engApplier{}
		cs := newEngConsumer(t, "str", bus, bus, appS, nil)
		cn := newEngConsumer(t, "num", bus, bus, appN, nil)
		for _, c := range []*statesync.Consumer{cs, cn} {
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []string{`"a"`, `"b"`, `"c"`} {
			if _, err := src.Put(ctx, "str", json.RawMessage(d)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := src.Put(ctx, "num", json.RawMessage(`42`)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := cs.Revision(), statesync.Revision(3); got != want {
			t.Errorf("str Revision() = %v; want %v", got, want)
		}
		if got, want := cn.Revision(), statesync.Revision(1); got != want {
			t.Errorf("num Revision() = %v; want %v", got, want)
		}
		if got := string(appS.last().Data); got != `"c"` {
			t.Errorf("str data = %s; want \"c\"", got)
		}
		if got := string(appN.last().Data); got != `42` {
			t.Errorf("num data = %s; want 42", got)
		}
	})
}

// B-TOPIC-04, B-ERR-08: every error of a handle carries that handle's topic
// (and its cause).
func TestEngineTopicInErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		for _, name := range []string{"alpha", "beta"} {
			sub, prov, app, errs := &engSub{}, &engProvider{}, &engApplier{}, &engErrs{}
			prov.set(1, `1`)
			c := newEngConsumer(t, name, sub, prov, app, &statesync.ConsumerOptions{OnError: errs.onError})
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			prov.setErr(boom)
			sub.send(statesync.Invalidation{Topic: name, Revision: 2})
			sub.sendRaw(`{"topic":"` + name + `","revision":"02"}`)
			sub.sendRaw(`{"topic":"","revision":"2"}`)
			sub.sendRaw(`garbage`)
			synctest.Wait()
			all := errs.all()
			if len(all) != 4 {
				t.Errorf("%s: errors reported = %v; want 4", name, all)
			}
			for _, e := range all {
				if e.Topic != name || e.Err == nil {
					t.Errorf("%s: reported %+v; want topic %q and a cause", name, e, name)
				}
			}
		}
	})
}

// ---- B-FILT ----

// B-FILT-02: ShouldRefresh sees only events that passed validation, the
// topic match and the gate, normalised (unknown and wrong-typed fields
// dropped).
func TestEngineFilterSeesNormalisedEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var seen []statesync.Invalidation
		e := newEngEnv(t, &statesync.ConsumerOptions{ShouldRefresh: func(engInv statesync.Invalidation) bool {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, engInv)
			return true
		}})
		e.start(t)
		e.sub.sendRaw(`{"topic":"test","revision":"1"}`)  // not newer
		e.sub.sendRaw(`{"topic":"other","revision":"5"}`) // other topic
		e.sub.sendRaw(`{"topic":"test","revision":"05"}`) // invalid
		e.sub.sendRaw(`{"topic":"test","revision":5}`)    // invalid
		e.sub.sendRaw(`{"topic":"test","revision":"2","sourceId":7,"timestampMs":"x","extra":1}`)
		e.sub.sendRaw(`{"topic":"test","revision":"3","sourceId":"w1","timestampMs":1764000000000}`)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		want := []statesync.Invalidation{
			{Topic: engTopic, Revision: 2},
			{Topic: engTopic, Revision: 3, SourceID: "w1", TimestampMs: 1764000000000},
		}
		if !slices.Equal(seen, want) {
			t.Errorf("ShouldRefresh saw %+v; want %+v", seen, want)
		}
	})
}

// B-FILT-01, B-FILT-03, B-FILT-05: false drops the event (no fetch, debug
// log with the event), true refreshes; the documented use skips one's own
// writes by source id.
func TestEngineFilterDecides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, logs := newEngLogs(slog.LevelDebug)
		const me = "window-1"
		e := newEngEnv(t, &statesync.ConsumerOptions{Logger: logger,
			ShouldRefresh: func(engInv statesync.Invalidation) bool { return engInv.SourceID != me }})
		e.start(t)
		e.prov.set(2, `"v2"`)
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 2, SourceID: me})
		synctest.Wait()
		if got := e.prov.count(); got != 1 {
			t.Errorf("provider calls after own event = %d; want 1", got)
		}
		if got := e.app.count(); got != 1 {
			t.Errorf("applies after own event = %d; want 1", got)
		}
		recs := logs.find("invalidation skipped (shouldRefresh)")
		if len(recs) != 1 {
			t.Fatalf("%q records = %d; want 1", "invalidation skipped (shouldRefresh)", len(recs))
		}
		if ev, ok := recs[0].Attrs["event"].Any().(statesync.Invalidation); !ok || ev.SourceID != me || ev.Revision != 2 {
			t.Errorf("event attr = %v; want the skipped invalidation", recs[0].Attrs["event"])
		}
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 2, SourceID: "window-2"})
		synctest.Wait()
		if got := e.app.count(); got != 2 {
			t.Errorf("applies after another window's event = %d; want 2", got)
		}
	})
}

// B-FILT-04: ShouldRefresh is not consulted by Start, Refresh or Offer.
func TestEngineFilterNotForManualRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		var mu sync.Mutex
		e := newEngEnv(t, &statesync.ConsumerOptions{ShouldRefresh: func(statesync.Invalidation) bool {
			mu.Lock()
			defer mu.Unlock()
			calls++
			return false
		}})
		e.start(t)
		e.prov.set(2, `"v2"`)
		if err := e.c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Offer(context.Background(), engSnap(3, `"v3"`)); err != nil {
			t.Fatal(err)
		}
		if got := e.app.revs(); !slices.Equal(got, []statesync.Revision{1, 2, 3}) {
			t.Errorf("applied revisions = %v; want [1 2 3]", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 0 {
			t.Errorf("ShouldRefresh calls = %d; want 0", calls)
		}
	})
}

// B-FILT-06: a panic in ShouldRefresh is recovered, reported with phase
// invalidation and the event's details, and the event is skipped.
func TestEngineFilterPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngEnv(t, &statesync.ConsumerOptions{ShouldRefresh: func(statesync.Invalidation) bool { panic("filter bug") }})
		e.start(t)
		e.sub.send(statesync.Invalidation{Topic: engTopic, Revision: 2, SourceID: "w9"})
		synctest.Wait()
		if got := e.prov.count(); got != 1 {
			t.Errorf("provider calls = %d; want 1", got)
		}
		errs := e.errs.all()
		if len(errs) != 1 {
			t.Fatalf("errors reported = %v; want 1", errs)
		}
		got := errs[0]
		var pe *statesync.PanicError
		if got.Phase != statesync.PhaseInvalidation || !errors.As(got, &pe) || pe.Value != "filter bug" {
			t.Errorf("reported %+v; want phase invalidation with the panic value", got)
		}
		if got.EventRevision != "2" || got.SourceID != "w9" || got.LocalRevision != 1 {
			t.Errorf("reported context %+v; want EventRevision 2, SourceID w9, LocalRevision 1", got)
		}
	})
}
