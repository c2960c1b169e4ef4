package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
)

// handlerFunc is an InvalidationHandler of decoded invalidations.
type handlerFunc func(statesync.Invalidation)

func (f handlerFunc) Invalidate(inv statesync.Invalidation) { f(inv) }
func (f handlerFunc) InvalidateRaw(p []byte) {
	if inv, err := statesync.DecodeInvalidation(p); err == nil {
		f(inv)
	}
}

// A prefix watch on daemon C hears of a topic created through daemon A
// after the watch began (it reaches C through the shared store's feed),
// and of its later writes; never of topics outside the prefix.
func TestCrossDaemonPrefixWatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := start(t, b)
		a, cn := c.Nodes[0], c.Nodes[2]
		got := make(chan statesync.Invalidation, 100)
		stop, err := cn.Client.SubscribePrefix(t.Context(), "px:", handlerFunc(func(inv statesync.Invalidation) { got <- inv }))
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		for i := range 3 {
			write(t, a.Client, "other", i)
			want := write(t, a.Client, "px:new", i)
			deadline := time.After(10 * time.Second)
			for done := false; !done; {
				select {
				case inv := <-got:
					if !strings.HasPrefix(inv.Topic, "px:") {
						t.Fatalf("got %+v: outside the prefix", inv)
					}
					done = inv.Topic == "px:new" && inv.Epoch == want.Epoch && inv.Revision >= want.Revision
				case <-deadline:
					t.Fatalf("write %d of px:new (revision %d) not heard on daemon %s within 10 s", i, want.Revision, cn.Name)
				}
			}
		}
	})
}
