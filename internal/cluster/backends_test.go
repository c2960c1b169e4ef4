package cluster_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/statesync-go/statesync/internal/cluster"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/internal/redistest"
	"github.com/statesync-go/statesync/natsstore"
)

// withHost returns rawURL with its host:port replaced by addr.
func withHost(t testing.TB, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// hostOf returns the host:port of rawURL.
func hostOf(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// natsBackend is an embedded NATS server of the test's own (JetStream on),
// the daemons on its default bucket.
func natsBackend(t testing.TB) backend {
	return natsOn(t, natstest.NewServer(t))
}

// natsOn is the backend of the NATS server at serverURL.
func natsOn(t testing.TB, serverURL string) backend {
	return backend{
		Backend: cluster.Backend{
			Name:     "nats",
			Target:   hostOf(t, serverURL),
			StoreURL: func(addr string) string { return "nats://" + addr },
		},
		losses: []historyLoss{
			{"bucket-remade", func(testing.TB) func(testing.TB) {
				return func(t testing.TB) { remakeBucket(t, serverURL) }
			}},
		},
	}
}

// remakeBucket deletes the store's bucket and makes it again, as an
// operator who dropped it would.
func remakeBucket(t testing.TB, serverURL string) {
	t.Helper()
	nc, err := nats.Connect(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "KV_"+natsstore.DefaultBucket); err != nil {
		t.Fatalf("deleting the bucket: %v", err)
	}
	s, err := natsstore.Open(ctx, serverURL, nil) // makes the bucket again
	if err != nil {
		t.Fatalf("making the bucket again: %v", err)
	}
	_ = s.Close()
}

// natsCrashable is a three-node NATS cluster of the test's own, the
// bucket replicated on all three; its crash shuts down the server leading
// the bucket's stream (its files kept) and starts it again.
func natsCrashable(t testing.TB) (backend, func(testing.TB)) {
	c := natstest.NewCluster(t, 3)
	b := natsOn(t, c.NodeURL(0))
	storeURL := b.StoreURL
	b.StoreURL = func(addr string) string { return storeURL(addr) + "?replicas=3" }
	return b, func(t testing.TB) {
		leader := c.WaitStreamLeader("KV_" + natsstore.DefaultBucket)
		c.Shutdown(leader)
		c.Restart(leader)
	}
}

// redisBackend is a key prefix of its own on the test server
// (STATESYNC_TEST_REDIS_URL).
func redisBackend(t testing.TB) backend {
	storeURL, prefix := redistest.NewPrefix(t)
	return redisOn(t, storeURL, prefix)
}

// redisOn is the backend of the prefix of the store URL storeURL.
func redisOn(t testing.TB, storeURL, prefix string) backend {
	return backend{
		Backend: cluster.Backend{
			Name:     "redis",
			Target:   hostOf(t, storeURL),
			StoreURL: func(addr string) string { return withHost(t, storeURL, addr) },
		},
		losses: []historyLoss{
			{"keys-deleted", func(testing.TB) func(testing.TB) {
				return func(t testing.TB) {
					if err := redistest.DeletePrefix(storeURL, prefix); err != nil {
						t.Fatal(err)
					}
				}
			}},
		},
		crashNewEpoch: true,
	}
}

// redisCrashable is a redis-server process of the test's own with
// appendfsync always, killed with SIGKILL and started again.
func redisCrashable(t testing.TB) (backend, func(testing.TB)) {
	s := redistest.StartServer(t, &redistest.ServerOptions{AppendFsync: "always"})
	return redisOn(t, s.URL(), "statesync"), func(t testing.TB) {
		t.Helper()
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
}
