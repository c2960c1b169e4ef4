package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/redisstore"
)

// A feed that falls further behind than the stream keeps finds the gap in
// the writes' sequence numbers and sends a Resync, without reconnecting;
// it then goes on with the writes it can read.
func TestStreamTrimmedResyncs(t *testing.T) {
	u, prefix := redistest.NewPrefix(t)
	a := open(t, u, nil)
	b := open(t, u, &redisstore.Options{StreamMaxLen: 100})
	gate := make(chan struct{})
	var (
		once sync.Once
		mu   sync.Mutex // protects recs
		recs []statesync.Record
	)
	stop, err := b.Watch(context.Background(), func(r statesync.Record) {
		once.Do(func() { <-gate }) // hold up the feed at its first record
		mu.Lock()
		recs = append(recs, r)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	topic := storetest.NewTopic("trim")
	for i := range 1000 {
		storetest.MustWrite(t, b, statesync.Write{Topic: topic, Data: json.RawMessage(fmt.Sprint(i))})
	}
	var n int64
	admin(t, u, func(ctx context.Context, c *redis.Client) error {
		var err error
		n, err = c.XLen(ctx, "{"+prefix+"}:feed").Result()
		return err
	})
	if n >= 1000 {
		t.Fatalf("stream length %d after 1000 writes with StreamMaxLen 100; want it trimmed", n)
	}
	close(gate)
	last := storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`"last"`)})
	poll.Until(t, "B's watcher sees the last write", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(recs) > 0 && recs[len(recs)-1].Revision == last.Revision
	})
	mu.Lock()
	resyncs := 0
	for _, r := range recs {
		if r.Resync {
			resyncs++
		}
	}
	got := len(recs)
	mu.Unlock()
	if resyncs != 1 {
		t.Errorf("B's watcher got %d Resync records; want 1 (for the trimmed stream)", resyncs)
	}
	if got > 200 {
		t.Errorf("B's watcher got %d records; want the trimmed stream's (about 100)", got)
	}
	if st := b.FeedStatus(); st.Reconnects != 0 || st.Resyncs != 1 {
		t.Errorf("B.FeedStatus() = %+v; want no reconnect and 1 resync", st)
	}
}

// With wait=N, a write that fewer than N replicas acknowledge in time is
// committed but returns ErrNotReplicated, with its record.
func TestWaitReplicas(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	s := open(t, storetest.WithOpt(t, storetest.WithOpt(t, u, "wait", "1"), "wait_timeout", "10ms"), nil)
	topic := storetest.NewTopic("wait")
	rec, err := s.Write(storetest.OpContext(t), statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	if !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("Write with wait=1 and no replica: error %v; want ErrNotReplicated", err)
	}
	if !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Errorf("error %q; want it to say 0 of 1 replicas", err)
	}
	if got := storetest.MustGet(t, s, topic); rec.Revision == 0 || got.Revision != rec.Revision || string(got.Data) != "1" {
		t.Errorf("Get(%q) = revision %d, data %s after the unreplicated write; want its revision %d and data 1", topic, got.Revision, got.Data, rec.Revision)
	}
	// The script is sent again when the server lost it.
	admin(t, u, func(ctx context.Context, c *redis.Client) error { return c.ScriptFlush(ctx).Err() })
	rec2, err := s.Write(storetest.OpContext(t), statesync.Write{Topic: topic, Data: json.RawMessage(`2`), IfRevision: rec.Revision, Conditional: true})
	if !errors.Is(err, redisstore.ErrNotReplicated) || rec2.Revision <= rec.Revision {
		t.Errorf("Write after SCRIPT FLUSH = revision %d, error %v; want more than %d and ErrNotReplicated", rec2.Revision, err, rec.Revision)
	}
	_, err = s.Write(storetest.OpContext(t), statesync.Write{Topic: topic, Data: json.RawMessage(`3`), IfRevision: rec.Revision, Conditional: true})
	var ce *statesync.ConflictError
	if !errors.As(err, &ce) || ce.Current != rec2.Revision {
		t.Errorf("stale Write with wait=1: error %v; want a conflict at %d", err, rec2.Revision)
	}
}

// A store works again after SCRIPT FLUSH (EVALSHA falls back to EVAL).
func TestScriptFlush(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	s := open(t, u, nil)
	topic := storetest.NewTopic("flush")
	r1 := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	admin(t, u, func(ctx context.Context, c *redis.Client) error { return c.ScriptFlush(ctx).Err() })
	r2 := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
	if r2.Revision <= r1.Revision {
		t.Errorf("revision %d after SCRIPT FLUSH; want more than %d", r2.Revision, r1.Revision)
	}
	if got := storetest.MustGet(t, s, topic); got.Revision != r2.Revision {
		t.Errorf("Get(%q).Revision = %d; want %d", topic, got.Revision, r2.Revision)
	}
}

// While the feed cannot reconnect, FeedStatus says it is down, and why;
// it comes back by itself.
func TestFeedStatusDown(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	p := storetest.NewProxy(t, hostOf(t, u))
	s := open(t, feedVia(t, u, p, 50*time.Millisecond), nil)
	if st := s.FeedStatus(); !st.Connected || st.Err != nil || st.Since.IsZero() {
		t.Errorf("FeedStatus() after Open = %+v; want connected", st)
	}
	p.Block(true)
	p.Cut()
	poll.Until(t, "the feed reported down", func() bool { st := s.FeedStatus(); return !st.Connected && st.Err != nil })
	p.Block(false)
	poll.Until(t, "the feed reported up", func() bool { st := s.FeedStatus(); return st.Connected && st.Err == nil && st.Reconnects == 1 })
}

// Open's errors: bad URLs and options, a server that does not answer.
func TestOpenErrors(t *testing.T) {
	ctx := storetest.OpContext(t)
	for _, tt := range []struct {
		name, url string
		opts      *redisstore.Options
		want      string
	}{
		{"scheme", "postgres://x", nil, "want a redis:// or rediss:// URL"},
		{"prefix", "redis://127.0.0.1:1/0?prefix=a{b}", nil, "invalid prefix"},
		{"optPrefix", "redis://127.0.0.1:1/0", &redisstore.Options{Prefix: "a b"}, "invalid prefix"},
		{"probe", "redis://127.0.0.1:1/0", &redisstore.Options{ProbeInterval: time.Millisecond}, "ProbeInterval 1ms is shorter than 10ms"},
		{"maxlen", "redis://127.0.0.1:1/0", &redisstore.Options{StreamMaxLen: 99}, "StreamMaxLen 99 is less than 100"},
		{"wait", "redis://127.0.0.1:1/0", &redisstore.Options{WaitReplicas: -1}, "WaitReplicas -1 is not from 0 to 100"},
		{"waitMax", "redis://127.0.0.1:1/0", &redisstore.Options{WaitReplicas: 101}, "WaitReplicas 101 is not from 0 to 100"},
		{"waitTimeout", "redis://127.0.0.1:1/0", &redisstore.Options{WaitTimeout: time.Microsecond}, "WaitTimeout 1µs is shorter than 1ms"},
		{"goRedisOption", "redis://127.0.0.1:1/0?nonsense=1", nil, "unexpected option: nonsense"},
		{"feedURL", "redis://127.0.0.1:1/0", &redisstore.Options{FeedURL: "http://x"}, "feed URL"},
		{"feedURLOption", "redis://127.0.0.1:1/0", &redisstore.Options{FeedURL: "redis://127.0.0.1:1/0?nonsense=1"}, "feed URL: redis: unexpected option"},
		{"noServer", "redis://127.0.0.1:1/0?dial_timeout=100ms", nil, "change feed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := redisstore.Open(ctx, tt.url, tt.opts)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded; want an error", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) error = %q; want it to contain %q", tt.url, err, tt.want)
			}
		})
	}
}

// Options win over the URL's options, which win over the defaults.
func TestOptionsPrecedence(t *testing.T) {
	u, prefix := redistest.NewPrefix(t)
	if s := open(t, u, nil); s.Prefix() != prefix {
		t.Errorf("Prefix() = %q; want the URL's %q", s.Prefix(), prefix)
	}
	if s := open(t, u, &redisstore.Options{Prefix: prefix + "x"}); s.Prefix() != prefix+"x" {
		t.Errorf("Prefix() = %q; want the option's %q", s.Prefix(), prefix+"x")
	}
	t.Cleanup(func() { _ = redistest.DeletePrefix(redisOnly(t, u), prefix+"x") })
	t.Cleanup(func() { _ = redistest.DeletePrefix(redisOnly(t, u), redisstore.DefaultPrefix) })
	if err := redistest.Do(u, func(ctx context.Context, c *redis.Client) error {
		s, err := redisstore.Open(ctx, redisOnly(t, u), nil)
		if err != nil {
			return err
		}
		defer s.Close()
		if s.Prefix() != redisstore.DefaultPrefix {
			t.Errorf("Prefix() = %q; want the default %q", s.Prefix(), redisstore.DefaultPrefix)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Stores on different prefixes are independent; an invalid topic reads as
// never written; the records carry the source id and time.
func TestPrefixesAndRecords(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	v, _ := redistest.NewPrefix(t)
	a, b := open(t, u, nil), open(t, v, nil)
	topic := storetest.NewTopic("iso")
	start := time.Now().Add(-time.Minute)
	rec := storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`{"x":1}`), SourceID: "node-a"})
	if rec.SourceID != "node-a" || rec.Time.Before(start) || rec.Time.After(time.Now().Add(time.Minute)) {
		t.Errorf("Write() = %+v; want SourceID node-a and the commit time", rec)
	}
	got := storetest.MustGet(t, a, topic)
	if got.SourceID != "node-a" || !got.Time.Equal(rec.Time) || string(got.Data) != `{"x":1}` {
		t.Errorf("Get() = %+v; want the written record %+v", got, rec)
	}
	if other := storetest.MustGet(t, b, topic); other.Revision != 0 || other.Epoch == rec.Epoch {
		t.Errorf("other prefix: Get(%q) = revision %d, epoch %q; want 0 and another epoch than %q", topic, other.Revision, other.Epoch, rec.Epoch)
	}
	list, err := a.List(storetest.OpContext(t))
	if err != nil || len(list) != 1 || list[0].SourceID != "node-a" || !list[0].Time.Equal(rec.Time) || list[0].Data != nil {
		t.Errorf("List() = %+v, %v; want one record with source id and time, without data", list, err)
	}
	if bad := storetest.MustGet(t, a, "bad\ttopic"); bad.Revision != 0 || string(bad.Data) != "null" || bad.Epoch != rec.Epoch {
		t.Errorf("Get(invalid topic) = %+v; want never written, in the store's epoch", bad)
	}
	if _, err := a.Write(storetest.OpContext(t), statesync.Write{Topic: "bad\ttopic"}); !errors.Is(err, statesync.ErrInvalidTopic) {
		t.Errorf("Write(invalid topic) error = %v; want ErrInvalidTopic", err)
	}
	del := storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(" null ")})
	if string(del.Data) != "null" || string(storetest.MustGet(t, a, topic).Data) != "null" {
		t.Errorf("a write of null = %s; want null", del.Data)
	}
}

// ListPrefix reads the topics under a prefix only, in order.
func TestListPrefix(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	s := open(t, u, nil)
	for _, topic := range []string{"a", "a.b", "a.c", "ab", "b", "a-"} {
		storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "a-", "a.b", "a.c", "ab", "b"}},
		{"a", []string{"a", "a-", "a.b", "a.c", "ab"}},
		{"a.", []string{"a.b", "a.c"}},
		{"a.c", []string{"a.c"}},
		{"b", []string{"b"}},
		{"c", nil},
		{"a b", nil},
		{"{", nil},
	} {
		list, err := s.ListPrefix(storetest.OpContext(t), tt.prefix)
		if err != nil {
			t.Fatalf("ListPrefix(%q): %v", tt.prefix, err)
		}
		var got []string
		for _, r := range list {
			got = append(got, r.Topic)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ListPrefix(%q) = %q; want %q", tt.prefix, got, tt.want)
		}
	}
}

// Entries on the stream that are not the store's are skipped.
func TestForeignStreamEntry(t *testing.T) {
	u, prefix := redistest.NewPrefix(t)
	s := open(t, u, nil)
	w := storetest.Watch(t, s)
	admin(t, u, func(ctx context.Context, c *redis.Client) error {
		return c.XAdd(ctx, &redis.XAddArgs{Stream: "{" + prefix + "}:feed", Values: []string{"hello", "world"}}).Err()
	})
	rec := storetest.MustWrite(t, s, statesync.Write{Topic: storetest.NewTopic("after"), Data: json.RawMessage(`1`)})
	storetest.WaitSeen(t, w, rec)
	if recs := w.Records(); len(recs) != 1 || recs[0].Resync || !recs[0].DataOmitted || recs[0].Epoch != rec.Epoch {
		t.Errorf("watcher got %+v; want only the write, without data, in the store's epoch", recs)
	}
}

// With wait=1 and a replica, a write returns once the replica has it.
func TestWaitReplicaAcknowledges(t *testing.T) {
	primary := redistest.StartServer(t, nil)
	replica := redistest.StartServer(t, &redistest.ServerOptions{ReplicaOf: primary.Addr()})
	s := open(t, storetest.WithOpt(t, storetest.WithOpt(t, primary.URL(), "wait", "1"), "wait_timeout", "2s"), nil)
	poll.Until(t, "the replica in sync", func() bool {
		var n int64
		_ = redistest.Do(primary.URL(), func(ctx context.Context, c *redis.Client) error {
			var err error
			n, err = c.Wait(ctx, 1, 10*time.Millisecond).Result()
			return err
		})
		return n == 1
	})
	rec := storetest.MustWrite(t, s, statesync.Write{Topic: "replicated", Data: json.RawMessage(`1`)})
	admin(t, replica.URL(), func(ctx context.Context, c *redis.Client) error {
		rev, err := c.HGet(ctx, "{statesync}:t:replicated", "rev").Result()
		if err != nil || rev != rec.Revision.String() {
			t.Errorf("the replica's revision = %q, %v right after the write; want %d", rev, err, rec.Revision)
		}
		return nil
	})
	// A replica is not enough for wait=2.
	s2 := open(t, storetest.WithOpt(t, storetest.WithOpt(t, primary.URL(), "wait", "2"), "wait_timeout", "10ms"), nil)
	if _, err := s2.Write(storetest.OpContext(t), statesync.Write{Topic: "replicated", Data: json.RawMessage(`2`)}); !errors.Is(err, redisstore.ErrNotReplicated) ||
		!strings.Contains(err.Error(), "1 of 2 replicas") {
		t.Errorf("Write with wait=2 and one replica: error %v; want ErrNotReplicated, 1 of 2", err)
	}
}
