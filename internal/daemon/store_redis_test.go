package daemon_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/redistest"
)

// --store redis://…: two daemons on one Redis prefix serve the same
// topics; a write through one is read through the other.
func TestStoreRedis(t *testing.T) {
	u, _ := redistest.NewPrefix(t)
	var ds []*testDaemon
	for range 2 {
		cfg := testConfig(t)
		cfg.Data = ""
		cfg.Store = u
		ds = append(ds, startDaemon(t, cfg))
	}
	ds[0].expect(t, http.StatusOK, "PUT", "/v1/topics/redis.shared", `{"from":"a"}`)
	poll.UntilState(t, "the other daemon serves the write", func() (bool, string) {
		resp, body := ds[1].do(t, "GET", "/v1/topics/redis.shared", "")
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"from":"a"`), string(body)
	})
}
