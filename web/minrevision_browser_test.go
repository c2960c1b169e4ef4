package web_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// deafStore is a store whose change feed delivers nothing: a Source over
// it hears of no write but its own, as a daemon whose feed lags forever.
type deafStore struct{ statesync.Store }

func (deafStore) Watch(context.Context, func(statesync.Record)) (func(), error) {
	return func() {}, nil
}

// TestBrowserMinRevision: a page follows a topic over the stream of one
// daemon and fetches its snapshots from another (a load balancer), whose
// feed delivers nothing. Each fetch asks for at least the revision the
// stream announced (minRevision and epoch), so the second daemon reads its
// store and the follower applies every write; the page's own write is
// read back at least at its revision too.
func TestBrowserMinRevision(t *testing.T) {
	browser := newBrowser(t)
	s := newServer(t, nil)
	srcB, err := statesync.NewSource(deafStore{s.source().Store()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hB := httpsync.NewHandler(srcB, nil)
	t.Cleanup(func() { hB.Close(); srcB.Close() })
	s.put(t, "a", `{"n":0}`)
	s.readFrom(hB)
	p := newPage(t, browser, s)
	p.eval(t, `T.client("c"); await T.follow("fa", "c", "a");`, nil)
	for i := 1; i <= 3; i++ {
		w := s.put(t, "a", `{"n":`+strconv.Itoa(i)+`}`)
		waitFor(t, p, "the follower applies "+w.Revision.String()+" through the deaf daemon", `T.followers.fa.revision()`,
			func(r string) bool { return r == w.Revision.String() })
	}
	var mine struct{ Wrote, Read string }
	p.eval(t, `const w = await T.clients.c.put("a", {n: "mine"});
		const s = await T.clients.c.getSnapshot("a");
		return {Wrote: w.revision, Read: s.revision};`, &mine)
	if mine.Read != mine.Wrote {
		t.Errorf("getSnapshot after the page's own write = revision %s; want %s", mine.Read, mine.Wrote)
	}
	asked := 0
	for _, r := range s.requests() {
		if r.Method == "GET" && r.Path == "/v1/topics/a" {
			if q, _ := url.ParseQuery(r.Query); q.Get("minRevision") != "" {
				asked++
				if q.Get("epoch") != s.get(t, "a").Epoch {
					t.Errorf("GET ?%s: epoch is not the topic's %q", r.Query, s.get(t, "a").Epoch)
				}
			}
		}
	}
	if asked < 4 {
		t.Errorf("%d snapshot GETs asked for a minRevision; want one per write at least (4)", asked)
	}
}
