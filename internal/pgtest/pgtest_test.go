package pgtest

import (
	"context"
	"fmt"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync/internal/svc"
)

// recorder is a testing.TB that records Skipf, and Fatalf unless
// realFatal is set, instead of stopping.
type recorder struct {
	testing.TB
	realFatal       bool
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	if r.realFatal {
		r.TB.Fatalf(format, args...)
	}
	r.failed = fmt.Sprintf(format, args...)
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestNewDatabase(t *testing.T) {
	base := URL(t)
	var name string
	t.Run("Use", func(t *testing.T) {
		u := NewDatabase(t)
		if u == base {
			t.Fatalf("NewDatabase returned the server's URL %q", u)
		}
		conn := connect(t, u)
		name = queryString(t, conn, "SELECT current_database()")
		if !strings.HasPrefix(name, "statesync_test_") || !strings.Contains(u, "/"+name) {
			t.Errorf("database %q at %q; want a statesync_test_ database named in the URL", name, u)
		}
		if _, err := conn.Exec(context.Background(), "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		other := NewDatabase(t)
		if other == u {
			t.Errorf("two NewDatabase calls returned the same URL %q", u)
		}
		// The connection is still open at cleanup: the drop forces it.
	})
	conn := connect(t, base)
	n := queryString(t, conn, "SELECT count(*)::text FROM pg_database WHERE datname = $1", name)
	if n != "0" {
		t.Errorf("database %q still exists after the test's cleanup", name)
	}
}

// The URL must be a postgres:// or postgresql:// URL.
func TestNewDatabaseBadURL(t *testing.T) {
	for _, u := range []string{"host=127.0.0.1 dbname=x", "mysql://u@127.0.0.1/x", "postgres://%zz"} {
		t.Setenv(EnvURL, u)
		r := &recorder{TB: t}
		if got := NewDatabase(r); got != "" || !strings.Contains(r.failed, "postgres:// URL") {
			t.Errorf("NewDatabase with %s=%q = %q, failure %q; want a failure naming postgres:// URLs", EnvURL, u, got, r.failed)
		}
	}
}

func TestNewDatabasePostgresqlScheme(t *testing.T) {
	t.Setenv(EnvURL, strings.Replace(URL(t), "postgres://", "postgresql://", 1))
	connect(t, NewDatabase(t))
}

func TestCluster(t *testing.T) {
	// Installed binaries must not be skipped over.
	r := &recorder{TB: t, realFatal: true}
	c := StartCluster(r)
	if r.skipped != "" {
		if findBinDir() != "" {
			t.Fatalf("StartCluster skipped (%s) though the binaries are in %s", r.skipped, findBinDir())
		}
		t.Skip(r.skipped)
	}
	if !strings.Contains(c.URL(), fmt.Sprintf(":%d/", c.Port())) {
		t.Errorf("URL() = %q; want port %d", c.URL(), c.Port())
	}
	ctx := context.Background()
	conn := connect(t, c.URL())
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('committed')"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err == nil {
		t.Error("Start() of a running cluster: no error")
	}
	if err := c.Stop("immediate"); err != nil {
		t.Fatalf("Stop(immediate): %v", err)
	}
	if err := c.Stop("immediate"); err == nil {
		t.Error("Stop() of a stopped cluster: no error")
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("Ping on a connection to the stopped server succeeded")
	}
	if _, err := pgx.Connect(ctx, c.URL()); err == nil {
		t.Fatal("connecting to the stopped server succeeded")
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start() after an immediate stop: %v", err)
	}
	conn = connect(t, c.URL())
	if got := queryString(t, conn, "SELECT v FROM kept"); got != "committed" {
		t.Errorf("row after crash recovery = %q; want %q", got, "committed")
	}
	if err := c.Stop("fast"); err != nil {
		t.Fatalf("Stop(fast): %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start() after a fast stop: %v", err)
	}
	conn = connect(t, c.URL())
	if got := queryString(t, conn, "SELECT v FROM kept"); got != "committed" {
		t.Errorf("row after a fast stop and start = %q; want %q", got, "committed")
	}
}

// Program finds the client programs next to the server's, and skips (or
// fails, when services are required) for one that is not there.
func TestProgram(t *testing.T) {
	t.Setenv(svc.EnvRequire, "")
	rec := &recorder{TB: t}
	if got := Program(rec, "no-such-program"); rec.skipped == "" {
		t.Errorf("Program of a missing program returned %q without skipping", got)
	}
	path := Program(t, "pg_dump")
	out, err := osexec.Command(path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", path, err, out)
	}
	if !strings.Contains(string(out), "pg_dump (PostgreSQL)") {
		t.Errorf("%s --version printed %q", path, out)
	}
}
