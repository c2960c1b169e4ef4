package redistest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync/internal/svc"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// stopping.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestNewPrefixBadURL(t *testing.T) {
	for _, bad := range []string{"postgres://x/y", "%zz"} {
		t.Setenv(EnvURL, bad)
		r := &recorder{TB: t}
		if u, p := NewPrefix(r); u != "" || p != "" || !strings.Contains(r.failed, "must be a redis://") {
			t.Errorf("NewPrefix with %s=%q = %q, %q, failure %q; want a failure", EnvURL, bad, u, p, r.failed)
		}
	}
	t.Setenv(EnvURL, "")
	t.Setenv(svc.EnvRequire, "")
	r := &recorder{TB: t}
	if u, p := NewPrefix(r); u != "" || p != "" || r.skipped == "" {
		t.Errorf("NewPrefix without a server = %q, %q, skip %q; want a skip", u, p, r.skipped)
	}
}

// NewPrefix's prefixes are distinct, in the URL, and their keys are gone
// after the test; other keys stay.
func TestNewPrefix(t *testing.T) {
	base := URL(t)
	var p1 string
	t.Run("inner", func(t *testing.T) {
		var p2 string
		var u1 string
		u1, p1 = NewPrefix(t)
		_, p2 = NewPrefix(t)
		if p1 == p2 || !strings.HasPrefix(p1, "test_") {
			t.Errorf("prefixes %q and %q; want two distinct test_ prefixes", p1, p2)
		}
		pu, err := url.Parse(u1)
		if err != nil || pu.Query().Get("prefix") != p1 {
			t.Errorf("URL %q; want one with prefix=%s", u1, p1)
		}
		if err := Do(u1, func(ctx context.Context, c *redis.Client) error {
			for i := range 2500 { // more than one SCAN batch and one DEL batch
				if err := c.Set(ctx, fmt.Sprintf("{%s}:k%d", p1, i), 1, 0).Err(); err != nil {
					return err
				}
			}
			return c.Set(ctx, "{"+p2+"}x", 1, 0).Err()
		}); err != nil {
			t.Fatal(err)
		}
	})
	if err := Do(base, func(ctx context.Context, c *redis.Client) error {
		n, err := c.Keys(ctx, "{"+p1+"}*").Result()
		if err != nil {
			return err
		}
		if len(n) != 0 {
			t.Errorf("%d keys of %s left after the test", len(n), p1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestDoErrors(t *testing.T) {
	if err := Do("%zz", nil); err == nil {
		t.Error("Do on a bad URL: no error")
	}
	if err := Do("http://x", nil); err == nil {
		t.Error("Do on a non-Redis URL: no error")
	}
	if err := Do("redis://127.0.0.1:1/0?dial_timeout=50ms", func(ctx context.Context, c *redis.Client) error {
		return c.Ping(ctx).Err()
	}); err == nil || !strings.HasPrefix(err.Error(), "redistest: ") {
		t.Errorf("Do on a closed port = %v; want a redistest: error", err)
	}
}

// A server of the test's own: killed with SIGKILL, restarted on the same
// port, it keeps what appendfsync always wrote.
func TestStartServer(t *testing.T) {
	srv := StartServer(t, &ServerOptions{AppendFsync: "always"})
	set := func(key string) error {
		return Do(srv.URL(), func(ctx context.Context, c *redis.Client) error { return c.Set(ctx, key, "v", 0).Err() })
	}
	if err := set("k"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != errNotRunning {
		t.Errorf("second Kill() = %v; want %v", err, errNotRunning)
	}
	if err := set("k2"); err == nil {
		t.Error("SET on a killed server: no error")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err == nil {
		t.Error("Restart() of a running server: no error")
	}
	if err := Do(srv.URL(), func(ctx context.Context, c *redis.Client) error {
		v, err := c.Get(ctx, "k").Result()
		if err != nil || v != "v" {
			t.Errorf("GET k after kill -9 = %q, %v; want v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0") {
		t.Errorf("Addr() = %q, URL() = %q", srv.Addr(), srv.URL())
	}
	conf, err := os.ReadFile(filepath.Join(srv.Dir(), "redis.conf"))
	if err != nil || !strings.Contains(string(conf), "appendonly yes\nappendfsync always\n") {
		t.Errorf("redis.conf = %q, %v; want appendonly with appendfsync always", conf, err)
	}
}

// Without persistence, a killed server comes back empty.
func TestStartServerNoPersistence(t *testing.T) {
	srv := StartServer(t, nil)
	if err := Do(srv.URL(), func(ctx context.Context, c *redis.Client) error { return c.Set(ctx, "k", "v", 0).Err() }); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := Do(srv.URL(), func(ctx context.Context, c *redis.Client) error {
		if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
			t.Errorf("EXISTS k after a restart without persistence = %d, %v; want 0", n, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A server that cannot start (a bad setting) reports its log.
func TestRestartFails(t *testing.T) {
	srv := StartServer(t, nil)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.Dir(), "redis.conf"), []byte("nonsense-setting yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err == nil || !strings.Contains(err.Error(), "redis-server exited") {
		t.Errorf("Restart() with a bad setting = %v; want redis-server's exit", err)
	}
}

// A replica follows its primary.
func TestStartServerReplica(t *testing.T) {
	primary := StartServer(t, nil)
	replica := StartServer(t, &ServerOptions{ReplicaOf: primary.Addr()})
	if err := Do(primary.URL(), func(ctx context.Context, c *redis.Client) error {
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			return err
		}
		n, err := c.Wait(ctx, 1, 30*time.Second).Result()
		if err != nil || n != 1 {
			t.Errorf("WAIT 1 = %d, %v; want 1 replica", n, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(replica.Dir(), "redis.conf"))
	if err != nil || !strings.Contains(string(conf), "replicaof 127.0.0.1 "+strings.TrimPrefix(primary.Addr(), "127.0.0.1:")+"\n") {
		t.Errorf("replica's redis.conf = %q, %v", conf, err)
	}
}

func TestStartServerBadReplicaOf(t *testing.T) {
	r := &recorder{TB: t}
	if s := StartServer(r, &ServerOptions{ReplicaOf: "nonsense"}); s != nil || !strings.Contains(r.failed, "ReplicaOf") {
		t.Errorf("StartServer with a bad ReplicaOf = %v, failure %q; want a failure", s, r.failed)
	}
}
