//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
)

// sigkillSeed seeds the kill points and payload sizes; a failure names it.
const sigkillSeed = 0x5eed_2026

// sigkillWriters is the number of concurrent writers of the SIGKILL test.
const sigkillWriters = 16

// buildStatesync builds the statesync binary into a temporary directory.
func buildStatesync(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build statesync: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "statesync")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a `statesync serve` subprocess.
type proc struct {
	cmd    *exec.Cmd
	url    string
	hc     *http.Client
	stderr *lockedbuf.Buffer
	exited chan struct{} // closed when the process has been waited for
	err    error         // what Wait returned; read after exited is closed
}

// startProc starts `statesync serve` on a free loopback port with the data
// directory dir and waits until it answers /healthz. The test's cleanup
// kills it if it still runs.
func startProc(t *testing.T, bin, dir string) *proc {
	t.Helper()
	return startProcArgs(t, bin, "--data", dir)
}

// startProcArgs starts `statesync serve` on a free loopback port with the
// flags args, as startProc does.
func startProcArgs(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STATESYNC_") {
			env = append(env, kv)
		}
	}
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		p := &proc{
			url:    "http://" + addr,
			hc:     &http.Client{Transport: &http.Transport{}},
			stderr: &lockedbuf.Buffer{},
			exited: make(chan struct{}),
		}
		p.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--shutdown-timeout", "5s"}, args...)...)
		p.cmd.Env = env
		p.cmd.Stderr = p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		go func() {
			p.err = p.cmd.Wait()
			close(p.exited)
		}()
		t.Cleanup(func() {
			p.signal(t, syscall.SIGKILL)
			p.hc.CloseIdleConnections()
		})
		if p.waitHealthy(t) {
			return p
		}
		// Another process may have taken the free port in between.
		if attempt < 3 && strings.Contains(p.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("statesync serve exited before serving: %v\n%s", p.err, p.stderr.String())
	}
}

// waitHealthy polls /healthz until it answers 200 (true) or the process
// exits (false).
func (p *proc) waitHealthy(t *testing.T) bool {
	t.Helper()
	exited := false
	poll.UntilState(t, "statesync serve answering /healthz", func() (bool, string) {
		select {
		case <-p.exited:
			exited = true
			return true, ""
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/healthz", nil)
		resp, err := p.hc.Do(req)
		if err != nil {
			return false, "stderr:\n" + p.stderr.String()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, "stderr:\n" + p.stderr.String()
	})
	return !exited
}

// signal sends sig to the process, unless it has exited, and waits until
// it has.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Errorf("signal %v: %v", sig, err)
	}
	select {
	case <-p.exited:
	case <-time.After(waitFor):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("statesync serve still running %v after %v", waitFor, sig)
	}
}

// do makes a request of the process; err is the transport's (the process
// may be dying).
func (p *proc) do(method, path, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// eventLog follows an event stream of the process and records the
// invalidations it receives until the stream ends.
type eventLog struct {
	mu   sync.Mutex
	invs []statesync.Invalidation
	err  error // why the stream ended
	done chan struct{}
}

// follow opens GET /v1/events for topics and waits for its first frames.
func (p *proc) follow(t *testing.T, topics []string) *eventLog {
	t.Helper()
	q := "topic=" + strings.Join(topics, "&topic=")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/v1/events?"+q, nil)
	resp, err := p.hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET /v1/events?%s = %v, %v; want 200", q, resp, err)
	}
	l := &eventLog{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				return
			}
			if data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: "); ok {
				inv, err := statesync.DecodeInvalidation([]byte(data))
				l.mu.Lock()
				if err != nil {
					l.err = fmt.Errorf("bad frame %q: %v", data, err)
				} else {
					l.invs = append(l.invs, inv)
				}
				l.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	poll.UntilState(t, "an event stream frame per topic", func() (bool, string) {
		n := len(l.snapshot())
		return n >= len(topics), fmt.Sprintf("%d frames", n)
	})
	return l
}

func (l *eventLog) snapshot() []statesync.Invalidation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]statesync.Invalidation(nil), l.invs...)
}

// topicState is what the test knows of one topic, which only its own
// writer writes, one request at a time.
type topicState struct {
	name    string
	nextSeq int                // sequence number of the next write (unique per topic)
	ackRev  statesync.Revision // revision of the last acknowledged write (or found after a restart)
	ackSeq  int                // its sequence number; 0 for null
	pending int                // sequence number of a write sent and never acknowledged; 0 if none
}

// seqOf returns the sequence number in data (0 for null).
func seqOf(data json.RawMessage) (int, error) {
	if string(data) == "null" {
		return 0, nil
	}
	var v struct {
		Seq int `json:"seq"`
	}
	err := json.Unmarshal(data, &v)
	if err == nil && v.Seq == 0 {
		err = fmt.Errorf("no seq in %.40s", data)
	}
	return v.Seq, err
}

// recover checks the topics after a restart: each holds its last
// acknowledged write, or the write that was in flight at the crash, and no
// revision went back. It adopts what it finds and returns the epoch.
func recoverTopics(t *testing.T, p *proc, states []*topicState) (epoch string, inFlightKept int) {
	t.Helper()
	for _, st := range states {
		status, b, err := p.do(http.MethodGet, "/v1/topics/"+st.name, "")
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET %s after restart = %d %s, %v; want 200", st.name, status, b, err)
		}
		snap, err := statesync.DecodeSnapshot(b)
		if err != nil {
			t.Fatalf("GET %s = %s: %v", st.name, b, err)
		}
		seq, err := seqOf(snap.Data)
		if err != nil {
			t.Fatalf("GET %s: %v", st.name, err)
		}
		switch {
		case snap.Revision < st.ackRev:
			t.Errorf("%s after restart at revision %v; want at least %v (acknowledged): revisions went back", st.name, snap.Revision, st.ackRev)
		case seq == st.ackSeq && snap.Revision == st.ackRev:
			// The acknowledged write; an unacknowledged one was lost.
		case st.pending != 0 && seq == st.pending && snap.Revision > st.ackRev:
			inFlightKept++ // the write in flight at the crash had committed
		default:
			t.Errorf("%s after restart = revision %v seq %d; want revision %v seq %d (acknowledged) or seq %d above it (in flight)",
				st.name, snap.Revision, seq, st.ackRev, st.ackSeq, st.pending)
		}
		if epoch != "" && snap.Epoch != epoch {
			t.Errorf("%s epoch %q; want the epoch %q of the other topics", st.name, snap.Epoch, epoch)
		}
		epoch = snap.Epoch
		st.ackRev, st.ackSeq, st.pending = snap.Revision, seq, 0
	}
	if strings.Contains(p.stderr.String(), "level=ERROR") {
		t.Errorf("statesync serve logged errors after the restart:\n%s", p.stderr.String())
	}
	return epoch, inFlightKept
}

// TestSignals runs the built binary. SIGKILL: a daemon killed at random
// points of a stream of writes by 16 concurrent writers restarts cleanly
// on the same data directory with every acknowledged write (bbolt fsyncs
// the transaction holding a write, shared with the concurrent ones,
// before the response), revisions never going back and new writes
// continuing above them, in a new epoch (B-REV-13). SIGTERM: a graceful exit with status
// 0 that ends the event streams.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it repeatedly")
	}
	bin := buildStatesync(t)
	dir := t.TempDir()
	// 16 topics, each with a writer of its own: concurrent writes share
	// bbolt transactions (group commit), and each acknowledged one must
	// still be there after the kill.
	names := []string{"t0", "t1", "t2:x", "t3.y"}
	for i := len(names); i < sigkillWriters; i++ {
		names = append(names, fmt.Sprintf("t%d", i))
	}
	states := make([]*topicState, len(names))
	for i, name := range names {
		states[i] = &topicState{name: name, nextSeq: 1}
	}

	t.Run("SIGKILL", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(sigkillSeed, 0))
		t.Logf("seed %#x", sigkillSeed)
		const rounds = 10
		var epochs []string
		totalAcked, kept := 0, 0
		for round := range rounds {
			p := startProc(t, bin, dir)
			epoch, k := recoverTopics(t, p, states)
			kept += k
			for _, e := range epochs {
				if e == epoch {
					t.Errorf("round %d: epoch %q again; want a new epoch at each start", round, epoch)
				}
			}
			epochs = append(epochs, epoch)
			if t.Failed() {
				t.FailNow()
			}

			events := p.follow(t, names)
			start := make(map[string]statesync.Revision, len(states))
			for _, st := range states {
				start[st.name] = st.ackRev
			}

			killAt := int64(1 + rng.IntN(25*sigkillWriters)) // acknowledged writes before the kill
			var acks atomic.Int64
			killNow := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			errs := make(chan error, len(states))
			for _, st := range states {
				wrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
				wg.Go(func() {
					for {
						seq := st.nextSeq
						st.nextSeq++
						st.pending = seq
						data := fmt.Sprintf(`{"seq":%d,"pad":%q}`, seq, strings.Repeat("p", wrng.IntN(4096)))
						status, b, err := p.do(http.MethodPut, "/v1/topics/"+st.name, data)
						if err != nil {
							return // the daemon died: the write stays pending
						}
						var res statesync.Snapshot
						if status != http.StatusOK || json.Unmarshal(b, &res) != nil {
							errs <- fmt.Errorf("PUT %s = %d %s; want 200", st.name, status, b)
							return
						}
						if res.Revision <= st.ackRev {
							errs <- fmt.Errorf("PUT %s = revision %v after %v; want above", st.name, res.Revision, st.ackRev)
						}
						st.ackRev, st.ackSeq, st.pending = res.Revision, seq, 0
						if acks.Add(1) == killAt {
							once.Do(func() { close(killNow) })
						}
					}
				})
			}
			select {
			case <-killNow:
			case <-time.After(waitFor):
				t.Errorf("round %d: %d writes acknowledged within %v; want %d", round, acks.Load(), waitFor, killAt)
			}
			p.signal(t, syscall.SIGKILL)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("round %d: %v", round, err)
			}
			if err := p.err; err == nil || !strings.Contains(err.Error(), "killed") {
				t.Errorf("round %d: exit = %v; want killed", round, err)
			}
			<-events.done
			// The stream saw every topic's revisions only go up.
			last := map[string]statesync.Revision{}
			for _, inv := range events.snapshot() {
				prev, seen := last[inv.Topic]
				if !seen && inv.Revision < start[inv.Topic] || seen && inv.Revision <= prev || inv.Epoch != epoch {
					t.Errorf("round %d: stream sent %s at %v (epoch %q) after %v; want increasing revisions from %v in epoch %q",
						round, inv.Topic, inv.Revision, inv.Epoch, prev, start[inv.Topic], epoch)
				}
				last[inv.Topic] = inv.Revision
			}
			totalAcked += int(acks.Load())
			t.Logf("round %d: killed after %d acknowledged writes (kill point %d)", round, acks.Load(), killAt)
			if t.Failed() {
				t.FailNow()
			}
		}
		p := startProc(t, bin, dir)
		_, k := recoverTopics(t, p, states)
		kept += k
		// New writes continue above the recovered revisions.
		for _, st := range states {
			status, b, err := p.do(http.MethodPut, "/v1/topics/"+st.name, fmt.Sprintf(`{"seq":%d}`, st.nextSeq))
			var res statesync.Snapshot
			if err != nil || status != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Revision <= st.ackRev {
				t.Errorf("PUT %s after the last restart = %d %s, %v; want 200 above revision %v", st.name, status, b, err, st.ackRev)
			}
			st.ackRev, st.ackSeq = res.Revision, st.nextSeq
			st.nextSeq++
		}
		p.signal(t, syscall.SIGKILL)
		t.Logf("%d rounds, %d acknowledged writes, none lost; %d writes in flight at a kill were found committed", rounds, totalAcked, kept)
	})

	t.Run("SIGTERM", func(t *testing.T) {
		p := startProc(t, bin, dir)
		recoverTopics(t, p, states)
		events := p.follow(t, names)
		status, b, err := p.do(http.MethodPut, "/v1/topics/t0", `{"seq":999999}`)
		var w statesync.Snapshot
		if err != nil || status != http.StatusOK || json.Unmarshal(b, &w) != nil {
			t.Fatalf("PUT t0 = %d %s, %v; want 200", status, b, err)
		}
		poll.UntilState(t, fmt.Sprintf("an event for t0 at %v", w.Revision), func() (bool, string) {
			invs := events.snapshot()
			return invs[len(invs)-1].Revision == w.Revision, fmt.Sprintf("%+v", invs)
		})

		start := time.Now()
		p.signal(t, syscall.SIGTERM)
		if p.err != nil {
			t.Errorf("exit after SIGTERM = %v; want status 0\n%s", p.err, p.stderr.String())
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("exit took %v after SIGTERM with an open stream; want less than --shutdown-timeout 5s", el)
		}
		select {
		case <-events.done:
		case <-time.After(waitFor):
			t.Fatalf("event stream still open after the daemon exited")
		}
		if log := p.stderr.String(); !strings.Contains(log, "statesync stopped") || strings.Contains(log, "level=ERROR") {
			t.Errorf("log after SIGTERM = %q; want \"statesync stopped\" and no error", log)
		}

		// The write made before SIGTERM is there after a restart.
		states[0].ackRev, states[0].ackSeq = w.Revision, 999999
		p = startProc(t, bin, dir)
		recoverTopics(t, p, states)
		p.signal(t, syscall.SIGTERM)
		if p.err != nil {
			t.Errorf("exit after SIGTERM = %v; want status 0", p.err)
		}
	})
}
