// Package pgtest gives tests a PostgreSQL server: the one named by the
// environment ([URL], [NewDatabase]) or one of their own that they can stop
// and start ([StartCluster]).
//
// Tests that need PostgreSQL skip when it is not there, unless
// STATESYNC_REQUIRE_SERVICES is set (as .ci/run does): then a missing
// server fails them, so that CI never passes by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync/internal/svc"
)

// EnvURL names the environment variable holding the URL of the PostgreSQL
// server for tests, a superuser's, e.g.
// a postgres:// URL on the server that .ci/services starts (port 55432).
const EnvURL = "STATESYNC_TEST_POSTGRES_URL"

// opTimeout bounds each statement the helpers run.
const opTimeout = 30 * time.Second

// URL returns the URL of the test server (the value of [EnvURL]). When it
// is unset it skips t, or fails it if [svc.EnvRequire] is set.
func URL(t testing.TB) string {
	t.Helper()
	return svc.URL(t, EnvURL)
}

// NewDatabase creates a database with a new random name on the test server
// (see [URL]) and returns its URL: the server's URL with the database's
// name as path. The database is dropped, with any connection still open to
// it, when the test and its subtests have finished.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := URL(t)
	if base == "" {
		return "" // only with a t that does not stop at Skip or Fatal
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL; got %q", EnvURL, base)
		return ""
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	name := "statesync_test_" + hex.EncodeToString(b[:])
	if err := exec(base, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := exec(base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// exec runs sql on a new connection to url.
func exec(url, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
