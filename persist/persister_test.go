package persist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
)

func snap(rev statesync.Revision, data string) statesync.Snapshot {
	return statesync.Snapshot{Revision: rev, Data: []byte(`"` + data + `"`)}
}

func newPersister(t *testing.T, s persist.Storage, inner statesync.Applier, o *persist.Options) *persist.Persister {
	t.Helper()
	p, err := persist.New(s, inner, o)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.Shutdown(ctx)
	})
	return p
}

// savedDatas returns the data of each successful save, in order.
func savedDatas(t testing.TB, m interface{ SavedRecords() []persist.Record }) string {
	t.Helper()
	var out []string
	for _, r := range m.SavedRecords() {
		s, err := statesync.DecodeSnapshot(r.Payload)
		if err != nil {
			t.Fatalf("saved payload %q: %v", r.Payload, err)
		}
		out = append(out, strings.Trim(string(s.Data), `"`))
	}
	return strings.Join(out, " ")
}

func apply(t testing.TB, p *persist.Persister, s statesync.Snapshot) {
	t.Helper()
	if err := p.Apply(context.Background(), s); err != nil {
		t.Fatalf("Apply(%d) = %v", s.Revision, err)
	}
}

// B-PSAVE-01, B-PSAVE-04, B-PSAVE-10, B-DEF-04: without throttling, each
// apply reaches the inner applier and starts a save at once, without
// Apply waiting for it.
func TestPersisterImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persisttest.NewFaulty(nil, &persisttest.FaultOptions{Latency: time.Second})
		app := &recorder{}
		p := newPersister(t, m, app, nil)
		start := time.Now()
		apply(t, p, snap(1, "v1"))
		if d := time.Since(start); d != 0 {
			t.Errorf("Apply() took %v; want 0 (the save runs in the background)", d)
		}
		if got := app.datas(); got != `1:"v1"` {
			t.Errorf("inner applied %s; want 1:\"v1\"", got)
		}
		if p.HasPendingSave() {
			t.Errorf("HasPendingSave() in immediate mode = true; want false")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := savedDatas(t, m); got != "v1" {
			t.Errorf("saves = %q; want v1", got)
		}
		r, _ := rawOf(m)
		if r.Meta.SchemaVersion != 1 || r.Meta.Algorithm != "" || r.Meta.Hash != "" || r.Meta.TTL != 0 {
			t.Errorf("saved metadata = %+v; want the defaults (schema 1, no compression, hash or TTL)", r.Meta)
		}
	})
}

// B-PSAVE-02: an inner error is returned and nothing is saved.
func TestPersisterInnerErrorNoSave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		boom := errors.New("boom")
		p := newPersister(t, m, &recorder{err: boom}, nil)
		if err := p.Apply(context.Background(), snap(1, "x")); !errors.Is(err, boom) {
			t.Errorf("Apply() = %v; want the inner error", err)
		}
		synctest.Wait()
		if n := len(m.SavedRecords()); n != 0 {
			t.Errorf("%d saves after a failed inner apply; want 0", n)
		}
	})
}

// B-PSAVE-03, B-PSAVE-18, B-PSTAT-03, B-PEVT-02: a failing storage never
// fails Apply; the failure is counted and reported once, and AfterSave
// functions are not called for it.
func TestPersisterSaveFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persisttest.NewFaulty(nil, nil)
		var log errorLog
		app := &recorder{}
		p := newPersister(t, m, app, &persist.Options{OnError: log.add})
		var saved atomic.Int32
		p.AfterSave(func(persist.Metadata) { saved.Add(1) })

		apply(t, p, snap(1, "ok"))
		synctest.Wait()
		m.SetFailMode(true, false)
		if err := p.Apply(context.Background(), snap(2, "fails")); err != nil {
			t.Errorf("Apply() with a failing storage = %v; want nil", err)
		}
		synctest.Wait()
		if got := app.datas(); got != `1:"ok" 2:"fails"` {
			t.Errorf("inner applied %s; want both snapshots", got)
		}
		st := p.Stats()
		if st.SaveCount != 1 || st.SaveErrorCount != 1 {
			t.Errorf("Stats() = %d saves, %d errors; want 1, 1", st.SaveCount, st.SaveErrorCount)
		}
		if errs := log.all(); len(errs) != 1 || errs[0].Op != persist.OpSave || errs[0].Snapshot == nil || errs[0].Snapshot.Revision != 2 ||
			!errors.Is(errs[0], persisttest.ErrSimulated) {
			t.Errorf("OnError got %v; want exactly one simulated save error with snapshot 2", errs)
		}
		if n := saved.Load(); n != 1 {
			t.Errorf("AfterSave called %d times; want 1 (for the successful save only)", n)
		}
	})
}

// B-PSAVE-19: a panic in OnError is swallowed.
func TestPersisterOnErrorPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persisttest.NewFaulty(nil, &persisttest.FaultOptions{FailOnSave: true})
		p := newPersister(t, m, &recorder{}, &persist.Options{OnError: func(*persist.Error) { panic("handler") }})
		apply(t, p, snap(1, "x"))
		synctest.Wait()
		if got := p.Stats().SaveErrorCount; got != 1 {
			t.Errorf("SaveErrorCount = %d; want 1", got)
		}
	})
}

// B-PSAVE-05, B-PSAVE-09, B-PSAVE-10: debounce saves only the latest
// snapshot, after the quiet period.
func TestPersisterDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, &persist.Options{Debounce: 100 * time.Millisecond})
		if p.HasPendingSave() {
			t.Errorf("HasPendingSave() initially = true")
		}
		for i, d := range []string{"v1", "v2", "v3"} {
			apply(t, p, snap(statesync.Revision(i+1), d))
			time.Sleep(50 * time.Millisecond)
		}
		synctest.Wait()
		if got := savedDatas(t, m); got != "" || !p.HasPendingSave() {
			t.Errorf("after 3 applies 50ms apart: saves %q, pending %v; want none yet, pending", got, p.HasPendingSave())
		}
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if got := savedDatas(t, m); got != "v3" || p.HasPendingSave() {
			t.Errorf("100ms after the last apply: saves %q, pending %v; want v3, not pending", got, p.HasPendingSave())
		}
	})
}

// B-PSAVE-06, B-PSTAT-04: throttle saves at most once per window; applies
// inside it are counted and the latest is saved at the end of the window.
func TestPersisterThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, &persist.Options{Throttle: 100 * time.Millisecond})
		var at []time.Duration
		start := time.Now()
		p.AfterSave(func(persist.Metadata) { at = append(at, time.Since(start)) })
		apply(t, p, snap(1, "v1"))
		time.Sleep(10 * time.Millisecond)
		apply(t, p, snap(2, "v2"))
		time.Sleep(10 * time.Millisecond)
		apply(t, p, snap(3, "v3"))
		if got := p.Stats().ThrottledCount; got != 2 {
			t.Errorf("ThrottledCount = %d; want 2", got)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := savedDatas(t, m); got != "v1 v3" {
			t.Errorf("saves = %q; want v1 v3", got)
		}
		if len(at) != 2 || at[0] != 0 || at[1] != 100*time.Millisecond {
			t.Errorf("saves started at %v; want [0s 100ms] (the end of the window)", at)
		}
	})
}

// B-PSAVE-06: inside the throttle window with a debounce, the latest
// snapshot is saved after the debounce.
func TestPersisterThrottleWithDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, &persist.Options{Throttle: time.Second, Debounce: 30 * time.Millisecond, Leading: true})
		var at []time.Duration
		start := time.Now()
		p.AfterSave(func(persist.Metadata) { at = append(at, time.Since(start)) })
		apply(t, p, snap(1, "v1")) // leading: at once
		time.Sleep(10 * time.Millisecond)
		apply(t, p, snap(2, "v2")) // throttled: after the debounce
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if got := savedDatas(t, m); got != "v1 v2" || len(at) != 2 || at[1] != 40*time.Millisecond {
			t.Errorf("saves %q started at %v; want v1 at 0 and v2 at 40ms", got, at)
		}
	})
}

// B-PSAVE-07: max wait forces a save under continuous updates that keep
// resetting the debounce, and any save clears both timers.
func TestPersisterMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, &persist.Options{Debounce: 300 * time.Millisecond, MaxWait: 1050 * time.Millisecond})
		var at []time.Duration
		start := time.Now()
		p.AfterSave(func(persist.Metadata) { at = append(at, time.Since(start)) })
		for i := range 25 { // one apply every 100ms for 2.5s
			apply(t, p, snap(statesync.Revision(i+1), fmt.Sprint("v", i+1)))
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		// Max wait runs from the first unsaved apply: 0 → 1.05s, 1.1s → 2.15s.
		want := []time.Duration{1050 * time.Millisecond, 2150 * time.Millisecond, 2700 * time.Millisecond}
		if fmt.Sprint(at) != fmt.Sprint(want) {
			t.Errorf("saves started at %v; want %v (max wait twice, then the debounce)", at, want)
		}
		if got := savedDatas(t, m); got != "v11 v22 v25" {
			t.Errorf("saves = %q; want v11 v22 v25", got)
		}
	})
}

// B-PSAVE-08: leading saves the first apply after each quiet period, not
// only the first of the Persister's life.
func TestPersisterLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, &persist.Options{Debounce: 100 * time.Millisecond, Leading: true})
		var at []time.Duration
		start := time.Now()
		p.AfterSave(func(persist.Metadata) { at = append(at, time.Since(start)) })
		apply(t, p, snap(1, "a")) // leading
		time.Sleep(10 * time.Millisecond)
		apply(t, p, snap(2, "b")) // debounced: saved at 110ms
		time.Sleep(500 * time.Millisecond)
		apply(t, p, snap(3, "c")) // quiet again: leading
		synctest.Wait()
		time.Sleep(time.Second)
		want := []time.Duration{0, 110 * time.Millisecond, 510 * time.Millisecond}
		if fmt.Sprint(at) != fmt.Sprint(want) || savedDatas(t, m) != "a b c" {
			t.Errorf("saves %q started at %v; want a b c at %v", savedDatas(t, m), at, want)
		}
	})
}

// B-PSAVE-11, B-PSAVE-12: Flush writes the pending snapshot now, waits
// for saves already running and returns their error.
func TestPersisterFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, &persist.Options{Debounce: time.Second})
		if err := p.Flush(ctx); err != nil || len(m.SavedRecords()) != 0 {
			t.Errorf("Flush() with nothing pending = %v, %d saves; want nil, 0", err, len(m.SavedRecords()))
		}
		apply(t, p, snap(1, "pending"))
		if err := p.Flush(ctx); err != nil {
			t.Errorf("Flush() = %v", err)
		}
		if got := savedDatas(t, m); got != "pending" || p.HasPendingSave() {
			t.Errorf("after Flush: saves %q, pending %v; want pending saved, nothing pending", got, p.HasPendingSave())
		}

		// A save started by a timer is waited for, and its error returned.
		slow := persisttest.NewFaulty(nil, &persisttest.FaultOptions{Latency: 50 * time.Millisecond, FailOnSave: true})
		q := newPersister(t, slow, &recorder{}, &persist.Options{Debounce: 10 * time.Millisecond})
		apply(t, q, snap(1, "x"))
		time.Sleep(20 * time.Millisecond) // the timer fired; the save runs
		start := time.Now()
		err := q.Flush(ctx)
		if !errors.Is(err, persisttest.ErrSimulated) || time.Since(start) != 40*time.Millisecond {
			t.Errorf("Flush() during a failing save = %v after %v; want ErrSimulated after 40ms", err, time.Since(start))
		}
		if err := q.Flush(ctx); err != nil {
			t.Errorf("second Flush() = %v; want nil (no save since)", err)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		apply(t, q, snap(2, "y"))
		if err := q.Flush(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Flush() with a 5ms deadline during a 50ms save = %v; want DeadlineExceeded", err)
		}

		p.Close()
		if err := p.Flush(ctx); err != nil {
			t.Errorf("Flush() after Close = %v; want nil", err)
		}
	})
}

// B-PSAVE-13, B-PSAVE-14, B-PEVT-06: Close drops the pending snapshot
// (logged at debug level), cancels AfterSave functions, is idempotent, and
// Apply is ignored after it.
func TestPersisterCloseDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		app := &recorder{}
		var logBuf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		p := newPersister(t, m, app, &persist.Options{Debounce: 100 * time.Millisecond, Logger: logger})
		calls := 0
		p.AfterSave(func(persist.Metadata) { calls++ })
		apply(t, p, snap(1, "dropped"))
		p.Close()
		p.Close()
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if n := len(m.SavedRecords()); n != 0 || p.HasPendingSave() {
			t.Errorf("after Close: %d saves, pending %v; want 0, false", n, p.HasPendingSave())
		}
		if !strings.Contains(logBuf.String(), "pending snapshot dropped") || !strings.Contains(logBuf.String(), "revision=1") {
			t.Errorf("log = %q; want the dropped snapshot at debug level", logBuf.String())
		}
		apply(t, p, snap(2, "after"))
		synctest.Wait()
		if got := app.datas(); got != `1:"dropped"` || len(m.SavedRecords()) != 0 || calls != 0 {
			t.Errorf("after Close, Apply reached the inner applier (%s) or saved; want ignored entirely", got)
		}
	})
}

// B-PSAVE-14: Shutdown saves what is pending, then stops.
func TestPersisterShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persisttest.NewFaulty(nil, &persisttest.FaultOptions{Latency: 10 * time.Millisecond})
		p := newPersister(t, m, &recorder{}, &persist.Options{Debounce: time.Hour})
		apply(t, p, snap(1, "kept"))
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown() = %v", err)
		}
		if got := savedDatas(t, m); got != "kept" {
			t.Errorf("saves after Shutdown = %q; want kept", got)
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("second Shutdown() = %v; want nil", err)
		}
	})
}

// B-PSAVE-15: one writer writes in order; a newer snapshot replaces one
// that has not started, and a stale one is never written over a newer.
func TestPersisterOrderedWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persisttest.NewFaulty(nil, &persisttest.FaultOptions{Latency: 100 * time.Millisecond})
		p := newPersister(t, m, &recorder{}, nil)
		for rev := range statesync.Revision(5) {
			apply(t, p, snap(rev+1, fmt.Sprint("v", rev+1)))
			time.Sleep(10 * time.Millisecond)
		}
		if err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := savedDatas(t, m); got != "v1 v5" {
			t.Errorf("saves = %q; want v1 v5 (v2..v4 replaced while v1 was written)", got)
		}
		// A stale revision in the same epoch is skipped; another epoch is not.
		apply(t, p, snap(3, "stale"))
		apply(t, p, statesync.Snapshot{Revision: 1, Epoch: "new", Data: []byte(`"new epoch"`)})
		p.Flush(context.Background())
		if got := savedDatas(t, m); got != "v1 v5 new epoch" {
			t.Errorf("saves = %q; want v1 v5 new epoch", got)
		}
		if got := p.Stats().SkippedCount; got != 1 {
			t.Errorf("SkippedCount = %d; want 1", got)
		}
	})
}

// B-PSAVE-16, B-PSAVE-17, B-PEVT-02: the save pipeline builds the record
// (schema, size, compression, hash, TTL, topic), calls AfterSave with its
// metadata when it completes, and records its duration.
func TestPersisterSavePipeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persisttest.NewFaulty(nil, &persisttest.FaultOptions{Latency: 5 * time.Millisecond})
		p := newPersister(t, m, &recorder{}, &persist.Options{SchemaVersion: 4, Compressor: persist.Gzip(0), Hash: true, TTL: time.Hour, Topic: "t"})
		var events []string
		p.AfterSave(func(m persist.Metadata) { events = append(events, fmt.Sprintf("saved %d", m.Revision)) })
		apply(t, p, snap(1, "test"))
		synctest.Wait()
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
		if want := `saved 1`; strings.Join(events, ",") != want || p.Stats().LastSaveDuration != 5*time.Millisecond {
			t.Errorf("AfterSave calls = %q, last save took %v; want %q and 5ms", events, p.Stats().LastSaveDuration, want)
		}
		r, _ := rawOf(m.MemoryStorage)
		js := `{"revision":"1","data":"test"}`
		if r.Meta.SchemaVersion != 4 || r.Meta.Algorithm != "gzip" || r.Meta.Hash != persist.Hash(r.Payload) || r.Meta.TTL != time.Hour ||
			r.Meta.Topic != "t" || r.Meta.SizeBytes != len(js) || r.Meta.Revision != 1 || !r.Meta.SavedAt.Equal(time.Now().Add(-5*time.Millisecond)) {
			t.Errorf("saved metadata = %+v; want schema 4, gzip, hash, TTL 1h, topic t, %d bytes, saved when the save began", r.Meta, len(js))
		}
	})
}

// B-PSTAT-01, B-PSTAT-02, B-PSTAT-05, B-PSTAT-06: counters, and times
// from the (synctest) clock.
func TestPersisterStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, nil)
		if st := p.Stats(); st != (persist.Stats{}) {
			t.Errorf("initial Stats() = %+v; want zero", st)
		}
		apply(t, p, snap(1, "a"))
		synctest.Wait()
		if st := p.Stats(); st.SaveCount != 1 || st.TotalBytesSaved != int64(len(`{"revision":"1","data":"a"}`)) {
			t.Errorf("Stats() after a save = %+v; want 1 save of 27 bytes", st)
		}
		apply(t, p, snap(2, "b"))
		synctest.Wait()
		st := p.Stats()
		if st.SaveCount != 2 || st.SaveErrorCount != 0 || st.TotalBytesSaved != 54 || st.TotalBytesStored != 54 ||
			!st.LastSaveAt.Equal(time.Now()) || st.LastSaveDuration != 0 || st.ThrottledCount != 0 {
			t.Errorf("Stats() = %+v; want 2 saves, 54 bytes, last now taking 0", st)
		}
	})
}

// B-PEVT-03, B-PEVT-04, B-PEVT-05, B-PEVT-08: AfterSave functions run in
// registration order; stopped ones are not called; a panicking one does
// not stop the next or the save.
func TestPersisterAfterSave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := persist.NewMemoryStorage(nil)
		p := newPersister(t, m, &recorder{}, nil)
		var order []int
		for i := range 3 {
			p.AfterSave(func(persist.Metadata) { order = append(order, i) })
		}
		p.AfterSave(func(persist.Metadata) { panic("listener") })
		second := 0
		p.AfterSave(func(persist.Metadata) { second++ })
		removed := 0
		off := p.AfterSave(func(persist.Metadata) { removed++ })
		off()
		off()
		apply(t, p, snap(1, "x"))
		synctest.Wait()
		if fmt.Sprint(order) != "[0 1 2]" || second != 1 || removed != 0 || p.Stats().SaveCount != 1 {
			t.Errorf("listeners: order %v, after a panicking one %d, removed %d, saves %d; want [0 1 2], 1, 0, 1",
				order, second, removed, p.Stats().SaveCount)
		}
	})
}

// B-PEVT-07: Restore reports what it found, migrated and applied in its
// LoadInfo, and an expired record as ErrExpired; Clear removes the record.
func TestPersisterRestoreInfo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := persist.NewMemoryStorage(nil)
		m.Save(ctx, record(t, statesync.Snapshot{Revision: 3, Data: []byte(`{"count":1}`)}, &persist.RecordOptions{TTL: time.Minute}))
		app := &recorder{}
		p := newPersister(t, m, app, &persist.Options{Load: persist.LoadOptions{Migrations: v3Migrations(t)}})
		info, err := p.Restore(ctx, nil)
		if err != nil || !info.Found || !info.Applied || info.ToVersion != 3 || info.FromVersion != 1 || info.Meta.Revision != 3 {
			t.Fatalf("Restore() = %+v, %v; want found, migrated from 1 and applied", info, err)
		}
		time.Sleep(2 * time.Minute)
		if info, err := p.Restore(ctx, nil); !errors.Is(err, persist.ErrExpired) || info.Applied || info.Age != 2*time.Minute {
			t.Errorf("Restore() after the TTL = %+v, %v; want ErrExpired at age 2m", info, err)
		}
		if err := p.Clear(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := m.Load(ctx); ok {
			t.Errorf("storage holds a record after Clear")
		}
		if info, err := p.Restore(ctx, nil); err != nil || info.Found {
			t.Errorf("Restore() after Clear = %+v, %v; want nothing found", info, err)
		}
		if got := app.datas(); got != `3:{"count":1,"enabled":true,"name":"default"}` {
			t.Errorf("Restore applied %s to the inner applier; want the migrated data once", got)
		}
		synctest.Wait()
		if n := len(m.SavedRecords()); n != 2 { // the initial save and the write-back
			t.Errorf("%d saves; want 2 (the restored snapshot is not saved again)", n)
		}
	})
}

// B-PSAVE-20, B-GO-03: Apply is safe concurrently with Flush, Close and
// itself; inner applies never overlap.
func TestPersisterConcurrentUse(t *testing.T) {
	m := persist.NewMemoryStorage(nil)
	var inFlight, overlaps atomic.Int32
	inner := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error {
		if inFlight.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer inFlight.Add(-1)
		return nil
	})
	p := newPersister(t, m, inner, &persist.Options{Debounce: time.Millisecond})
	var wg sync.WaitGroup
	var next atomic.Uint64
	for range 4 {
		wg.Go(func() {
			for range 200 {
				p.Apply(context.Background(), snap(statesync.Revision(next.Add(1)), "x"))
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			p.Flush(context.Background())
		}
	})
	wg.Wait()
	p.Close()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("inner applies overlapped %d times; want never", n)
	}
	var last statesync.Revision
	for _, r := range m.SavedRecords() {
		if r.Meta.Revision <= last {
			t.Errorf("saved revision %d after %d; want strictly increasing", r.Meta.Revision, last)
		}
		last = r.Meta.Revision
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	m := persist.NewMemoryStorage(nil)
	migs := v3Migrations(t)
	for name, o := range map[string]*persist.Options{
		"negative debounce":    {Debounce: -1},
		"negative max age":     {Load: persist.LoadOptions{MaxAge: -1}},
		"schema vs migrations": {SchemaVersion: 2, Load: persist.LoadOptions{Migrations: migs}},
	} {
		if _, err := persist.New(m, &recorder{}, o); err == nil {
			t.Errorf("New(%s) = nil error; want an error", name)
		}
	}
	if _, err := persist.New(nil, &recorder{}, nil); err == nil {
		t.Errorf("New(nil storage) = nil error; want an error")
	}
}
