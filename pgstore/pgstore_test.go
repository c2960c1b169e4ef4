package pgstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/pgtest"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/pgstore"
)

// Daemons starting together migrate the schema once, and all report one
// epoch; opening a migrated schema again changes nothing.
func TestConcurrentOpen(t *testing.T) {
	db := pgtest.NewDatabase(t)
	const n = 8
	stores := make([]*pgstore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(context.Background(), storetest.WithOpt(t, db, "schema", "multi"), nil)
		})
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("Open #%d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	if t.Failed() {
		return
	}
	ctx := storetest.OpContext(t)
	again := open(t, storetest.WithOpt(t, db, "schema", "multi"), nil)
	want := storetest.MustGet(t, again, "never").Epoch
	for i, s := range stores {
		if e := storetest.MustGet(t, s, "never").Epoch; e != want {
			t.Errorf("store %d: epoch %q; want %q, the same for every store on one schema", i, e, want)
		}
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var versions []int
	rows, _ := conn.Query(ctx, "SELECT version FROM multi.schema_migrations ORDER BY version")
	if versions, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(versions) != fmt.Sprint([]int{pgstore.SchemaVersion}) {
		t.Errorf("schema_migrations versions = %v; want [%d], applied once", versions, pgstore.SchemaVersion)
	}
	var metas int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM multi.meta").Scan(&metas); err != nil || metas != 1 {
		t.Errorf("meta rows = %d, %v; want 1", metas, err)
	}
}

// A schema of a newer version is refused.
func TestNewerSchemaRefused(t *testing.T) {
	db := pgtest.NewDatabase(t)
	open(t, db, nil).Close()
	admin(t, db, "INSERT INTO statesync.schema_migrations (version) VALUES (99)")
	_, err := pgstore.Open(storetest.OpContext(t), db, nil)
	if !errors.Is(err, pgstore.ErrUnsupportedSchema) {
		t.Errorf("Open on a schema at version 99: error %v; want ErrUnsupportedSchema", err)
	}
}

// Data is kept as the exact bytes written: key order, whitespace, \u0000
// escapes, large values.
func TestExactBytes(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t), nil)
	big := append(append([]byte(`{"z":1,"a":"`), bytes.Repeat([]byte("x"), 1<<20)...), `"}`...)
	for i, data := range []string{
		`{"b":1,"a":2}`,
		`{ "a" : [1, 2,3] ,"a":4 }`,
		`"\u0000 nul and \u00e9"`,
		`1.50`,
		`  null  `,
		string(big),
	} {
		topic := storetest.NewTopic(fmt.Sprint("bytes", i))
		rec := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(data)})
		want := data
		if strings.TrimSpace(data) == "null" {
			want = "null"
		}
		if got := storetest.MustGet(t, s, topic); string(got.Data) != want || got.Revision != rec.Revision {
			t.Errorf("Get(%q) = %d bytes at revision %d; want the %d bytes written (%.40q) at revision %d",
				topic, len(got.Data), got.Revision, len(want), want, rec.Revision)
		}
		if string(rec.Data) != want {
			t.Errorf("Write(%q) returned data %.40q; want %.40q", topic, rec.Data, want)
		}
	}
}

// A rejected conditional write says which revision it expected and which
// the topic has, in the store's epoch.
func TestConflictFields(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t), nil)
	topic := storetest.NewTopic("cas")
	r1 := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	for _, expected := range []statesync.Revision{0, r1.Revision - 1, r1.Revision + 1, statesync.MaxRevision} {
		_, err := s.Write(storetest.OpContext(t), statesync.Write{Topic: topic, Data: json.RawMessage(`2`), Conditional: true, IfRevision: expected})
		var ce *statesync.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("Write(IfRevision %d): error %v; want a *ConflictError", expected, err)
		}
		want := statesync.ConflictError{Topic: topic, Expected: expected, Current: r1.Revision, Epoch: r1.Epoch}
		if *ce != want {
			t.Errorf("Write(IfRevision %d): %+v; want %+v", expected, *ce, want)
		}
	}
	if got := storetest.MustGet(t, s, topic); got.Revision != r1.Revision || string(got.Data) != "1" {
		t.Errorf("Get after rejected writes = %d %s; want %d 1", got.Revision, got.Data, r1.Revision)
	}
}

// First revisions come from the clock, so a topic recreated after its
// table was emptied does not go back; later ones go up by at least one.
func TestRevisionsFromClock(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t), nil)
	topic := storetest.NewTopic("clock")
	r1 := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	if r1.Revision < statesync.Revision(r1.Time.UnixMicro()) || r1.Revision > statesync.Revision(r1.Time.UnixMicro()+1e6) {
		t.Errorf("first revision %d; want about the commit time in µs, %d", r1.Revision, r1.Time.UnixMicro())
	}
	r2 := storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`2`)})
	if r2.Revision <= r1.Revision {
		t.Errorf("second revision %d; want > %d", r2.Revision, r1.Revision)
	}
}

// Notifications stay far under PostgreSQL's 8,000-byte payload limit: the
// longest topic with a long source id is carried inline, and a longer
// source id is read back from the table by the feed.
func TestPayloadSize(t *testing.T) {
	db := pgtest.NewDatabase(t)
	a, b := open(t, db, nil), open(t, db, nil)
	w := storetest.Watch(t, b)
	topic := storetest.NewTopic(strings.Repeat("t", statesync.MaxTopicLen-13))
	for _, sid := range []string{
		strings.Repeat("€", 4096/3), // 4,095 bytes: inline
		strings.Repeat("|=+", 4000), // 12,000 bytes: read back
		"a|b=c",
	} {
		rec := storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`{}`), SourceID: sid})
		var got statesync.Record
		poll.Until(t, "the write reported to b's watcher", func() bool {
			var ok bool
			got, ok = w.Find(topic, rec.Revision)
			return ok
		})
		if got.SourceID != sid || got.Epoch != rec.Epoch || !got.DataOmitted || !got.Time.Equal(rec.Time) {
			t.Errorf("watched record: source id of %d bytes (equal %v), epoch %q, DataOmitted %v, time %v; want source id of %d bytes, epoch %q, DataOmitted, time %v",
				len(got.SourceID), got.SourceID == sid, got.Epoch, got.DataOmitted, got.Time, len(sid), rec.Epoch, rec.Time)
		}
	}
}

// Writes that PostgreSQL could not store, or that break the topic rules,
// fail without writing.
func TestInvalidWrites(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t), nil)
	for _, w := range []statesync.Write{
		{Topic: "", Data: json.RawMessage(`1`)},
		{Topic: "has\ttab", Data: json.RawMessage(`1`)},
		{Topic: "ok", Data: json.RawMessage(`1`), SourceID: "nul\x00"},
		{Topic: "ok", Data: json.RawMessage(`1`), SourceID: "\x00first"},
		{Topic: "ok", Data: json.RawMessage(`1`), SourceID: "bad\xff"},
	} {
		_, err := s.Write(storetest.OpContext(t), w)
		if err == nil {
			t.Errorf("Write(%q, source id %q) succeeded; want an error", w.Topic, w.SourceID)
		} else if w.SourceID != "" && !strings.Contains(err.Error(), "source id is not valid") {
			t.Errorf("Write(%q, source id %q): %v; want the store's own refusal, before the database", w.Topic, w.SourceID, err)
		}
	}
	if got := storetest.MustGet(t, s, "ok"); got.Revision != 0 {
		t.Errorf("Get(ok).Revision = %d after failed writes; want 0", got.Revision)
	}
	epoch := storetest.MustGet(t, s, "ok").Epoch
	for _, topic := range []string{"", "nul\x00", "bad\xff", "has\ttab", ".."} {
		if got := storetest.MustGet(t, s, topic); got.Topic != topic || got.Revision != 0 || string(got.Data) != "null" || got.Epoch != epoch {
			t.Errorf("Get(%q) = %+v; want a never-written record in epoch %q", topic, got, epoch)
		}
	}
}

// Open rejects bad options without connecting.
func TestOpenOptions(t *testing.T) {
	for _, u := range []string{
		"postgres://u@127.0.0.1:1/db?schema=Bad",
		"postgres://u@127.0.0.1:1/db?schema=pg_x",
		"postgres://u@127.0.0.1:1/db?schema=a;drop",
		"postgres://u@127.0.0.1:1/db?feed_probe=0s",
		"postgres://u@127.0.0.1:1/db?feed_probe=soon",
		"postgres://u@127.0.0.1:1/db?schema=a&schema=b",
	} {
		if s, err := pgstore.Open(context.Background(), u, nil); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want an error", u)
		}
	}
	if s, err := pgstore.Open(context.Background(), "postgres://u@127.0.0.1:1/db", &pgstore.Options{Schema: "x-y"}); err == nil {
		s.Close()
		t.Errorf("Open with Options.Schema %q succeeded; want an error", "x-y")
	}
	if s, err := pgstore.Open(context.Background(), "postgres://u@127.0.0.1:1/db", &pgstore.Options{ProbeInterval: 9 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "ProbeInterval") {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open with Options.ProbeInterval 9ms: %v; want an error about ProbeInterval", err)
	}
}

// The shortest probe interval, 10 ms, is accepted.
func TestShortestProbeInterval(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t), &pgstore.Options{ProbeInterval: 10 * time.Millisecond})
	if st := s.FeedStatus(); !st.Connected {
		t.Errorf("FeedStatus = %s; want connected", statusString(st))
	}
}

// Two schemas of one database are two stores: their own topics, epochs
// and change feeds.
func TestSchemasIndependent(t *testing.T) {
	db := pgtest.NewDatabase(t)
	a, b := open(t, storetest.WithOpt(t, db, "schema", "one"), nil), open(t, db, &pgstore.Options{Schema: "two"})
	if a.Schema() != "one" || b.Schema() != "two" {
		t.Fatalf("schemas %q, %q; want one, two", a.Schema(), b.Schema())
	}
	wb := storetest.Watch(t, b)
	topic := storetest.NewTopic("schema")
	storetest.MustWrite(t, a, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	mark := storetest.MustWrite(t, b, statesync.Write{Topic: topic + "x", Data: json.RawMessage(`1`)})
	poll.Until(t, "b's own write reported", func() bool { _, ok := wb.Find(mark.Topic, mark.Revision); return ok })
	for _, r := range wb.Records() {
		if r.Topic == topic {
			t.Errorf("b's watcher saw %q, written in schema one", topic)
		}
	}
	if got := storetest.MustGet(t, b, topic); got.Revision != 0 {
		t.Errorf("b.Get(%q).Revision = %d; want 0", topic, got.Revision)
	}
	if ea, eb := storetest.MustGet(t, a, "x").Epoch, storetest.MustGet(t, b, "x").Epoch; ea == eb {
		t.Errorf("both schemas have epoch %q; want their own", ea)
	}
}

// ListPrefix scans a range in byte order; '%' and '_' are not wildcards.
func TestListPrefix(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t), nil)
	topics := []string{"B.x", "a.b", "a.c", "a-", "a:x", "a_b", "aXb", "ab", "a.b.c", "b"}
	for _, topic := range topics {
		storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"B.x", "a-", "a.b", "a.b.c", "a.c", "a:x", "aXb", "a_b", "ab", "b"}},
		{"a.", []string{"a.b", "a.b.c", "a.c"}},
		{"a_", []string{"a_b"}},
		{"a.b", []string{"a.b", "a.b.c"}},
		{"%", nil},
		{"a%", nil},
		{"z", nil},
		{"é", nil},
	} {
		list, err := s.ListPrefix(storetest.OpContext(t), tt.prefix)
		if err != nil {
			t.Fatalf("ListPrefix(%q): %v", tt.prefix, err)
		}
		var got []string
		for _, r := range list {
			got = append(got, r.Topic)
			if r.Data != nil || r.Revision == 0 || r.Epoch == "" {
				t.Errorf("ListPrefix(%q) record %+v; want a revision, an epoch and no data", tt.prefix, r)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ListPrefix(%q) = %q; want %q", tt.prefix, got, tt.want)
		}
	}
}
