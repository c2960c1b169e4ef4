package wailssync_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/integrations/wails"
)

// emitted is one call of a recording EmitFunc.
type emitted struct {
	ctx   context.Context
	event string
	data  []any
	// committed is the revision the Source served for the topic when the
	// emit happened.
	committed string
}

// recorder is a recording EmitFunc. If src is set, each emit also reads
// the topic back from it, to check the write had committed.
type recorder struct {
	src *statesync.Source
	mu  sync.Mutex
	got []emitted
}

func (r *recorder) emit(ctx context.Context, event string, data ...any) {
	e := emitted{ctx: ctx, event: event, data: data}
	if r.src != nil && len(data) == 1 {
		if dto, ok := data[0].(wailssync.InvalidationDTO); ok {
			s, err := r.src.Snapshot(context.Background(), dto.Topic)
			if err == nil {
				e.committed = s.Revision.String()
			}
		}
	}
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
}

func (r *recorder) events() []emitted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]emitted(nil), r.got...)
}

func newSource(t *testing.T) *statesync.Source {
	t.Helper()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// B-TRANS-08: each mutation increments the revision by exactly 1, the
// invalidation is emitted only after the new state is committed, on the
// default event, as {topic, revision (canonical string), epoch, ...}.
func TestBridgeEmitsAfterCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newSource(t)
		rec := &recorder{src: src}
		type key struct{}
		ctx := context.WithValue(context.Background(), key{}, "wails")
		b := wailssync.NewBridge(src, rec.emit, &wailssync.Options{Context: ctx})
		defer b.Close()

		ctxW := context.Background()
		for i, v := range []string{`{"v":1}`, `{"v":2}`, `{"v":3}`} {
			if _, err := src.Put(ctxW, "settings", json.RawMessage(v)); err != nil {
				t.Fatalf("Put #%d: %v", i, err)
			}
			synctest.Wait() // let the bridge emit before the next write
		}
		got := rec.events()
		if len(got) != 3 {
			t.Fatalf("emits = %d; want 3", len(got))
		}
		for i, e := range got {
			if e.event != wailssync.DefaultEvent {
				t.Errorf("emit #%d event = %q; want %q", i, e.event, wailssync.DefaultEvent)
			}
			if e.ctx.Value(key{}) != "wails" {
				t.Errorf("emit #%d ctx is not Options.Context", i)
			}
			if len(e.data) != 1 {
				t.Fatalf("emit #%d data = %v; want one value", i, e.data)
			}
			dto := e.data[0].(wailssync.InvalidationDTO)
			want := []string{"1", "2", "3"}[i]
			if dto.Topic != "settings" || dto.Revision != want {
				t.Errorf("emit #%d = %+v; want topic settings revision %s", i, dto, want)
			}
			if e.committed != want {
				t.Errorf("emit #%d: Source served revision %q during emit; want %q (emitted before commit?)", i, e.committed, want)
			}
			if cur, _ := src.Snapshot(ctxW, "settings"); dto.Epoch == "" || dto.Epoch != cur.Epoch {
				t.Errorf("emit #%d epoch = %q; want %q", i, dto.Epoch, cur.Epoch)
			}
		}
		// The JSON form the frontend receives.
		raw, err := json.Marshal(got[0].data[0])
		if err != nil {
			t.Fatal(err)
		}
		inv, err := statesync.DecodeInvalidation(raw)
		if err != nil {
			t.Fatalf("DecodeInvalidation(%s) = %v; want nil", raw, err)
		}
		if inv.Topic != "settings" || inv.Revision != 1 {
			t.Errorf("DecodeInvalidation(%s) = %+v; want settings@1", raw, inv)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["revision"].(string); !ok {
			t.Errorf("revision in %s is %T; want a string", raw, m["revision"])
		}
	})
}

// B-TRANS-08: the event name is configurable; without a context nothing is
// emitted until Startup, then the latest invalidation of each topic is.
func TestBridgeStartupAndEventName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newSource(t)
		rec := &recorder{}
		b := wailssync.NewBridge(src, rec.emit, &wailssync.Options{Event: "custom:inv"})
		defer b.Close()
		if b.Event() != "custom:inv" {
			t.Errorf("Event() = %q; want custom:inv", b.Event())
		}
		ctx := context.Background()
		for _, topic := range []string{"a", "b", "a"} {
			if _, err := src.Put(ctx, topic, json.RawMessage(`1`)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if n := len(rec.events()); n != 0 {
			t.Fatalf("emits before Startup = %d; want 0", n)
		}
		b.Startup(ctx)
		synctest.Wait()
		got := rec.events()
		var pairs []string
		for _, e := range got {
			if e.event != "custom:inv" {
				t.Errorf("event = %q; want custom:inv", e.event)
			}
			d := e.data[0].(wailssync.InvalidationDTO)
			pairs = append(pairs, d.Topic+"@"+d.Revision)
		}
		if len(pairs) != 2 || pairs[0] != "a@2" || pairs[1] != "b@1" {
			t.Errorf("emitted %v; want [a@2 b@1]", pairs)
		}
	})
}

// After Close nothing more is emitted and bound methods fail; a panicking
// emit does not stop later emits.
func TestBridgeCloseAndPanickingEmit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newSource(t)
		var mu sync.Mutex
		var revs []string
		emit := func(_ context.Context, _ string, data ...any) {
			d := data[0].(wailssync.InvalidationDTO)
			mu.Lock()
			revs = append(revs, d.Revision)
			mu.Unlock()
			if d.Revision == "1" {
				panic("boom")
			}
		}
		b := wailssync.NewBridge(src, emit, &wailssync.Options{Context: context.Background()})
		ctx := context.Background()
		src.Put(ctx, "t", json.RawMessage(`1`))
		synctest.Wait()
		src.Put(ctx, "t", json.RawMessage(`2`))
		synctest.Wait()
		b.Close()
		b.Close()
		src.Put(ctx, "t", json.RawMessage(`3`))
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(revs) != 2 || revs[0] != "1" || revs[1] != "2" {
			t.Errorf("emitted revisions %v; want [1 2]", revs)
		}
		if _, err := b.GetSnapshot("t"); err == nil {
			t.Errorf("GetSnapshot after Close = nil error; want an error")
		}
	})
}

// B-TRANS-08: GetSnapshot returns {revision as canonical string, epoch,
// data} of one committed state; Put and Patch write and return it.
func TestBridgeBoundMethods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newSource(t)
		rec := &recorder{}
		b := wailssync.NewBridge(src, rec.emit, &wailssync.Options{Context: context.Background()})
		defer b.Close()

		s, err := b.GetSnapshot("settings")
		if err != nil {
			t.Fatalf("GetSnapshot(%q) error = %v", "settings", err)
		}
		if s.Revision != "0" || string(s.Data) != "null" {
			t.Errorf("GetSnapshot(%q) = %+v; want revision 0, data null", "settings", s)
		}
		p, err := b.Put("settings", json.RawMessage(`{"theme":"dark","size":12}`))
		if err != nil || p.Revision != "1" {
			t.Fatalf("Put = %+v, %v; want revision 1", p, err)
		}
		synctest.Wait()
		p, err = b.Patch("settings", json.RawMessage(`{"size":null,"lang":"fr"}`))
		if err != nil || p.Revision != "2" {
			t.Fatalf("Patch = %+v, %v; want revision 2", p, err)
		}
		s, err = b.GetSnapshot("settings")
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := src.Snapshot(context.Background(), "settings")
		if s.Revision != "2" || string(s.Data) != `{"theme":"dark","lang":"fr"}` || s.Epoch == "" || s.Epoch != cur.Epoch {
			t.Errorf("GetSnapshot(%q) = {%s %s %s}; want {2 %s {\"theme\":\"dark\",\"lang\":\"fr\"}}", "settings", s.Revision, s.Epoch, s.Data, cur.Epoch)
		}
		raw, _ := json.Marshal(s)
		snap, err := statesync.DecodeSnapshot(raw)
		if err != nil || snap.Revision != 2 {
			t.Errorf("DecodeSnapshot(%s) = %+v, %v; want revision 2", raw, snap, err)
		}
		if _, err := b.Put("bad\ntopic", json.RawMessage(`1`)); err == nil {
			t.Errorf("Put(bad topic) = nil error; want an error")
		}
		if _, err := b.Patch("settings", json.RawMessage(`{`)); err == nil {
			t.Errorf("Patch(invalid JSON) = nil error; want an error")
		}
		synctest.Wait()
		var revs []string
		for _, e := range rec.events() {
			revs = append(revs, e.data[0].(wailssync.InvalidationDTO).Revision)
		}
		if !reflect.DeepEqual(revs, []string{"1", "2"}) {
			t.Errorf("emitted revisions %v; want [1 2] (one per committed write)", revs)
		}
	})
}

// The bindable API exposes only GetSnapshot, Patch and Put: Wails binds
// every exported method, and the frontend must not be able to Close.
func TestAPIMethodSet(t *testing.T) {
	typ := reflect.TypeFor[*wailssync.API]()
	var names []string
	for m := range typ.Methods() {
		names = append(names, m.Name)
	}
	if want := []string{"GetSnapshot", "Patch", "Put"}; !reflect.DeepEqual(names, want) {
		t.Errorf("methods of *API = %v; want %v", names, want)
	}
	synctest.Test(t, func(t *testing.T) {
		src := newSource(t)
		b := wailssync.NewBridge(src, (&recorder{}).emit, nil)
		defer b.Close()
		api := b.API()
		if s, err := api.Put("t", json.RawMessage(`{"a":1}`)); err != nil || s.Revision != "1" {
			t.Fatalf("Put = %+v, %v; want revision 1", s, err)
		}
		if s, err := api.Patch("t", json.RawMessage(`{"b":2}`)); err != nil || string(s.Data) != `{"a":1,"b":2}` {
			t.Fatalf("Patch = %+v, %v; want data {\"a\":1,\"b\":2}", s, err)
		}
		if s, err := api.GetSnapshot("t"); err != nil || s.Revision != "2" {
			t.Errorf("GetSnapshot(%q) = %+v, %v; want revision 2", "t", s, err)
		}
	})
}
