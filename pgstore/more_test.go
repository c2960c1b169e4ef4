package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/pgtest"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/storetest"
	"github.com/statesync-go/statesync/pgstore"
)

// logSink is a slog.Handler keeping the messages it receives.
type logSink struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }

func (l *logSink) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// Someone else's notifications on the store's channel are logged and
// dropped; the feed goes on.
func TestForeignNotifications(t *testing.T) {
	db := pgtest.NewDatabase(t)
	sink := &logSink{}
	s := open(t, db, &pgstore.Options{Logger: slog.New(sink)})
	w := storetest.Watch(t, s)
	admin(t, db,
		"NOTIFY statesync_statesync, 'hello'",
		"NOTIFY statesync_statesync, 'w|1|2|3|4|not a topic|='",
		"NOTIFY statesync_statesync, 'w|99|2|3|4|forged|=x'",
		"NOTIFY statesync_statesync")
	storetest.WaitSeen(t, w, storetest.MustWrite(t, s, statesync.Write{Topic: storetest.NewTopic("after"), Data: json.RawMessage(`1`)}))
	if !sink.has("not the store's") {
		t.Errorf("no warning logged for bad notifications; log: %q", sink.msgs)
	}
	if st := s.FeedStatus(); !st.Connected || st.Reconnects != 0 {
		t.Errorf("FeedStatus = %s; want connected, never reconnected", statusString(st))
	}
}

// A keyword/value connection string is passed to pgx as it is.
func TestKeywordDSN(t *testing.T) {
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"))
	s := open(t, dsn, nil)
	storetest.MustWrite(t, s, statesync.Write{Topic: "dsn", Data: json.RawMessage(`1`)})
}

// A role that may not read the server's control data (as on some managed
// services) still gets a store, one epoch for all its stores, and a new
// epoch when the topics table is emptied.
func TestRestrictedRole(t *testing.T) {
	db := pgtest.NewDatabase(t)
	base := pgtest.URL(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	role := "statesync_role_" + hex.EncodeToString(b[:])
	admin(t, base, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		admin(t, db, "DROP OWNED BY "+role)
		admin(t, base, "DROP ROLE "+role)
	})
	dbName := strings.TrimPrefix(mustParse(t, db).Path, "/")
	admin(t, db,
		"GRANT CREATE ON DATABASE "+dbName+" TO "+role,
		"REVOKE EXECUTE ON FUNCTION pg_control_system(), pg_control_checkpoint(), pg_walfile_name(pg_lsn) FROM PUBLIC")
	ru := mustParse(t, db)
	ru.User = url.User(role)
	conn, err := pgx.Connect(storetest.OpContext(t), ru.String())
	if err != nil {
		t.Fatal(err)
	}
	var x string
	err = conn.QueryRow(storetest.OpContext(t), "SELECT system_identifier::text FROM pg_control_system()").Scan(&x)
	conn.Close(context.Background())
	if err == nil {
		t.Fatal("the role can still call pg_control_system(); the test would not test the fallback")
	}
	a, bs := open(t, ru.String(), nil), open(t, ru.String(), nil)
	w := storetest.Watch(t, bs)
	r1 := storetest.MustWrite(t, a, statesync.Write{Topic: "t", Data: json.RawMessage(`1`)})
	storetest.WaitSeen(t, w, r1)
	if got, _ := w.Find("t", r1.Revision); got.Epoch != r1.Epoch || storetest.MustGet(t, bs, "t").Epoch != r1.Epoch {
		t.Errorf("epochs differ between the stores of a restricted role: %q, %q, %q", r1.Epoch, got.Epoch, storetest.MustGet(t, bs, "t").Epoch)
	}
	admin(t, db, "TRUNCATE statesync.topics")
	poll.Until(t, "a new epoch and a Resync after TRUNCATE", func() bool {
		rec, err := a.Get(storetest.OpContext(t), "t")
		return err == nil && rec.Epoch != r1.Epoch && w.Resyncs() >= 1
	})
}

func mustParse(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
