package redisstore_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/redisstore"
)

// admin runs f with a client of the Redis at storeURL.
func admin(t testing.TB, storeURL string, f func(ctx context.Context, c *redis.Client) error) {
	t.Helper()
	if err := redistest.Do(storeURL, f); err != nil {
		t.Fatal(err)
	}
}

// open opens a store closed at cleanup.
func open(t testing.TB, storeURL string, opts *redisstore.Options) *redisstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := redisstore.Open(ctx, storeURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// withHost returns storeURL with its host:port replaced.
func withHost(t testing.TB, storeURL, hostport string) string {
	t.Helper()
	u, err := url.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	return u.String()
}

// hostOf returns the host:port of storeURL.
func hostOf(t testing.TB, storeURL string) string {
	t.Helper()
	u, err := url.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
