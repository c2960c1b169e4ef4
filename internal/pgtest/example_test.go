package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/statesync-go/statesync/internal/pgtest"
)

// A test that must crash PostgreSQL runs a cluster of its own.
func ExampleStartCluster() {
	var t *testing.T // the test's
	c := pgtest.StartCluster(t)
	// ... write through a store connected to c.URL() ...
	if err := c.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// ... check that what was committed is still there ...
}

// A test that only needs a database of its own uses the shared server.
func ExampleNewDatabase() {
	var t *testing.T // the test's
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
}
