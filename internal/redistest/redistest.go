// Package redistest gives tests a Redis server: the one named by the
// environment ([URL], [NewPrefix]) or one of their own that they can kill
// and restart ([StartServer]).
//
// Tests that need Redis skip when it is not there, unless
// STATESYNC_REQUIRE_SERVICES is set (as .ci/run does): then a missing
// server fails them, so that CI never passes by skipping.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync/internal/svc"
)

// EnvURL names the environment variable holding the URL of the Redis
// server for tests, a redis:// URL, as .ci/services sets it (on port 56379).
const EnvURL = "STATESYNC_TEST_REDIS_URL"

// opTimeout bounds each command the helpers run.
const opTimeout = 30 * time.Second

// URL returns the URL of the test server (the value of [EnvURL]). When it
// is unset it skips t, or fails it if [svc.EnvRequire] is set.
func URL(t testing.TB) string {
	t.Helper()
	return svc.URL(t, EnvURL)
}

// NewPrefix returns a new random key prefix on the test server (see [URL])
// and the server's URL with the query option prefix set to it, which is
// how redisstore takes it: tests on distinct prefixes share the server
// without seeing each other's keys. The keys of the prefix (those starting
// with "{prefix}") are deleted when the test and its subtests have
// finished.
func NewPrefix(t testing.TB) (storeURL, prefix string) {
	t.Helper()
	base := URL(t)
	if base == "" {
		return "", "" // only with a t that does not stop at Skip or Fatal
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		t.Fatalf("redistest: %s must be a redis:// or rediss:// URL; got %q", EnvURL, base)
		return "", ""
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	prefix = "test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		if err := DeletePrefix(base, prefix); err != nil {
			t.Errorf("redistest: deleting the keys of %s: %v", prefix, err)
		}
	})
	q := u.Query()
	q.Set("prefix", prefix)
	u.RawQuery = q.Encode()
	return u.String(), prefix
}

// DeletePrefix deletes the keys of the Redis at redisURL (a go-redis URL,
// without redisstore's options) that start with "{prefix}", and returns
// once they are gone.
func DeletePrefix(redisURL, prefix string) error {
	return Do(redisURL, func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, "{"+prefix+"}*", 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 1000 {
				if err := c.Del(ctx, batch...).Err(); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if len(batch) > 0 {
			return c.Del(ctx, batch...).Err()
		}
		return nil
	})
}

// Do calls f with a new client of the Redis at rawURL (a redis:// URL;
// query options that go-redis does not know, such as redisstore's, are
// dropped) and a context bounded by a 30 s timeout, and closes the client.
func Do(rawURL string, f func(ctx context.Context, c *redis.Client) error) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	u.RawQuery = ""
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		return err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := f(ctx, c); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	return nil
}
