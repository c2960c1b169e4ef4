package persist_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/persist"
)

// tabLog records what a CrossTab receives.
type tabLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *tabLog) add(s string) { l.mu.Lock(); l.msgs = append(l.msgs, s); l.mu.Unlock() }
func (l *tabLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, ",")
}

func tabOptions(l *tabLog) *persist.CrossTabOptions {
	return &persist.CrossTabOptions{
		OnSnapshot:    func(n persist.Notice, from string) { l.add(fmt.Sprintf("snapshot %d %s", n.Revision, n.Epoch)) },
		OnSyncRequest: func(string) { l.add("request-sync") },
		OnClear:       func(string) { l.add("clear") },
		OnError:       func(err error) { l.add("error") },
	}
}

// B-XTAB-01..06, B-XTAB-09, B-XTAB-11: a CrossTab reaches the others of
// its channel, never itself, and is a no-op after Dispose.
func TestCrossTab(t *testing.T) {
	ctx := context.Background()
	bus := &persist.MemoryBus{}
	var la, lb, lc tabLog
	a := persist.NewCrossTab(bus, "ch", tabOptions(&la))
	b := persist.NewCrossTab(bus, "ch", tabOptions(&lb))
	other := persist.NewCrossTab(bus, "other", tabOptions(&lc))
	defer other.Dispose()
	if a.TabID() == "" || a.TabID() == b.TabID() || len(a.TabID()) != 36 || a.TabID()[14] != '4' {
		t.Errorf("tab ids %q %q; want two distinct UUIDv4", a.TabID(), b.TabID())
	}
	if !a.IsSupported() {
		t.Errorf("IsSupported() = false on a real bus")
	}
	a.Broadcast(ctx, persist.Notice{Revision: 3, Epoch: "e"})
	a.RequestSync(ctx)
	a.NotifyClear(ctx)
	if got, want := lb.String(), "snapshot 3 e,request-sync,clear"; got != want {
		t.Errorf("b received %q; want %q", got, want)
	}
	if la.String() != "" || lc.String() != "" {
		t.Errorf("a received %q, another channel %q; want nothing (own messages, other channel)", la.String(), lc.String())
	}
	b.Dispose()
	b.Dispose()
	a.Broadcast(ctx, persist.Notice{Revision: 4})
	b.Broadcast(ctx, persist.Notice{Revision: 5})
	if got := lb.String(); got != "snapshot 3 e,request-sync,clear" {
		t.Errorf("b received %q after Dispose; want nothing more", got)
	}
	if la.String() != "" {
		t.Errorf("a received %q from a disposed tab; want nothing", la.String())
	}
	a.Dispose()
}

// B-XTAB-07, B-XTAB-08: NoReceive processes nothing; NoBroadcast sends no
// snapshot but still sends request-sync and clear.
func TestCrossTabOptions(t *testing.T) {
	ctx := context.Background()
	bus := &persist.MemoryBus{}
	var deaf, quiet, rx tabLog
	o := tabOptions(&deaf)
	o.NoReceive = true
	d := persist.NewCrossTab(bus, "ch", o)
	o = tabOptions(&quiet)
	o.NoBroadcast = true
	q := persist.NewCrossTab(bus, "ch", o)
	r := persist.NewCrossTab(bus, "ch", tabOptions(&rx))
	defer d.Dispose()
	defer q.Dispose()
	defer r.Dispose()
	q.Broadcast(ctx, persist.Notice{Revision: 1})
	q.RequestSync(ctx)
	q.NotifyClear(ctx)
	if got := rx.String(); got != "request-sync,clear" {
		t.Errorf("received from a NoBroadcast tab %q; want request-sync,clear", got)
	}
	r.Broadcast(ctx, persist.Notice{Revision: 2})
	if deaf.String() != "" {
		t.Errorf("NoReceive tab received %q; want nothing", deaf.String())
	}
}

// B-XTAB-10: without a usable bus, a CrossTab is a no-op.
func TestCrossTabUnsupported(t *testing.T) {
	for name, bus := range map[string]persist.Bus{"nil": nil, "failing": failingBus{}} {
		c := persist.NewCrossTab(bus, "ch", nil)
		if c.IsSupported() || c.TabID() == "" {
			t.Errorf("%s bus: IsSupported() = %v, TabID %q; want false and an id", name, c.IsSupported(), c.TabID())
		}
		c.Broadcast(context.Background(), persist.Notice{Revision: 1})
		c.RequestSync(context.Background())
		c.NotifyClear(context.Background())
		c.Dispose()
	}
}

type failingBus struct{}

func (failingBus) Publish(context.Context, string, []byte) error { return errors.New("down") }
func (failingBus) Subscribe(string, func([]byte)) (func(), error) {
	return nil, errors.New("unsupported")
}

// B-XTAB-01, B-XTAB-14: messages are validated.
func TestDecodeMessage(t *testing.T) {
	good := []string{
		`{"type":"snapshot","tabId":"t","payload":{"revision":"5","epoch":"e"}}`,
		`{"type":"request-sync","tabId":"t"}`,
		`{"type":"clear","tabId":"t"}`,
	}
	for _, g := range good {
		if _, err := persist.DecodeMessage([]byte(g)); err != nil {
			t.Errorf("DecodeMessage(%s) = %v; want nil", g, err)
		}
	}
	bad := []string{
		`{"type":"snapshot","tabId":"t","payload":{"revision":"05"}}`,
		`{"type":"snapshot","tabId":"t","payload":{"revision":5}}`,
		`{"type":"snapshot","tabId":"t"}`,
		`{"type":"snapshot","payload":{"revision":"5"}}`,
		`{"type":"hello","tabId":"t"}`,
		`not json`,
	}
	for _, b := range bad {
		if _, err := persist.DecodeMessage([]byte(b)); !errors.Is(err, persist.ErrInvalidMessage) {
			t.Errorf("DecodeMessage(%s) = %v; want ErrInvalidMessage", b, err)
		}
	}
}

// pair makes two Persisters sharing a storage and a bus, as two processes
// sharing a cache directory would.
func pair(t *testing.T, o1, o2 *persist.Options) (shared *persist.MemoryStorage, bus *persist.MemoryBus, p1, p2 *persist.Persister, in1, in2 *recorder) {
	t.Helper()
	shared = persist.NewMemoryStorage(nil)
	bus = &persist.MemoryBus{}
	mk := func(o *persist.Options) *persist.Options {
		var x persist.Options
		if o != nil {
			x = *o
		}
		x.Bus, x.Channel = bus, persist.ChannelName("settings")
		return &x
	}
	in1, in2 = &recorder{}, &recorder{}
	p1 = newPersister(t, shared, in1, mk(o1))
	p2 = newPersister(t, shared, in2, mk(o2))
	return
}

// B-XTAB-12, B-XTAB-13: a save is announced after it succeeds; the other
// applies the stored record to its inner applier and neither saves nor
// announces it again.
func TestPersisterCrossProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared, bus, p1, _, in1, in2 := pair(t, nil, nil)
		var msgs []string
		unsub, _ := bus.Subscribe(persist.ChannelName("settings"), func(b []byte) { msgs = append(msgs, string(b)) })
		defer unsub()
		apply(t, p1, snap(1, "from p1"))
		synctest.Wait()
		if got := in2.datas(); got != `1:"from p1"` {
			t.Errorf("p2 applied %s; want p1's save", got)
		}
		if got := in1.datas(); got != `1:"from p1"` {
			t.Errorf("p1 applied %s; want its own snapshot once", got)
		}
		if n := len(shared.SavedRecords()); n != 1 || len(msgs) != 1 {
			t.Errorf("%d saves, %d messages; want 1 and 1 (no re-save, no re-broadcast)", n, len(msgs))
		}
		if len(msgs) == 1 && !strings.Contains(msgs[0], `"payload":{"revision":"1"}`) || strings.Contains(msgs[0], "from p1") {
			t.Errorf("message %s; want a notice with the revision and without the data", msgs)
		}
	})
}

// B-XTAB-14: a notice is gated against what the receiver applied; a
// record that fails the load checks is not applied and is reported; an
// inner apply error is reported as crosstab; malformed messages are
// reported.
func TestPersisterCrossProcessGateAndErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log errorLog
		shared, bus, p1, p2, _, in2 := pair(t, nil, &persist.Options{OnError: log.add})
		apply(t, p2, snap(5, "p2 at 5"))
		synctest.Wait()
		for _, s := range []statesync.Snapshot{
			snap(3, "stale"), // p1 is behind: not saved over 5 either
			snap(6, "newer"), // applied by p2
			{Revision: 1, Epoch: "e2", Data: []byte(`"new epoch"`)},
		} {
			apply(t, p1, s)
			synctest.Wait()
		}
		if got := in2.datas(); got != `5:"p2 at 5" 6:"newer" 1:"new epoch"` {
			t.Errorf("p2 applied %s; want 5, then p1's 6 and the new epoch, not the stale 3", got)
		}
		if errs := log.all(); len(errs) != 0 {
			t.Errorf("p2 reported %v; want nothing", errs)
		}

		// A tampered record is never applied.
		r, _ := shared.Raw()
		bad := r
		bad.Meta.Revision, bad.Meta.Epoch = 9, "e2"
		shared.Save(context.Background(), bad)
		bus.Publish(context.Background(), persist.ChannelName("settings"), []byte(`{"type":"snapshot","tabId":"x","payload":{"revision":"9","epoch":"e2"}}`))
		bus.Publish(context.Background(), persist.ChannelName("settings"), []byte(`{"type":"snapshot","tabId":"x","payload":{"revision":"009"}}`))
		synctest.Wait()
		errs := log.all()
		var integrity, invalid int
		for _, e := range errs {
			if e.Op == persist.OpCrossTab && errors.Is(e, persist.ErrIntegrity) {
				integrity++
			}
			if e.Op == persist.OpCrossTab && errors.Is(e, persist.ErrInvalidMessage) {
				invalid++
			}
		}
		if len(errs) != 2 || integrity != 1 || invalid != 1 {
			t.Errorf("p2 reported %v; want a crosstab ErrIntegrity and a crosstab ErrInvalidMessage", errs)
		}
		if got := in2.datas(); strings.Count(got, ":") != 3 {
			t.Errorf("p2 applied %s; want nothing more", got)
		}

		// An inner apply error is reported as crosstab.
		in2.mu.Lock()
		in2.err = errors.New("inner down")
		in2.mu.Unlock()
		apply(t, p1, statesync.Snapshot{Revision: 10, Epoch: "e2", Data: []byte(`"x"`)})
		synctest.Wait()
		errs = log.all()
		if last := errs[len(errs)-1]; last.Op != persist.OpCrossTab || !strings.Contains(last.Error(), "inner down") {
			t.Errorf("last report %v; want the inner error as crosstab", last)
		}
	})
}

// B-XTAB-14: with a consumer attached, another process's snapshot goes
// through the consumer's gate and advances its revision.
func TestPersisterCrossProcessAttached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, p1, p2, _, in2 := pair(t, nil, nil)
		srv := &server{snap: statesync.Snapshot{Revision: 2, Data: []byte(`"server"`)}}
		c, err := statesync.NewConsumer("settings", memsync.New(nil), srv, p2, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		if _, err := persist.StartWithCache(context.Background(), c, p2); err != nil {
			t.Fatal(err)
		}
		apply(t, p1, snap(4, "other process"))
		synctest.Wait()
		if c.Revision() != 4 {
			t.Errorf("consumer revision = %d; want 4 (advanced by the other process's save)", c.Revision())
		}
		if got := in2.datas(); got != `2:"server" 4:"other process"` {
			t.Errorf("p2 applied %s", got)
		}
	})
}

// B-XTAB-15, B-BOOT-06: clear reaches the others, which drop their
// pending save, emit cleared and call OnClear; request-sync is answered
// when asked to.
func TestPersisterCrossProcessClearAndSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cleared := 0
		shared, bus, p1, p2, _, _ := pair(t, &persist.Options{AnswerSyncRequests: true}, &persist.Options{Debounce: time.Hour, OnClear: func() { cleared++ }})
		events := 0
		p2.On(persist.EventCleared, func(persist.Event) { events++ })
		apply(t, p1, snap(1, "a"))
		apply(t, p2, snap(2, "pending in p2"))
		synctest.Wait()
		if err := p1.Clear(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if cleared != 1 || events != 1 || p2.HasPendingSave() {
			t.Errorf("after p1.Clear: OnClear %d, cleared events %d, p2 pending %v; want 1, 1, false", cleared, events, p2.HasPendingSave())
		}
		if _, ok, _ := shared.Load(context.Background()); ok {
			t.Errorf("storage holds a record after Clear")
		}

		apply(t, p1, snap(3, "b"))
		synctest.Wait()
		var got []string
		unsub, _ := bus.Subscribe(persist.ChannelName("settings"), func(b []byte) { got = append(got, string(b)) })
		defer unsub()
		p2.RequestSync(context.Background())
		synctest.Wait()
		if joined := strings.Join(got, " "); len(got) != 2 || !strings.Contains(joined, `"type":"request-sync"`) ||
			!strings.Contains(joined, `"type":"snapshot","tabId":"`+p1.TabID()+`","payload":{"revision":"3"}`) {
			t.Errorf("messages after request-sync %q; want the request and p1's answer with revision 3", got)
		}
		var log errorLog
		if err := persist.ClearPersisted(context.Background(), shared, bus, persist.ChannelName("settings")); err != nil {
			t.Errorf("ClearPersisted() = %v", err)
		}
		synctest.Wait()
		if cleared != 2 || len(log.all()) != 0 {
			t.Errorf("OnClear called %d times after ClearPersisted; want 2", cleared)
		}
	})
}

// The SocketBus carries notices between buses on one directory, as
// between processes; a stale socket is removed; Close waits for its
// goroutine.
func TestSocketBus(t *testing.T) {
	dir := shortTempDir(t)
	a, err := persist.OpenSocketBus(dir)
	if err != nil {
		t.Skipf("Unix datagram sockets unavailable: %v", err)
	}
	defer a.Close()
	b, err := persist.OpenSocketBus(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stale, err := persist.OpenSocketBus(dir)
	if err != nil {
		t.Fatal(err)
	}
	staleFiles, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	stale.Close()
	// Leave a socket file of a dead process behind.
	deadPath := filepath.Join(dir, "0000000000000000.sock")
	os.WriteFile(deadPath, nil, 0o600)

	got := make(chan string, 10)
	unsub, _ := b.Subscribe("ch", func(m []byte) { got <- "b:" + string(m) })
	defer unsub()
	unsubA, _ := a.Subscribe("ch", func(m []byte) { got <- "a:" + string(m) })
	defer unsubA()
	if err := a.Publish(context.Background(), "ch", []byte("hello")); err != nil {
		t.Errorf("Publish() = %v", err)
	}
	want := map[string]bool{"a:hello": true, "b:hello": true}
	for range 2 {
		select {
		case m := <-got:
			if !want[m] {
				t.Errorf("received %q; want a:hello and b:hello", m)
			}
			delete(want, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("no delivery within 10s; still waiting for %v", want)
		}
	}
	if _, err := os.Stat(deadPath); !os.IsNotExist(err) {
		t.Errorf("socket file of a dead process still there (%v); want it removed", err)
	}
	if len(staleFiles) != 3 {
		t.Errorf("%d sockets while three buses were open; want 3", len(staleFiles))
	}
	if err := a.Publish(context.Background(), "ch", make([]byte, persist.MaxSocketMessage)); err == nil {
		t.Errorf("Publish() of an oversized message = nil error; want an error")
	}
}

// shortTempDir returns a temporary directory with a path short enough for
// Unix sockets.
func shortTempDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "ps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// B-XTAB-16, B-BOOT: two real processes share a file cache and a socket
// bus: a save in the child reaches this process's applier, checked and
// gated, and this process does not write it again.
func TestCrossProcessTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := shortTempDir(t)
	applied := make(chan statesync.Snapshot, 10)
	inner := statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
		applied <- s
		return nil
	})
	p, bus, store := openShared(t, dir, inner)
	defer bus.Close()
	defer p.Close(context.Background())
	_ = store

	for _, rev := range []int{3, 2, 7} { // 2 is stale: the child does not even save it
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=xproc "+dir+" "+strconv.Itoa(rev))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
	}
	var got []string
	timeout := time.After(20 * time.Second)
	for len(got) < 2 {
		select {
		case s := <-applied:
			got = append(got, fmt.Sprintf("%d:%s", s.Revision, s.Data))
		case <-timeout:
			t.Fatalf("applied %v within 20s; want revisions 3 and 7", got)
		}
	}
	if strings.Join(got, " ") != `3:{"from":"child","rev":3} 7:{"from":"child","rev":7}` {
		t.Errorf("applied %v; want the child's revisions 3 and 7", got)
	}
	if st := p.Stats(); st.SaveCount != 0 {
		t.Errorf("this process saved %d times; want 0 (the child's records are not saved again)", st.SaveCount)
	}
}

// openShared opens the file cache of dir and its socket bus.
func openShared(t testing.TB, dir string, inner statesync.Applier) (*persist.Persister, *persist.SocketBus, *persist.FileStorage) {
	store, err := persist.NewFileStorage(dir, "settings", nil)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := persist.OpenSocketBus(filepath.Join(dir, "bus"))
	if err != nil {
		t.Skipf("Unix datagram sockets unavailable: %v", err)
	}
	p, err := persist.New(store, inner, &persist.Options{Topic: "settings", Hash: true, Bus: bus, Channel: persist.ChannelName("settings")})
	if err != nil {
		t.Fatal(err)
	}
	return p, bus, store
}

// xprocChild saves one snapshot in the shared cache of dir and exits.
func xprocChild(arg string) int {
	dir, revText, _ := strings.Cut(arg, " ")
	rev, _ := strconv.Atoi(revText)
	store, err := persist.NewFileStorage(dir, "settings", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	bus, err := persist.OpenSocketBus(filepath.Join(dir, "bus"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer bus.Close()
	p, err := persist.New(store, statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil }),
		&persist.Options{Topic: "settings", Hash: true, Bus: bus, Channel: persist.ChannelName("settings")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	data, _ := json.Marshal(map[string]any{"from": "child", "rev": rev})
	p.Apply(context.Background(), statesync.Snapshot{Revision: statesync.Revision(rev), Data: data})
	if err := p.Close(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}
