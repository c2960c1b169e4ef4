package natstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/internal/poll"
)

func jsOf(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestNewServer(t *testing.T) {
	js := jsOf(t, natstest.NewServer(t))
	if _, err := js.CreateKeyValue(ctx(t), jetstream.KeyValueConfig{Bucket: "b"}); err != nil {
		t.Fatalf("a key-value bucket on the server: %v", err)
	}
}

func TestNewServerWith(t *testing.T) {
	url := natstest.NewServerWith(t, func(o *server.Options) { o.MaxPayload = 2 << 20 })
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != 2<<20 {
		t.Errorf("max_payload %d; want the 2 MiB configured", got)
	}
}

// A replicated stream survives the shutdown of its leader; the server
// restarted comes back on its port.
func TestCluster(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	if c.Size() != 3 || c.MetaLeader() < 0 {
		t.Fatalf("Size %d, meta leader %d", c.Size(), c.MetaLeader())
	}
	js := jsOf(t, c.URL())
	if _, err := js.CreateStream(ctx(t), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	leader := c.WaitStreamLeader("S")
	if _, err := js.Publish(ctx(t), "s.1", []byte("1")); err != nil {
		t.Fatal(err)
	}
	nodeURL := c.NodeURL(leader)
	c.Shutdown(leader)
	c.Shutdown(leader) // a no-op
	if c.Server(leader) != nil {
		t.Error("Server of a node shut down is not nil")
	}
	next := c.WaitStreamLeader("S")
	if next == leader {
		t.Errorf("the leader is still n%d", leader)
	}
	c.Restart(leader)
	c.Restart(leader) // a no-op
	if c.Server(leader) == nil || c.NodeURL(leader) != nodeURL {
		t.Errorf("restarted node: server %v, URL %q (was %q)", c.Server(leader), c.NodeURL(leader), nodeURL)
	}
	nc, err := nats.Connect(nodeURL)
	if err != nil {
		t.Fatalf("connecting to the restarted node: %v", err)
	}
	defer nc.Close()
	js2, _ := jetstream.New(nc)
	// Right after a restart a request may still go unanswered (the
	// routes' interest is being exchanged): ask until one is answered.
	poll.UntilState(t, "the stream's state through the restarted node", func() (bool, string) {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := js2.Stream(c, "S")
		if err != nil {
			return false, err.Error()
		}
		n := st.CachedInfo().State.Msgs
		return n == 1, fmt.Sprintf("%d messages", n)
	})
}
