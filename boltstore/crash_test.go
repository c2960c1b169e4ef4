package boltstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
	"github.com/statesync-go/statesync/internal/crashtest"
)

// crashChildEnv names the database file when the test binary runs as the
// crash test's child (see TestMain).
const crashChildEnv = "BOLTSTORE_CRASH_CHILD"

var crashTopics = []string{"alpha", "beta", "gamma", "delta", "epsilon"}

// crashData is the data the child writes to topic at rev, so that the
// parent can check any stored record, acknowledged or not. Sizes vary
// from a few bytes to about 12 KB, so records use bbolt overflow pages.
func crashData(topic string, rev statesync.Revision) json.RawMessage {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", topic, rev)
	sum := h.Sum32()
	pad := strings.Repeat(string(rune('a'+sum%26)), int(sum%12000))
	return json.RawMessage(fmt.Sprintf(`{"topic":%q,"rev":%d,"pad":%q}`, topic, rev, pad))
}

// crashChild opens the store at path and writes to the crash topics from
// one goroutine per topic, concurrently (so that writes share
// transactions), until it is killed, printing "topic revision" to stdout
// after each write is acknowledged (committed and fsynced). Each write is
// conditional on the revision it expects, so the data of revision r is
// always crashData(r).
func crashChild(path string) int {
	s, err := boltstore.Open(path, &boltstore.Options{Timeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx := context.Background()
	var (
		mu   sync.Mutex // protects out and code
		out  = bufio.NewWriter(os.Stdout)
		code int
		wg   sync.WaitGroup
	)
	for _, topic := range crashTopics {
		rec, err := s.Get(ctx, topic)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		wg.Go(func() {
			last := rec.Revision
			for range 100_000 { // the parent kills the child long before
				rec, err := s.Write(ctx, statesync.Write{Topic: topic, Data: crashData(topic, last+1), Conditional: true, IfRevision: last})
				mu.Lock()
				if code != 0 {
					mu.Unlock()
					return
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					code = 2
					mu.Unlock()
					return
				}
				last = rec.Revision
				fmt.Fprintf(out, "%s %d\n", topic, rec.Revision)
				if err := out.Flush(); err != nil { // the parent went away
					code = 3
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return code
}

// TestCrash kills a writing process with SIGKILL at random points, several
// times over, and checks after each kill that the file opens cleanly, that
// every acknowledged write is there with its data, that no revision went
// back, that at most the write in flight of each topic (one writer per
// topic, all concurrent) was committed without being acknowledged, and
// that new writes continue above. (SIGKILL tests the
// crash of the process, not of the machine: the page cache survives it.)
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	rng := crashtest.NewRand(t)
	path := filepath.Join(t.TempDir(), "crash.db")

	stored := map[string]statesync.Revision{} // per topic, after the last reopen
	totalAcked := 0
	const rounds = 8
	for round := range rounds {
		killAfter := rng.IntN(300) // acknowledged writes before the kill; 0: at once
		if round == 0 {
			killAfter = max(killAfter, 20) // the first round creates the file
		}
		// A random delay after the last acknowledgement moves the kill
		// into the next write: inside the transaction, its fsync, or between.
		delay := time.Duration(rng.IntN(3000)) * time.Microsecond
		var onFirstAck func()
		if round == 0 {
			onFirstAck = func() { checkLockedByChild(t, path) }
		}
		acked := runCrashChild(t, path, killAfter, delay, onFirstAck)
		totalAcked += len(acked)

		// Acknowledgements continue each topic from the last reopen, by one.
		last := map[string]statesync.Revision{}
		for topic, rev := range stored {
			last[topic] = rev
		}
		for _, a := range acked {
			if a.rev != last[a.topic]+1 {
				t.Fatalf("round %d: child acknowledged %s@%d after %d; want %d", round, a.topic, a.rev, last[a.topic], last[a.topic]+1)
			}
			last[a.topic] = a.rev
		}

		s, err := boltstore.Open(path, nil)
		if err != nil {
			t.Fatalf("round %d (killed after %d writes): Open(%q) = %v; want a clean open", round, killAfter, path, err)
		}
		ctx := context.Background()
		unacked := statesync.Revision(0)
		for _, topic := range crashTopics {
			got, err := s.Get(ctx, topic)
			if err != nil {
				t.Fatalf("round %d: Get(%q) = %v", round, topic, err)
			}
			if got.Revision < last[topic] {
				t.Errorf("round %d: Get(%q).Revision = %d; want at least %d, the last acknowledged", round, topic, got.Revision, last[topic])
			}
			if got.Revision < stored[topic] {
				t.Errorf("round %d: Get(%q).Revision = %d; it was %d before: revisions went back", round, topic, got.Revision, stored[topic])
			}
			if want := crashData(topic, got.Revision); got.Revision > 0 && !bytes.Equal(got.Data, want) {
				t.Errorf("round %d: Get(%q) at revision %d = %.60s… (%d bytes); want %.60s… (%d bytes)", round, topic, got.Revision, got.Data, len(got.Data), want, len(want))
			}
			if got.Revision > last[topic] {
				unacked += got.Revision - last[topic]
				if got.Revision > last[topic]+1 {
					t.Errorf("round %d: %s at revision %d, %d above the last acknowledged; want at most 1 (the write in flight)", round, topic, got.Revision, got.Revision-last[topic])
				}
			}
			stored[topic] = got.Revision
		}
		t.Logf("round %d: killed %v after %d acknowledged writes; %d acknowledged in all, %d more committed", round, delay, killAfter, len(acked), unacked)
		if unacked > statesync.Revision(len(crashTopics)) {
			t.Errorf("round %d: %d committed writes were never acknowledged; want at most %d (one in flight per topic)", round, unacked, len(crashTopics))
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Errorf("round %d: List() = %v", round, err)
		}
		for _, r := range list {
			if r.Revision != stored[r.Topic] {
				t.Errorf("round %d: List() has %s@%d; Get says %d", round, r.Topic, r.Revision, stored[r.Topic])
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close() = %v", round, err)
		}
	}
	if totalAcked == 0 {
		t.Fatalf("the children acknowledged no write in %d rounds; the test tested nothing", rounds)
	}

	// New writes continue above what survived.
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	defer s.Close()
	for _, topic := range crashTopics {
		rec, err := s.Write(context.Background(), statesync.Write{Topic: topic, Data: json.RawMessage(`"after"`)})
		if err != nil || rec.Revision != stored[topic]+1 {
			t.Errorf("Write(%q) after the crashes = %d, %v; want %d", topic, rec.Revision, err, stored[topic]+1)
		}
	}
}

// checkLockedByChild checks that the file held by the child process cannot
// be opened by this one: Open fails after the timeout with ErrLocked.
func checkLockedByChild(tb testing.TB, path string) {
	tb.Helper()
	s, err := boltstore.Open(path, &boltstore.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		tb.Errorf("Open(%q) while another process has it = nil error; want ErrLocked", path)
		return
	}
	if !errors.Is(err, boltstore.ErrLocked) || !strings.Contains(err.Error(), "database is locked by another process") {
		tb.Errorf("Open(%q) while another process has it = %v; want ErrLocked", path, err)
	}
}

type ack struct {
	topic string
	rev   statesync.Revision
}

// runCrashChild runs the child writer on path, kills it with SIGKILL once
// it has acknowledged killAfter writes and delay has passed, and returns every write it
// acknowledged, including those still in the pipe when it died.
// If onFirstAck is not nil, it runs once the child has acknowledged its
// first write (and before the kill if killAfter is 1).
func runCrashChild(tb testing.TB, path string, killAfter int, delay time.Duration, onFirstAck func()) []ack {
	tb.Helper()
	var acked []ack
	crashtest.Run(tb, crashChildEnv, path, killAfter, delay, func(line string) {
		topic, revText, ok := strings.Cut(line, " ")
		rev, perr := statesync.ParseRevision(revText)
		if !ok || perr != nil {
			tb.Fatalf("child wrote %q; want \"topic revision\"", line)
		}
		acked = append(acked, ack{topic, rev})
		if len(acked) == 1 && onFirstAck != nil {
			onFirstAck()
		}
	})
	return acked
}
