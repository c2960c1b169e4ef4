package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/cluster"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/svc"
)

const chromiumPath = "/usr/bin/chromium"

// browserFollower is statesync.js in a headless Chromium page served by a
// daemon, following one topic; the page keeps the last snapshot it
// applied in window.last.
type browserFollower struct {
	ctx context.Context
}

func newBrowserFollower(t *testing.T, daemonURL, topic string) *browserFollower {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		svc.Missing(t, "Chromium is missing: %v (.ci/services installs it)", err)
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		cancel()
		allocCancel()
	})
	script := fmt.Sprintf(`(async () => {
		const m = await import("/statesync.js");
		const client = m.connect({});
		window.last = null;
		await client.follow(%q, (snap) => { window.last = {revision: String(snap.revision), epoch: snap.epoch || ""}; });
		return true;
	})()`, topic)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(daemonURL+"/")); err != nil {
		t.Fatalf("browser follower: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](script, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("browser follower: %v", err)
	}
	return &browserFollower{ctx: ctx}
}

// last returns the page's last applied revision and epoch.
func (b *browserFollower) last(t testing.TB) (statesync.Revision, string) {
	type state struct {
		Revision string `json:"revision"`
		Epoch    string `json:"epoch"`
	}
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[state](`window.last || {revision: "0", epoch: ""}`))
	if err != nil {
		t.Fatalf("browser follower: %v", err)
	}
	r, _ := strconv.ParseUint(v.Revision, 10, 64)
	return statesync.Revision(r), v.Epoch
}

// The store loses its history (the topics table emptied): every daemon
// reports a new epoch, and every consumer, Go or statesync.js in
// Chromium, converges within 5 s to what is written next.
func TestLoseHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		if len(b.losses) == 0 {
			t.Fatal("the backend has no way to lose its history")
		}
		for _, loss := range b.losses {
			t.Run(loss.name, func(t *testing.T) { testLoseHistory(t, b, loss) })
		}
	})
}

func testLoseHistory(t *testing.T, b backend, loss historyLoss) {
	c := start(t, b)
	before := write(t, c.Nodes[0].Client, "history", "before")
	lose := loss.prepare(t)
	// What the loss takes away: writes after the dump, which a restore
	// makes the store forget.
	for i := range 3 {
		before = write(t, c.Nodes[i].Client, "history", fmt.Sprint("before ", i))
	}
	fs := make([]*cluster.Follower, len(c.Nodes))
	for i, n := range c.Nodes {
		fs[i] = cluster.Follow(t, "history", n.Client, n.Client)
	}
	page := newBrowserFollower(t, c.Nodes[2].URL, "history")
	cluster.WaitAll(t, 10*time.Second, fs, map[string]statesync.Snapshot{"history": before})
	poll.Until(t, "the page applies the first write", func() bool {
		r, e := page.last(t)
		return r == before.Revision && e == before.Epoch
	})

	lose(t)
	lost := time.Now()
	// Without a write after it: every consumer converges to what the
	// store holds now, in its new epoch.
	var cur statesync.Snapshot
	poll.Within(t, 5*time.Second, "the store's new epoch", func() (bool, string) {
		snap, err := c.Nodes[0].Client.Snapshot(context.Background(), "history")
		if err != nil {
			return false, err.Error()
		}
		cur = snap
		return snap.Epoch != before.Epoch, "epoch " + snap.Epoch
	})
	cluster.WaitAll(t, 5*time.Second-time.Since(lost), fs, map[string]statesync.Snapshot{"history": cur})
	t.Logf("every Go consumer at the store's new epoch %v after the loss", time.Since(lost).Round(time.Millisecond))
	var after statesync.Snapshot
	poll.Within(t, 5*time.Second, "a write in a new epoch", func() (bool, string) {
		snap, err := c.Nodes[1].Client.Put(context.Background(), "history", cluster.JSON("after"))
		if err != nil {
			return false, err.Error()
		}
		after = snap
		return snap.Epoch != before.Epoch, "epoch " + snap.Epoch
	})
	cluster.WaitAll(t, 5*time.Second-time.Since(lost), fs, map[string]statesync.Snapshot{"history": after})
	poll.Within(t, 5*time.Second, "the page applies the new epoch", func() (bool, string) {
		r, e := page.last(t)
		return e == after.Epoch && r >= after.Revision, fmt.Sprintf("%d/%s", r, e)
	})
	for _, n := range c.Nodes {
		snap, err := n.Client.Snapshot(context.Background(), "history")
		if err != nil {
			t.Fatal(err)
		}
		if snap.Epoch != after.Epoch {
			t.Errorf("daemon %s reports epoch %s, want %s", n.Name, snap.Epoch, after.Epoch)
		}
	}
}

// The store's server crashes (PostgreSQL: pg_ctl -m immediate) and is
// started again: no revision goes below an acknowledged one, the epoch is
// the same, and the daemons carry on.
func TestStoreCrash(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			b, crash := be.crashable(t)
			testStoreCrash(t, b, crash)
		})
	}
}

func testStoreCrash(t *testing.T, b backend, crash func(t testing.TB)) {
	c := start(t, b)
	ctx := context.Background()
	acked := make(map[string]statesync.Snapshot)
	for i := range 20 {
		topic := fmt.Sprintf("crash-%02d", i)
		acked[topic] = write(t, c.Nodes[i%3].Client, topic, i)
	}
	crash(t)
	// Daemon A starts again with an empty memory: what it answers comes
	// from the store. B and C carry on.
	c.Nodes[0].Restart(t)
	for i := range 20 {
		topic := fmt.Sprintf("crash-%02d", i)
		want := acked[topic]
		for _, n := range c.Nodes {
			var snap statesync.Snapshot
			poll.UntilState(t, "a read after the restart", func() (bool, string) {
				var err error
				snap, err = n.Client.Snapshot(statesync.WithMinRevision(ctx, want.Epoch, want.Revision), topic)
				if err != nil {
					return false, err.Error()
				}
				// A store whose epoch changes with its server's restart:
				// wait until the daemon has heard of it.
				return !b.crashNewEpoch || snap.Epoch != want.Epoch, "epoch " + snap.Epoch
			})
			if snap.Revision < want.Revision || (snap.Epoch != want.Epoch) != b.crashNewEpoch || !jsonEqual(snap.Data, cluster.JSON(i)) {
				t.Errorf("daemon %s, %s: %d/%s %s after the crash, acknowledged %d/%s %d", n.Name, topic, snap.Revision, snap.Epoch, snap.Data, want.Revision, want.Epoch, i)
			}
		}
	}
	next := write(t, c.Nodes[0].Client, "crash-00", "after")
	if next.Revision <= acked["crash-00"].Revision || (next.Epoch != acked["crash-00"].Epoch) != b.crashNewEpoch {
		t.Errorf("write after the crash: %d/%s, before %d/%s", next.Revision, next.Epoch, acked["crash-00"].Revision, acked["crash-00"].Epoch)
	}
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// daemonBinary builds cmd/statesync once per test process.
func daemonBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "statesync-cluster-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "statesync")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/statesync-go/statesync/cmd/statesync").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SIGKILL of one daemon process: the consumers behind the load balancer
// reconnect to the others and converge, and every acknowledged write is
// readable at or above its revision.
func TestKillDaemon(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		// A fourth daemon, a process of its own, joins the balancer.
		addr := freeAddr(t)
		cmd := exec.Command(daemonBinary(t), "serve", "--addr", addr, "--store", b.StoreURL(b.Target))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		t.Cleanup(func() {
			if !killed {
				_ = cmd.Process.Kill()
			}
			_ = cmd.Wait()
		})
		victim := "http://" + addr
		poll.Until(t, "the daemon process serves", func() bool {
			n := cluster.Node{URL: victim}
			code, _, err := n.Health()
			return err == nil && code == 200
		})
		addrs := []string{addr}
		for _, n := range c.Nodes {
			addrs = append(addrs, n.URL[len("http://"):])
		}
		c.LB.SetTargets(addrs...)

		const n = 12
		fs := make([]*cluster.Follower, n)
		want := map[string]statesync.Snapshot{}
		for i := range fs {
			topic := fmt.Sprintf("kill-%02d", i)
			want[topic] = write(t, c.Nodes[0].Client, topic, 0)
			// One client each, so that their streams spread over the
			// balancer's targets, the process included.
			cl, err := httpsync.NewClient(c.LBURL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cl.Close() })
			fs[i] = cluster.Follow(t, topic, cl, cl)
		}
		cluster.WaitAll(t, 10*time.Second, fs, want)

		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed = true
		for topic := range want {
			want[topic] = write(t, c.Nodes[1].Client, topic, 1)
		}
		took := cluster.WaitAll(t, 20*time.Second, fs, want)
		t.Logf("consumers converged %v after the kill", took)
		for topic, w := range want {
			snap, err := c.Nodes[2].Client.Snapshot(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Epoch != w.Epoch || snap.Revision < w.Revision {
				t.Errorf("%s: %d/%s, acknowledged %d/%s", topic, snap.Revision, snap.Epoch, w.Revision, w.Epoch)
			}
		}
	})
}

// A rolling restart: each daemon in turn is shut down gracefully and
// started again while a writer writes through the balancer. Every
// consumer (their streams spread over the daemons by the balancer) ends
// at every topic's last acknowledged write, and no revision goes back.
func TestRollingRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		const n = 12
		topics := make([]string, n)
		fs := make([]*cluster.Follower, n)
		var mu sync.Mutex
		want := map[string]statesync.Snapshot{}
		for i := range fs {
			topics[i] = fmt.Sprintf("roll-%02d", i)
			want[topics[i]] = write(t, c.Nodes[0].Client, topics[i], 0)
			cl, err := httpsync.NewClient(c.LBURL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cl.Close() })
			fs[i] = cluster.Follow(t, topics[i], cl, cl)
		}
		cluster.WaitAll(t, 10*time.Second, fs, want)

		writer, err := httpsync.NewClient(c.LBURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer writer.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var acked, failed int
		wg.Go(func() {
			for i := 1; ctx.Err() == nil; i++ {
				topic := topics[i%n]
				snap, err := writer.Put(ctx, topic, cluster.JSON(i))
				mu.Lock()
				if err != nil {
					failed++ // a connection to a daemon going down; the next try goes elsewhere
				} else {
					acked++
					want[topic] = snap
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
		// Some writes are acknowledged between restarts, and after the last.
		moreWrites := func() {
			mu.Lock()
			from := acked
			mu.Unlock()
			poll.Until(t, "more acknowledged writes", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return acked >= from+10
			})
		}
		for _, node := range c.Nodes {
			moreWrites()
			node.Restart(t)
			poll.Until(t, "daemon "+node.Name+" ready after its restart", func() bool {
				code, _, err := node.Health()
				return err == nil && code == 200
			})
		}
		moreWrites()
		cancel()
		wg.Wait()
		mu.Lock()
		t.Logf("%d writes acknowledged during the restarts, %d attempts failed", acked, failed)
		if acked == 0 {
			t.Fatal("no write was acknowledged during the restarts")
		}
		final := maps.Clone(want)
		mu.Unlock()
		took := cluster.WaitAll(t, 10*time.Second, fs, final)
		t.Logf("consumers converged %v after the last restart", took)
	})
}
