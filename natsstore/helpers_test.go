package natsstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/natsstore"
)

// open opens a store closed at cleanup.
func open(t testing.TB, url string, opts *natsstore.Options) *natsstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := natsstore.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// hostPort returns the host:port of a nats:// URL.
func hostPort(url string) string { return strings.TrimPrefix(url, "nats://") }

// quick is set by the gremlins build tag (quick_test.go).
var quick bool

// skipSlow skips a slow test in -short mode and in mutation testing.
func skipSlow(t *testing.T, why string) {
	t.Helper()
	if testing.Short() || quick {
		t.Skip(why)
	}
}
