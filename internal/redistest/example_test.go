package redistest_test

import (
	"testing"

	"github.com/statesync-go/statesync/internal/redistest"
)

// A test that must crash Redis runs a server of its own.
func ExampleStartServer() {
	var t *testing.T // the test's
	srv := redistest.StartServer(t, &redistest.ServerOptions{AppendFsync: "always"})
	// ... write through a store opened on srv.URL() ...
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// ... check that what was acknowledged is still there ...
}

// A test that only needs keys of its own uses the shared server.
func ExampleNewPrefix() {
	var t *testing.T // the test's
	url, prefix := redistest.NewPrefix(t)
	_ = url    // a redisstore URL: the server's, with ?prefix=…
	_ = prefix // its keys start with "{prefix}"
}
