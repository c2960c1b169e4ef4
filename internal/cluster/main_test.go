package cluster_test

import (
	"context"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/cluster"
	"github.com/statesync-go/statesync/internal/pgtest"
)

// TestMain fails the package's tests if a test leaves a goroutine running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// invalidationFunc is a statesync.InvalidationHandler made of a function.
type invalidationFunc func(statesync.Invalidation)

func (f invalidationFunc) Invalidate(inv statesync.Invalidation) { f(inv) }

func (f invalidationFunc) InvalidateRaw(p []byte) {
	if inv, err := statesync.DecodeInvalidation(p); err == nil {
		f(inv)
	}
}

// postgresBackend is a database of its own on the test server
// (STATESYNC_TEST_POSTGRES_URL).
func postgresBackend(t testing.TB) backend {
	return postgresOn(t, pgtest.NewDatabase(t))
}

// postgresCrashable is a PostgreSQL server of the test's own, crashed
// with pg_ctl -m immediate and started again.
func postgresCrashable(t testing.TB) (backend, func(testing.TB)) {
	pg := pgtest.StartCluster(t)
	return postgresOn(t, pg.URL()), func(t testing.TB) {
		t.Helper()
		if err := pg.Stop("immediate"); err != nil {
			t.Fatal(err)
		}
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
	}
}

// postgresOn is the backend of the database at dbURL.
func postgresOn(t testing.TB, dbURL string) backend {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return backend{
		Backend: cluster.Backend{
			Name:   "postgres",
			Target: u.Host,
			StoreURL: func(addr string) string {
				v := *u
				v.Host = addr
				return v.String()
			},
		},
		losses: []historyLoss{
			{"emptied", func(testing.TB) func(testing.TB) {
				return func(t testing.TB) { pgExec(t, dbURL, "TRUNCATE statesync.topics") }
			}},
			{"restored", func(t testing.TB) func(testing.TB) {
				// A dump of the schema now, restored later over what was
				// written since: the tables are dropped and created again.
				dump := filepath.Join(t.TempDir(), "statesync.dump")
				run(t, pgtest.Program(t, "pg_dump"), "--format=custom", "--schema=statesync", "--file="+dump, "--dbname="+dbURL)
				return func(t testing.TB) {
					run(t, pgtest.Program(t, "pg_restore"), "--clean", "--if-exists", "--single-transaction", "--dbname="+dbURL, dump)
				}
			}},
		},
	}
}

// run runs a program and fails t if it fails.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(name), err, out)
	}
}

func pgExec(t testing.TB, dbURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
