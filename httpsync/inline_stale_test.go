package httpsync_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/poll"
)

// The scenario of issue 9, item 7 (found in statesync.js), against the Go
// client: topic a's snapshot rides inline on a stream reopened for topic b;
// then a write of a too large to ride inline is announced without data, by
// the same server or by a restarted one (another epoch). Snapshot and the
// consumer must reach it: an inline snapshot older than the announced
// revision does not answer Snapshot or PeekSnapshot.
func TestClientInlineOlderThanAnnounced(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "Write", true: "Restart"}[restart]
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			s := newTestServerOn(t, ln, "before", nil)
			c := newClient(t, "http://"+addr, &httpsync.ClientOptions{Inline: 100})
			w1 := s.put(t, "a", `{"v":1}`)
			s.put(t, "b", `{"v":1}`)
			conA, _ := startConsumer(t, c, "a", nil)
			startConsumer(t, c, "b", nil) // reopens the stream, whose first frames carry a and b inline
			poll.Until(t, "a's snapshot inline", func() bool {
				snap, ok := c.PeekSnapshot("a")
				return ok && snap.Revision == w1.Revision
			})

			big := `{"pad":"` + strings.Repeat("x", 200) + `"}`
			var w2 statesync.Snapshot
			if restart {
				s.stop()
				poll.Until(t, "listening again on "+addr, func() bool {
					ln, err := net.Listen("tcp", addr)
					if err != nil {
						return false
					}
					s = newTestServerOn(t, ln, "after", nil)
					return true
				})
				s.put(t, "a", `{"v":"filler"}`)
				w2 = s.put(t, "a", big) // revision 2 of a new epoch
			} else {
				w2 = s.put(t, "a", big)
			}
			poll.Until(t, "the consumer of a at the large write", func() bool {
				return conA.Revision() == w2.Revision && conA.Epoch() == w2.Epoch
			})
			if snap, ok := c.PeekSnapshot("a"); ok {
				t.Errorf("PeekSnapshot(a) = %v %s at hand; want none (too large to ride inline)", snap.Revision, snap.Epoch)
			}
			snap, err := c.Snapshot(context.Background(), "a")
			if err != nil || snap.Revision != w2.Revision || snap.Epoch != w2.Epoch || string(snap.Data) != big {
				t.Errorf("Snapshot(a) = %v %s %.20s…, %v; want %v %s the large write", snap.Revision, snap.Epoch, snap.Data, err, w2.Revision, w2.Epoch)
			}
		})
	}
}
