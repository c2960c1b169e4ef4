package natsstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/natsstore"
)

// jsClient returns a JetStream client of its own on url, closed at cleanup.
func jsClient(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamInfo(t testing.TB, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	st, err := js.Stream(storetest.OpContext(t), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo()
}

func TestOpenErrors(t *testing.T) {
	url := natstest.NewServer(t)
	ctx := storetest.OpContext(t)
	for _, tt := range []struct {
		name string
		url  string
		opts *natsstore.Options
		want string
	}{
		{"bad URL", "http://x", nil, "invalid store URL"},
		{"bad bucket", url, &natsstore.Options{Bucket: "a.b"}, "invalid bucket name"},
		{"replicas 6", url, &natsstore.Options{Replicas: 6}, "Replicas 6"},
		{"replicas -1", url, &natsstore.Options{Replicas: -1}, "Replicas -1"},
		{"short probe", url, &natsstore.Options{ProbeInterval: time.Millisecond}, "ProbeInterval"},
		{"short timeout", url, &natsstore.Options{RequestTimeout: time.Millisecond}, "RequestTimeout"},
		{"bad feed URL", url, &natsstore.Options{FeedURL: "http://x"}, "feed URL"},
		{"R3 on one server", url, &natsstore.Options{Replicas: 3, Bucket: "r3"}, "open bucket r3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := natsstore.Open(ctx, tt.url, tt.opts)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error %q; want one about %q", err, tt.want)
			}
		})
	}
	t.Run("no server", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p := storetest.NewProxy(t, hostPort(url))
		p.Block(true)
		if s, err := natsstore.Open(ctx, "nats://"+p.Addr()+"?timeout=200ms", nil); err == nil {
			_ = s.Close()
			t.Fatal("Open of a server that never answers succeeded")
		}
	})
	t.Run("not a bucket", func(t *testing.T) {
		js := jsClient(t, url)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KV_plain", Subjects: []string{"plain.>"}}); err != nil {
			t.Fatal(err)
		}
		s, err := natsstore.Open(ctx, url+"?bucket=plain", nil)
		if err == nil {
			_ = s.Close()
			t.Fatal("Open of a stream that is no bucket succeeded")
		}
		if !strings.Contains(err.Error(), "not a key-value bucket") {
			t.Errorf("error %q", err)
		}
	})
}

// The bucket a store makes: history 1, no direct gets, a time-based first
// sequence, the replicas asked; the options of the URL are read.
func TestBucketConfig(t *testing.T) {
	url := natstest.NewServer(t)
	before := time.Now()
	s := open(t, url+"?bucket=cfg&feed_probe=50ms&timeout=2s", nil)
	after := time.Now()
	if s.Bucket() != "cfg" {
		t.Errorf("Bucket() = %q", s.Bucket())
	}
	info := streamInfo(t, jsClient(t, url), "KV_cfg")
	c := info.Config
	if c.MaxMsgsPerSubject != 1 || c.AllowDirect || c.Replicas != 1 || !c.AllowRollup || !c.DenyDelete || c.Discard != jetstream.DiscardNew ||
		len(c.Subjects) != 1 || c.Subjects[0] != "$KV.cfg.>" || c.Storage != jetstream.FileStorage {
		t.Errorf("stream config %+v", c)
	}
	if lo, hi := uint64(before.UnixMicro()), uint64(after.UnixMicro()); c.FirstSeq < lo || c.FirstSeq > hi {
		t.Errorf("FirstSeq %d; want the time of Open in µs, %d to %d", c.FirstSeq, lo, hi)
	}
	rec := storetest.MustWrite(t, s, statesync.Write{Topic: "t", Data: json.RawMessage(`1`)})
	if uint64(rec.Revision) != c.FirstSeq {
		t.Errorf("first revision %d; want the first sequence %d", rec.Revision, c.FirstSeq)
	}
	if rec.Epoch != s.Epoch() || rec.Epoch == "" {
		t.Errorf("record epoch %q, store epoch %q", rec.Epoch, s.Epoch())
	}
	if st := s.FeedStatus(); !st.Connected || st.Reconnects != 0 || st.Resyncs != 0 || st.Err != nil || st.Since.IsZero() {
		t.Errorf("FeedStatus() = %+v", st)
	}
	// The options of the URL lose to those of Options.
	s2 := open(t, url+"?bucket=cfg", &natsstore.Options{Bucket: "other"})
	if s2.Bucket() != "other" {
		t.Errorf("Bucket() = %q; want Options' other", s2.Bucket())
	}
	if got := storetest.MustGet(t, s2, "t"); got.Revision != 0 {
		t.Errorf("another bucket has t at revision %d", got.Revision)
	}
}

// A bucket deleted and made again has a new epoch, and its revisions start
// above the old ones; each store makes the bucket again when it finds it
// missing.
func TestBucketRecreated(t *testing.T) {
	url := natstest.NewServer(t)
	a := open(t, url, nil)
	b := open(t, url, nil)
	topic := storetest.NewTopic("re")
	old := storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	for _, op := range []struct {
		name string
		f    func() statesync.Record
	}{
		{"Write", func() statesync.Record {
			return storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
		}},
		{"Get", func() statesync.Record { return storetest.MustGet(t, b, topic) }},
	} {
		deleteBucket(t, url, natsstore.DefaultBucket)
		rec := op.f()
		if rec.Epoch == old.Epoch {
			t.Errorf("%s after the bucket was deleted: epoch %q, as before", op.name, rec.Epoch)
		}
		if op.name == "Write" && rec.Revision <= old.Revision {
			t.Errorf("revision %d in the new bucket, %d in the old one", rec.Revision, old.Revision)
		}
		if op.name == "Get" && rec.Revision != 0 {
			t.Errorf("Get in the new bucket: revision %d", rec.Revision)
		}
		old = rec
	}
}

// A bucket made by other means, with direct gets on, works.
func TestForeignBucket(t *testing.T) {
	url := natstest.NewServer(t)
	js := jsClient(t, url)
	kv, err := js.CreateKeyValue(storetest.OpContext(t), jetstream.KeyValueConfig{Bucket: "kv"})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, url+"?bucket=kv", nil)
	w := storetest.Watch(t, s)
	rec := storetest.MustWrite(t, s, statesync.Write{Topic: "a.b", Data: json.RawMessage(`{"x":1}`), SourceID: "me"})
	got := storetest.MustGet(t, s, "a.b")
	if got.Revision != rec.Revision || string(got.Data) != `{"x":1}` || got.SourceID != "me" {
		t.Errorf("Get = %+v", got)
	}
	if e, err := kv.Get(storetest.OpContext(t), "a=2Eb"); err != nil || string(e.Value()) != `{"x":1}` {
		t.Errorf("kv.Get(a=2Eb) = %v, %v", e, err)
	}
	// Keys that are not topics are left out; a delete marker reads as null.
	if _, err := kv.Put(storetest.OpContext(t), "foreign.key", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(storetest.OpContext(t), "=zz", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(storetest.OpContext(t), "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got := storetest.MustGet(t, s, "empty"); got.Revision == 0 || string(got.Data) != "null" {
		t.Errorf("Get of an empty value written by others = revision %d data %q; want null", got.Revision, got.Data)
	}
	if err := kv.Delete(storetest.OpContext(t), "a=2Eb"); err != nil {
		t.Fatal(err)
	}
	after := storetest.MustWrite(t, s, statesync.Write{Topic: "z", Data: json.RawMessage(`1`)})
	storetest.WaitSeen(t, w, after)
	del := storetest.MustGet(t, s, "a.b")
	if del.Revision <= rec.Revision || string(del.Data) != "null" {
		t.Errorf("Get of a deleted key = revision %d data %s; want a later revision and null", del.Revision, del.Data)
	}
	if _, ok := w.Find("a.b", del.Revision); !ok {
		t.Error("the feed did not report the deletion")
	}
	list, err := s.List(storetest.OpContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, r := range list {
		topics = append(topics, r.Topic)
		if r.Epoch != s.Epoch() || r.Revision == 0 || r.Time.IsZero() {
			t.Errorf("List record %+v", r)
		}
	}
	if strings.Join(topics, ",") != "a.b,empty,z" {
		t.Errorf("List topics %q; want a.b, empty and z", topics)
	}
	for _, r := range w.Records() {
		if !r.Resync && r.Topic != "a.b" && r.Topic != "z" && r.Topic != "empty" {
			t.Errorf("the feed reported %+v", r)
		}
	}
}

func TestWriteLimits(t *testing.T) {
	url := natstest.NewServer(t)
	s := open(t, url, nil)
	limit := s.MaxValue(3)
	if limit < 1<<20-200 || limit >= 1<<20 {
		t.Errorf("MaxValue(3) = %d; want a little under 1 MiB", limit)
	}
	if s.MaxValue(10) != limit-7 {
		t.Errorf("MaxValue(10) = %d; want MaxValue(3)-7", s.MaxValue(10))
	}
	big := bytes.Repeat([]byte("1"), limit)
	rec, err := s.Write(storetest.OpContext(t), statesync.Write{Topic: "big", Data: big, SourceID: "abc"})
	if err != nil {
		t.Fatalf("a write of MaxValue bytes: %v", err)
	}
	if got := storetest.MustGet(t, s, "big"); got.Revision != rec.Revision || !bytes.Equal(got.Data, big) {
		t.Errorf("Get of a %d-byte value: revision %d, %d bytes", limit, got.Revision, len(got.Data))
	}
	_, err = s.Write(storetest.OpContext(t), statesync.Write{Topic: "big", Data: append(big, '1'), SourceID: "abc"})
	if err == nil || !strings.Contains(err.Error(), "max_payload") {
		t.Errorf("a write of MaxValue+1 bytes: %v; want an error about max_payload", err)
	}
	if _, err := s.Write(storetest.OpContext(t), statesync.Write{Topic: "a\nb", Data: json.RawMessage(`1`)}); !errors.Is(err, statesync.ErrInvalidTopic) {
		t.Errorf("a write of an invalid topic: %v", err)
	}
	if got := storetest.MustGet(t, s, ""); got.Revision != 0 || string(got.Data) != "null" || got.Epoch != s.Epoch() {
		t.Errorf("Get(\"\") = %+v", got)
	}
	if got := storetest.MustGet(t, s, "a b/é"); got.Revision != 0 || string(got.Data) != "null" {
		t.Errorf("Get of a topic no write can make = %+v", got)
	}
	// A conditional write on a topic never written, expecting a revision.
	_, err = s.Write(storetest.OpContext(t), statesync.Write{Topic: "new", Data: json.RawMessage(`1`), Conditional: true, IfRevision: 5})
	var ce *statesync.ConflictError
	if !errors.As(err, &ce) || ce.Current != 0 || ce.Expected != 5 || ce.Epoch != s.Epoch() || ce.Topic != "new" {
		t.Errorf("conditional write on a topic never written: %v", err)
	}
}

func TestClosed(t *testing.T) {
	url := natstest.NewServer(t)
	s := open(t, url, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := storetest.OpContext(t)
	if _, err := s.Get(ctx, "t"); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Get: %v", err)
	}
	if _, err := s.Write(ctx, statesync.Write{Topic: "t"}); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Write: %v", err)
	}
	if _, err := s.List(ctx); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("List: %v", err)
	}
	if _, err := s.Watch(ctx, func(statesync.Record) {}); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("Watch: %v", err)
	}
}

func TestCanceled(t *testing.T) {
	url := natstest.NewServer(t)
	s := open(t, url, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Watch(ctx, func(statesync.Record) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch: %v", err)
	}
	if _, err := s.List(ctx); err == nil {
		t.Error("List with a canceled context succeeded")
	}
	if _, err := s.Get(ctx, "t"); err == nil {
		t.Error("Get with a canceled context succeeded")
	}
}

// The URL's credentials reach the server.
func TestAuth(t *testing.T) {
	srv := natstest.NewServerWith(t, func(o *server.Options) { o.Authorization = "s3cret" })
	u, _ := url.Parse(srv)
	if s, err := natsstore.Open(storetest.OpContext(t), srv+"?timeout=1s", nil); err == nil {
		_ = s.Close()
		t.Fatal("Open without the token succeeded")
	}
	s := open(t, "nats://"+u.Host+"?token=s3cret", nil)
	storetest.MustWrite(t, s, statesync.Write{Topic: "t", Data: json.RawMessage(`1`)})
	s2 := open(t, "nats://s3cret@"+u.Host, nil)
	if got := storetest.MustGet(t, s2, "t"); got.Revision == 0 {
		t.Error("a store with the token in the URL's user part does not see the write")
	}
}

// Source ids that a header cannot hold as they are come back whole, from
// Get and from the feed.
func TestSourceIDs(t *testing.T) {
	url := natstest.NewServer(t)
	a, b := open(t, url, nil), open(t, url, nil)
	w := storetest.Watch(t, b)
	for i, id := range []string{"x\r\nInjected: yes", " spaced ", "é/%+", strings.Repeat("s", 4096)} {
		topic := storetest.NewTopic("src")
		rec := storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`), SourceID: id})
		if rec.SourceID != id {
			t.Errorf("%d: Write record SourceID %q", i, rec.SourceID)
		}
		if got := storetest.MustGet(t, b, topic); got.SourceID != id {
			t.Errorf("%d: Get SourceID %q; want %q", i, got.SourceID, id)
		}
		if got := storetest.WaitSeen(t, w, rec); got.SourceID != id {
			t.Errorf("%d: watched SourceID %q; want %q", i, got.SourceID, id)
		}
	}
	// The encoded source id counts against max_payload.
	limit := a.MaxValue(len("a%2Fb"))
	if _, err := a.Write(storetest.OpContext(t), statesync.Write{Topic: "t", Data: bytes.Repeat([]byte("1"), limit+1), SourceID: "a/b"}); err == nil {
		t.Error("a write over MaxValue of the encoded source id succeeded")
	}
	if _, err := a.Write(storetest.OpContext(t), statesync.Write{Topic: "t", Data: bytes.Repeat([]byte("1"), limit), SourceID: "a/b"}); err != nil {
		t.Errorf("a write of MaxValue of the encoded source id: %v", err)
	}
}

// With the servers' max_payload raised to 2 MiB, a value of the daemon's
// default body limit (1 MiB) is written and read back, and so is the
// largest value MaxValue allows.
func TestOneMiBValue(t *testing.T) {
	url := natstest.NewServerWith(t, func(o *server.Options) { o.MaxPayload = 2 << 20 })
	a, b := open(t, url, nil), open(t, url, nil)
	w := storetest.Watch(t, b)
	for _, n := range []int{1 << 20, a.MaxValue(len("node")), a.MaxValue(len("node")) + 1} {
		data := bytes.Repeat([]byte("7"), n)
		rec, err := a.Write(storetest.OpContext(t), statesync.Write{Topic: "big", Data: data, SourceID: "node"})
		if n > a.MaxValue(len("node")) {
			if err == nil {
				t.Errorf("a write of %d bytes, over MaxValue, succeeded", n)
			}
			continue
		}
		if err != nil {
			t.Fatalf("a write of %d bytes: %v", n, err)
		}
		if got := storetest.MustGet(t, b, "big"); got.Revision != rec.Revision || !bytes.Equal(got.Data, data) || got.SourceID != "node" {
			t.Errorf("Get of a %d-byte value: revision %d (want %d), %d bytes, source %q", n, got.Revision, rec.Revision, len(got.Data), got.SourceID)
		}
		storetest.WaitSeen(t, w, rec)
	}
}
