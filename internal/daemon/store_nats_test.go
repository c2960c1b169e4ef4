package daemon_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/natstest"
)

// TestNATSStore: two daemons on --store nats://… share one bucket of an
// embedded server: a write through one is read through the other; the
// token is not logged.
func TestNATSStore(t *testing.T) {
	srv := natstest.NewServerWith(t, func(o *server.Options) { o.Authorization = "secret" })
	store := strings.Replace(srv, "nats://", "nats://secret@", 1) + "?bucket=daemons"
	cfgA, cfgB := testConfig(t), testConfig(t)
	cfgA.Data, cfgB.Data = "", ""
	cfgA.Store, cfgB.Store = store, store
	var logs bytes.Buffer
	sa, err := daemon.Start(cfgA, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sa.Shutdown(context.Background()) }()
	b := startDaemon(t, cfgB)
	a := &testDaemon{s: sa, url: "http://" + sa.Addr().String(), hc: http.DefaultClient}
	a.expect(t, http.StatusOK, "PUT", "/v1/topics/shared", `{"from":"a"}`)
	if got := string(b.expect(t, http.StatusOK, "GET", "/v1/topics/shared", "")); !strings.Contains(got, `"from":"a"`) {
		t.Errorf("GET through B = %s; want A's write", got)
	}
	if out := logs.String(); strings.Contains(out, "secret") || !strings.Contains(out, "nats://xxxxx@127.0.0.1") {
		t.Errorf("logs %q; want the store URL with its token redacted", out)
	}
}
