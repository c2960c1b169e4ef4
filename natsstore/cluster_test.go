package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/natsstore"
)

// An acked write of the counter: the value it wrote and its revision.
type ackedWrite struct {
	value int
	rev   statesync.Revision
}

// On a three-server cluster with a bucket of three replicas, the stream's
// leader is killed while writers increment a counter with compare-and-set
// through two stores: writes resume under the new leader, no acknowledged
// write is lost (the values written form one chain, each value written
// once), no revision goes back (for a reader, and in the order of the
// values, and in B's feed), the epoch stays, and B's feed reports the
// last write.
func TestClusterLeaderKilled(t *testing.T) {
	skipSlow(t, "starts a cluster and waits for a leader election")
	c := natstest.NewCluster(t, 3)
	opts := &natsstore.Options{Replicas: 3, ProbeInterval: time.Second}
	a, b := open(t, c.URL(), opts), open(t, c.URL(), opts)
	stream := "KV_" + natsstore.DefaultBucket
	leader := c.WaitStreamLeader(stream)
	topic := storetest.NewTopic("counter")
	epoch := storetest.MustGet(t, a, topic).Epoch
	w := storetest.Watch(t, b)

	const target, killAt, writers = 150, 40, 4
	var (
		mu      sync.Mutex
		acked   []ackedWrite
		errs    atomic.Int64 // writes that failed without a conflict (outcome unknown)
		lastErr atomic.Value // of the reads and writes, a string
		killed  = make(chan struct{})
		resumed atomic.Int64 // acked writes after the kill
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range writers {
		s := []*natsstore.Store{a, b}[g%2]
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				done := len(acked) >= target
				mu.Unlock()
				if done {
					return
				}
				cur, err := s.Get(ctx, topic)
				if err != nil {
					errs.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				n := 0
				if cur.Revision != 0 {
					n, _ = strconv.Atoi(string(cur.Data))
				}
				rec, err := s.Write(ctx, statesync.Write{Topic: topic, Data: []byte(strconv.Itoa(n + 1)), Conditional: true, IfRevision: cur.Revision})
				var ce *statesync.ConflictError
				switch {
				case errors.As(err, &ce):
				case err != nil:
					errs.Add(1)
					lastErr.Store(err.Error())
				default:
					mu.Lock()
					acked = append(acked, ackedWrite{n + 1, rec.Revision})
					if len(acked) == killAt {
						close(killed)
					}
					mu.Unlock()
					select {
					case <-killed:
						resumed.Add(1)
					default:
					}
				}
			}
		})
	}
	// A reader: the revision it reads never goes back.
	var readerErr error
	wg.Go(func() {
		var last statesync.Revision
		for ctx.Err() == nil {
			mu.Lock()
			done := len(acked) >= target
			mu.Unlock()
			if done {
				return
			}
			r, err := b.Get(ctx, topic)
			if err != nil {
				continue
			}
			if r.Revision < last {
				readerErr = fmt.Errorf("Get read revision %d after %d", r.Revision, last)
				return
			}
			last = r.Revision
		}
	})
	select {
	case <-killed:
	case <-ctx.Done():
		t.Fatal("the writers did not get to the kill")
	}
	kill := time.Now()
	c.Shutdown(leader)
	t.Logf("killed the stream leader n%d after %d acked writes", leader, killAt)
	newLeader := c.WaitStreamLeader(stream)
	t.Logf("new stream leader n%d after %v", newLeader, time.Since(kill).Round(time.Millisecond))
	poll.UntilState(t, "acked writes under the new leader", func() (bool, string) {
		return resumed.Load() >= 10, fmt.Sprintf("%d acked, %d errors, the last %v", resumed.Load(), errs.Load(), lastErr.Load())
	})
	t.Logf("10 writes acked after the kill within %v", time.Since(kill).Round(time.Millisecond))
	c.Restart(leader)
	wg.Wait()
	if readerErr != nil {
		t.Error(readerErr)
	}
	if ctx.Err() != nil {
		t.Fatalf("the writers did not finish: %d acked", len(acked))
	}
	t.Logf("%d acked writes, %d failed without a conflict", len(acked), errs.Load())

	slices.SortFunc(acked, func(x, y ackedWrite) int { return x.rev.Compare(y.rev) })
	for i := 1; i < len(acked); i++ {
		if acked[i].value <= acked[i-1].value {
			t.Errorf("acked value %d at revision %d after value %d at revision %d: a write was lost or a revision went back",
				acked[i].value, acked[i].rev, acked[i-1].value, acked[i-1].rev)
		}
	}
	final := storetest.MustGet(t, a, topic)
	got, _ := strconv.Atoi(string(final.Data))
	if last := acked[len(acked)-1]; final.Revision < last.rev || got < last.value {
		t.Errorf("final value %d at revision %d; the last acked was %d at %d", got, final.Revision, last.value, last.rev)
	}
	if got < len(acked) {
		t.Errorf("final value %d < %d acked increments: acknowledged writes were lost", got, len(acked))
	}
	if final.Epoch != epoch {
		t.Errorf("epoch %q after the leader change; %q before", final.Epoch, epoch)
	}
	// B's feed goes on past the leader change, and its revisions of the
	// topic only go up.
	storetest.WaitSeen(t, w, final)
	var last statesync.Revision
	for _, r := range w.Records() {
		if r.Topic != topic {
			continue
		}
		if r.Revision <= last {
			t.Errorf("B's feed reported revision %d after %d", r.Revision, last)
		}
		last = r.Revision
	}
	t.Logf("B's feed: %+v", b.FeedStatus())
}

// A store opened while its cluster has no quorum (the servers and the
// daemon started together) is not refused: Open asks again, logging each
// try, until the servers elect their leaders, and the store then works.
func TestOpenBeforeQuorum(t *testing.T) {
	skipSlow(t, "starts a cluster and waits for a leader election")
	c := natstest.NewCluster(t, 3)
	for i := range c.Size() {
		c.Shutdown(i)
	}
	c.Launch(0) // alone: no meta leader
	// With no quorum coming, Open gives up after four request timeouts.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if s, err := natsstore.Open(ctx, c.URL(), &natsstore.Options{Replicas: 3, RequestTimeout: 100 * time.Millisecond}); err == nil {
		_ = s.Close()
		t.Fatal("Open without a quorum succeeded")
	} else if !strings.Contains(err.Error(), "open bucket") {
		t.Errorf("Open without a quorum: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open without a quorum gave up after %v; want about 400 ms", d)
	}
	logs := new(lockedbuf.Buffer)
	type opened struct {
		s   *natsstore.Store
		err error
	}
	done := make(chan opened, 1)
	octx, ocancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer ocancel()
	go func() {
		s, err := natsstore.Open(octx, c.URL(), &natsstore.Options{Replicas: 3,
			// 40 s of tries: the election takes about 5 s here, more
			// on a loaded machine.
			RequestTimeout: 10 * time.Second,
			Logger:         slog.New(slog.NewTextHandler(logs, nil))})
		done <- opened{s, err}
	}()
	poll.Until(t, "a try of Open logged", func() bool { return strings.Contains(logs.String(), "trying again") })
	c.Launch(1)
	c.Launch(2)
	o := <-done
	if o.err != nil {
		t.Fatalf("Open: %v\nlogs:\n%s", o.err, logs)
	}
	t.Cleanup(func() { _ = o.s.Close() })
	topic := storetest.NewTopic("quorum")
	if _, err := o.s.Write(storetest.OpContext(t), statesync.Write{Topic: topic, Data: []byte(`1`)}); err != nil {
		t.Fatalf("Write after the quorum came: %v", err)
	}
	if got := storetest.MustGet(t, o.s, topic); string(got.Data) != `1` {
		t.Errorf("Get = %q", got.Data)
	}
}
