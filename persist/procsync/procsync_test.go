package procsync_test

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
	"github.com/statesync-go/statesync/persist/procsync"
)

// recorder is an Applier that records what it applies.
type recorder struct {
	mu      sync.Mutex
	applied []statesync.Snapshot
	err     error // returned by Apply
}

func (r *recorder) Apply(ctx context.Context, s statesync.Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	s.Data = append(json.RawMessage(nil), s.Data...)
	r.applied = append(r.applied, s)
	return nil
}

func (r *recorder) datas() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, x := range r.applied {
		s = append(s, fmt.Sprintf("%d:%s", x.Revision, x.Data))
	}
	return strings.Join(s, " ")
}

// errorLog collects reported errors.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(e error)                 { l.mu.Lock(); l.errs = append(l.errs, e); l.mu.Unlock() }
func (l *errorLog) addPersist(e *persist.Error) { l.add(e) }
func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func snap(rev statesync.Revision, data string) statesync.Snapshot {
	return statesync.Snapshot{Revision: rev, Data: []byte(`"` + data + `"`)}
}

func apply(t testing.TB, p *persist.Persister, s statesync.Snapshot) {
	t.Helper()
	if err := p.Apply(context.Background(), s); err != nil {
		t.Fatalf("Apply(%d) = %v", s.Revision, err)
	}
}

var channel = procsync.ChannelName("settings")

// member is one process of a test: a Persister and its Peer.
type member struct {
	p     *persist.Persister
	peer  *procsync.Peer
	inner *recorder
}

// join makes a Persister on storage and joins it to bus.
func join(t *testing.T, storage persist.Storage, bus procsync.Bus, po *persist.Options, o *procsync.Options) member {
	t.Helper()
	m := member{inner: &recorder{}}
	p, err := persist.New(storage, m.inner, po)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	peer, err := procsync.Join(p, bus, channel, o)
	if err != nil {
		t.Fatalf("Join() = %v", err)
	}
	t.Cleanup(func() {
		peer.Close()
		p.Close()
	})
	m.p, m.peer = p, peer
	return m
}

// pair makes two members sharing a storage and a bus, as two processes
// sharing a cache directory would.
func pair(t *testing.T, po1, po2 *persist.Options, o1, o2 *procsync.Options) (*persist.MemoryStorage, *procsync.MemoryBus, member, member) {
	t.Helper()
	shared := persist.NewMemoryStorage(nil)
	bus := &procsync.MemoryBus{}
	return shared, bus, join(t, shared, bus, po1, o1), join(t, shared, bus, po2, o2)
}

// messages records what is published on the channel.
func messages(t *testing.T, bus procsync.Bus) func() []string {
	var mu sync.Mutex
	var got []string
	unsub, _ := bus.Subscribe(channel, func(b []byte) { mu.Lock(); got = append(got, string(b)); mu.Unlock() })
	t.Cleanup(unsub)
	return func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

// B-XTAB-01..06, B-XTAB-09, B-XTAB-11, B-XTAB-12, B-XTAB-13: a save is
// announced after it succeeds, with its revision and without its data, on
// the Peer's channel only; the other Peer reloads the stored record into
// its inner applier and neither saves nor announces it again; a Peer never
// receives its own messages, and is silent after Close.
func TestPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared, bus, a, b := pair(t, nil, nil, nil, nil)
		msgs := messages(t, bus)
		var otherMsgs []string
		unsub, _ := bus.Subscribe("other", func(m []byte) { otherMsgs = append(otherMsgs, string(m)) })
		defer unsub()
		if a.peer.ID() == "" || a.peer.ID() == b.peer.ID() || len(a.peer.ID()) != 36 || a.peer.ID()[14] != '4' {
			t.Errorf("ids %q %q; want two distinct UUIDv4", a.peer.ID(), b.peer.ID())
		}
		apply(t, a.p, snap(1, "from a"))
		synctest.Wait()
		if got := b.inner.datas(); got != `1:"from a"` {
			t.Errorf("b applied %s; want a's save", got)
		}
		if got := a.inner.datas(); got != `1:"from a"` {
			t.Errorf("a applied %s; want its own snapshot once", got)
		}
		got := msgs()
		if n := len(shared.SavedRecords()); n != 1 || len(got) != 1 {
			t.Errorf("%d saves, %d messages; want 1 and 1 (no re-save, no re-announce)", n, len(got))
		}
		if len(got) == 1 && (!strings.Contains(got[0], `"type":"snapshot","tabId":"`+a.peer.ID()+`","payload":{"revision":"1"}`) || strings.Contains(got[0], "from a")) {
			t.Errorf("message %s; want a notice with the revision and without the data", got)
		}
		if len(otherMsgs) != 0 {
			t.Errorf("another channel received %q; want nothing", otherMsgs)
		}

		b.peer.Close()
		b.peer.Close()
		apply(t, a.p, snap(2, "after close"))
		synctest.Wait()
		apply(t, b.p, snap(3, "b alone"))
		synctest.Wait()
		if got := b.inner.datas(); got != `1:"from a" 3:"b alone"` {
			t.Errorf("b applied %s after its Peer closed; want nothing from a", got)
		}
		if n := len(msgs()); n != 2 {
			t.Errorf("%d messages; want 2 (b's Peer closed announces nothing)", n)
		}
	})
}

// B-XTAB-07, B-XTAB-08: NoReceive processes nothing; NoBroadcast announces
// no save but still sends request-sync and clear.
func TestPeerOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := persist.NewMemoryStorage(nil)
		bus := &procsync.MemoryBus{}
		msgs := messages(t, bus)
		deaf := join(t, shared, bus, nil, &procsync.Options{NoReceive: true})
		quiet := join(t, shared, bus, nil, &procsync.Options{NoBroadcast: true})
		apply(t, quiet.p, snap(1, "quiet"))
		synctest.Wait()
		quiet.peer.RequestSync(context.Background())
		if err := quiet.peer.Clear(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		var types []string
		for _, m := range msgs() {
			var x struct{ Type string }
			json.Unmarshal([]byte(m), &x)
			types = append(types, x.Type)
		}
		if got := strings.Join(types, ","); got != "request-sync,clear" {
			t.Errorf("messages from a NoBroadcast Peer %q; want request-sync,clear", got)
		}
		if got := deaf.inner.datas(); got != "" {
			t.Errorf("NoReceive member applied %s; want nothing", got)
		}
	})
}

// B-XTAB-10: a Bus whose Subscribe fails makes Join fail; the Persister
// works alone.
func TestJoinFails(t *testing.T) {
	p, err := persist.New(persist.NewMemoryStorage(nil), &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for name, bus := range map[string]procsync.Bus{"nil": nil, "failing": failingBus{}} {
		if peer, err := procsync.Join(p, bus, channel, nil); err == nil {
			peer.Close()
			t.Errorf("Join() with a %s bus = nil error; want an error", name)
		}
	}
	apply(t, p, snap(1, "alone"))
	if err := p.Flush(context.Background()); err != nil {
		t.Errorf("Flush() = %v", err)
	}
}

type failingBus struct{}

func (failingBus) Publish(context.Context, string, []byte) error { return errors.New("down") }
func (failingBus) Subscribe(string, func([]byte)) (func(), error) {
	return nil, errors.New("unsupported")
}

// B-XTAB-14: a notice is gated against what the receiver applied; a
// record that fails the load checks is not applied and is reported as a
// reload error; an inner apply error is reported as a reload error;
// malformed messages go to the Peer's OnError.
func TestPeersGateAndErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log, msgLog errorLog
		shared, bus, a, b := pair(t, nil, &persist.Options{OnError: log.addPersist}, nil, &procsync.Options{OnError: msgLog.add})
		apply(t, b.p, snap(5, "b at 5"))
		synctest.Wait()
		for _, s := range []statesync.Snapshot{
			snap(3, "stale"), // a is behind: not saved over 5 either
			snap(6, "newer"), // applied by b
			{Revision: 1, Epoch: "e2", Data: []byte(`"new epoch"`)},
		} {
			apply(t, a.p, s)
			synctest.Wait()
		}
		if got := b.inner.datas(); got != `5:"b at 5" 6:"newer" 1:"new epoch"` {
			t.Errorf("b applied %s; want 5, then a's 6 and the new epoch, not the stale 3", got)
		}
		if errs := log.all(); len(errs) != 0 {
			t.Errorf("b reported %v; want nothing", errs)
		}

		// A tampered record is never applied.
		r, _ := rawOf(shared)
		bad := r
		bad.Meta.Revision, bad.Meta.Epoch = 9, "e2"
		shared.Save(context.Background(), bad)
		bus.Publish(context.Background(), channel, []byte(`{"type":"snapshot","tabId":"x","payload":{"revision":"9","epoch":"e2"}}`))
		bus.Publish(context.Background(), channel, []byte(`{"type":"snapshot","tabId":"x","payload":{"revision":"009"}}`))
		synctest.Wait()
		errs := log.all()
		if len(errs) != 1 || !errors.Is(errs[0], persist.ErrIntegrity) || errs[0].(*persist.Error).Op != persist.OpReload {
			t.Errorf("b reported %v; want one reload ErrIntegrity", errs)
		}
		if m := msgLog.all(); len(m) != 1 || !errors.Is(m[0], procsync.ErrInvalidMessage) {
			t.Errorf("b's Peer reported %v; want one ErrInvalidMessage", m)
		}
		if got := b.inner.datas(); strings.Count(got, ":") != 3 {
			t.Errorf("b applied %s; want nothing more", got)
		}

		// An inner apply error is reported as a reload error.
		b.inner.mu.Lock()
		b.inner.err = errors.New("inner down")
		b.inner.mu.Unlock()
		apply(t, a.p, statesync.Snapshot{Revision: 10, Epoch: "e2", Data: []byte(`"x"`)})
		synctest.Wait()
		errs = log.all()
		if last := errs[len(errs)-1].(*persist.Error); last.Op != persist.OpReload || !strings.Contains(last.Error(), "inner down") {
			t.Errorf("last report %v; want the inner error as a reload error", last)
		}
	})
}

// server is a Provider with a fixed snapshot.
type server struct{ snap statesync.Snapshot }

func (s *server) Snapshot(context.Context, string) (statesync.Snapshot, error) { return s.snap, nil }

// B-XTAB-14: with a consumer given to Restore, another process's snapshot
// goes through the consumer's gate and advances its revision.
func TestPeersWithConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, a, b := pair(t, nil, nil, nil, nil)
		srv := &server{snap: statesync.Snapshot{Revision: 2, Data: []byte(`"server"`)}}
		c, err := statesync.NewConsumer("settings", memsync.New(nil), srv, b.p, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		if _, err := b.p.Restore(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		apply(t, a.p, snap(4, "other process"))
		synctest.Wait()
		if c.Revision() != 4 {
			t.Errorf("consumer revision = %d; want 4 (advanced by the other process's save)", c.Revision())
		}
		if got := b.inner.datas(); got != `2:"server" 4:"other process"` {
			t.Errorf("b applied %s", got)
		}
	})
}

// B-XTAB-15, B-BOOT-06: a clear reaches the others, which drop their
// pending save and call OnClear; request-sync is answered when asked to.
func TestPeersClearAndSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cleared := 0
		shared, bus, a, b := pair(t, nil, &persist.Options{Debounce: time.Hour},
			&procsync.Options{AnswerSyncRequests: true}, &procsync.Options{OnClear: func() { cleared++ }})
		apply(t, a.p, snap(1, "a"))
		apply(t, b.p, snap(2, "pending in b"))
		synctest.Wait()
		if err := a.peer.Clear(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if cleared != 1 || b.p.HasPendingSave() {
			t.Errorf("after a's Clear: OnClear %d, b pending %v; want 1, false", cleared, b.p.HasPendingSave())
		}
		if _, ok, _ := shared.Load(context.Background()); ok {
			t.Errorf("storage holds a record after Clear")
		}

		apply(t, a.p, snap(3, "b"))
		synctest.Wait()
		msgs := messages(t, bus)
		b.peer.RequestSync(context.Background())
		synctest.Wait()
		got := msgs()
		if joined := strings.Join(got, " "); len(got) != 2 || !strings.Contains(joined, `"type":"request-sync"`) ||
			!strings.Contains(joined, `"type":"snapshot","tabId":"`+a.peer.ID()+`","payload":{"revision":"3"}`) {
			t.Errorf("messages after request-sync %q; want the request and a's answer with revision 3", got)
		}
		if err := procsync.Clear(context.Background(), shared, bus, channel); err != nil {
			t.Errorf("Clear() = %v", err)
		}
		synctest.Wait()
		if cleared != 2 {
			t.Errorf("OnClear called %d times after procsync.Clear; want 2", cleared)
		}
	})
}

// The SocketBus carries notices between buses on one directory, as
// between processes; a stale socket is removed; Close waits for its
// goroutine.
func TestSocketBus(t *testing.T) {
	dir := shortTempDir(t)
	a, err := procsync.OpenSocketBus(dir)
	if err != nil {
		t.Skipf("Unix datagram sockets unavailable: %v", err)
	}
	defer a.Close()
	b, err := procsync.OpenSocketBus(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stale, err := procsync.OpenSocketBus(dir)
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
	if err := a.Publish(context.Background(), "ch", make([]byte, procsync.MaxMessage)); err == nil {
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
	p, peer, bus := openShared(t, dir, inner)
	defer bus.Close()
	defer p.Close()
	defer peer.Close()

	for _, rev := range []int{3, 2, 7} { // 2 is stale: the child does not even save it
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir+" "+strconv.Itoa(rev))
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
func openShared(t testing.TB, dir string, inner statesync.Applier) (*persist.Persister, *procsync.Peer, *procsync.SocketBus) {
	store, err := persist.NewFileStorage(dir, "settings", nil)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := procsync.OpenSocketBus(filepath.Join(dir, "bus"))
	if err != nil {
		t.Skipf("Unix datagram sockets unavailable: %v", err)
	}
	p, err := persist.New(store, inner, &persist.Options{Topic: "settings", Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	peer, err := procsync.Join(p, bus, channel, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, peer, bus
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
	bus, err := procsync.OpenSocketBus(filepath.Join(dir, "bus"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer bus.Close()
	p, err := persist.New(store, statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil }),
		&persist.Options{Topic: "settings", Hash: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	peer, err := procsync.Join(p, bus, channel, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer peer.Close()
	data, _ := json.Marshal(map[string]any{"from": "child", "rev": rev})
	p.Apply(context.Background(), statesync.Snapshot{Revision: statesync.Revision(rev), Data: data})
	if err := p.Shutdown(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// rawOf returns the record stored in s.
func rawOf(s persist.Storage) (persist.Record, bool) {
	r, ok, err := s.Load(context.Background())
	if err != nil {
		panic(err)
	}
	return r, ok
}
