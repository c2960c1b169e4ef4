package httpsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// A source of truth served over HTTP, and a consumer in another process
// following it through a Client: every write reaches the consumer's
// applier, in revision order.
func Example() {
	ctx := context.Background()

	// The server side: a Source behind the Handler.
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	api := httpsync.NewHandler(src, nil)
	defer api.Close()
	ts := httptest.NewServer(api) // a daemon mounts it: mux.Handle("/v1/", api)
	defer ts.Close()

	// The client side: a consumer of "settings" over HTTP.
	client, _ := httpsync.NewClient(ts.URL, nil)
	defer client.Close()
	applied := make(chan string, 10)
	con, _ := statesync.NewConsumer("settings", client, client, statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		applied <- fmt.Sprintf("revision %d: %s", s.Revision, s.Data)
		return nil
	}), nil)
	if err := con.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer con.Stop()

	src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`))
	fmt.Println(<-applied)
	fmt.Println(<-applied)
	// Output:
	// revision 0: null
	// revision 1: {"theme":"dark"}
}

// A writer that also follows the topic offers its consumer the snapshot its
// write returned: the consumer applies it at once, without pulling it, and
// skips the echo of its own write (B-GATE-12).
func ExampleClient_Put() {
	ctx := context.Background()
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	api := httpsync.NewHandler(src, nil)
	defer api.Close()
	ts := httptest.NewServer(api)
	defer ts.Close()

	client, _ := httpsync.NewClient(ts.URL, &httpsync.ClientOptions{SourceID: "editor-1"})
	defer client.Close()
	applied := make(chan string, 10)
	con, _ := statesync.NewConsumer("doc", client, client, statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		applied <- fmt.Sprintf("revision %d: %s", s.Revision, s.Data)
		return nil
	}), &statesync.ConsumerOptions{
		ShouldRefresh: func(inv statesync.Invalidation) bool { return inv.SourceID != "editor-1" },
	})
	if err := con.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer con.Stop()
	fmt.Println(<-applied)

	snap, err := client.Put(ctx, "doc", json.RawMessage(`{"title":"Draft"}`))
	if err != nil {
		log.Fatal(err)
	}
	if err := con.Offer(ctx, snap); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-applied)

	// A conditional write from a stale revision is refused.
	_, err = client.PutIf(ctx, "doc", json.RawMessage(`{"title":"Old"}`), 0)
	var conflict *statesync.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("conflict at revision", conflict.Current)
	}
	fmt.Println("snapshot GETs:", api.Stats().SnapshotGets)
	// Output:
	// revision 0: null
	// revision 1: {"title":"Draft"}
	// conflict at revision 1
	// snapshot GETs: 1
}

// Mounting the handler in a daemon, with token auth, and shutting it down:
// the event streams end first, then the server drains.
func ExampleNewHandler() {
	src, _ := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	toks, err := httpsync.LoadTokens("tokens.json")
	if err != nil {
		log.Fatal(err)
	}
	api := httpsync.NewHandler(src, &httpsync.HandlerOptions{Auth: toks})
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	srv := &http.Server{Addr: "127.0.0.1:8765", Handler: mux}
	go srv.ListenAndServe()

	// On SIGTERM:
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	api.Shutdown(ctx) // end the event streams, which never go idle
	srv.Shutdown(ctx) // then drain the other requests
	src.Close()
}

// A token file grants each token read and write access to topic patterns.
func ExampleParseTokens() {
	toks, err := httpsync.ParseTokens(strings.NewReader(`{"tokens":[
		{"name":"worker","token":"s3cr3t","read":["settings","cache:*"],"write":["settings"]}
	]}`))
	if err != nil {
		log.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/topics/cache:users", nil)
	r.Header.Set("Authorization", "Bearer s3cr3t")
	g, _ := toks.Authenticate(r)
	fmt.Println(g.CanRead("cache:users"), g.CanWrite("cache:users"), g.CanRead("secrets"))
	// Output: true false false
}

// MergePatch is RFC 7396: members set to null are removed, objects merge,
// anything else replaces.
func ExampleMergePatch() {
	out, _ := httpsync.MergePatch(
		[]byte(`{"theme":"dark","font":{"size":12,"family":"mono"},"tabs":[1,2]}`),
		[]byte(`{"font":{"family":null},"tabs":[3],"lang":"en"}`))
	fmt.Println(string(out))
	// Output: {"theme":"dark","font":{"size":12},"tabs":[3],"lang":"en"}
}

// Following every topic under a prefix, those created after the watch
// began included, as etcdctl watch --prefix does: the handler gets the
// current revision of each, then every write to one.
func ExampleClient_SubscribePrefix() {
	ctx := context.Background()
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	api := httpsync.NewHandler(src, nil)
	defer api.Close()
	ts := httptest.NewServer(api)
	defer ts.Close()

	src.Put(ctx, "cart:alice", json.RawMessage(`["apple"]`))
	client, _ := httpsync.NewClient(ts.URL, nil)
	defer client.Close()
	seen := make(chan statesync.Invalidation, 10)
	stop, err := client.SubscribePrefix(ctx, "cart:", handlerFunc(func(inv statesync.Invalidation) { seen <- inv }))
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	fmt.Println((<-seen).Topic) // written before
	src.Put(ctx, "settings", json.RawMessage(`{}`))
	src.Put(ctx, "cart:bob", json.RawMessage(`["pear"]`)) // a new topic
	inv := <-seen
	snap, _ := client.Snapshot(statesync.WithMinRevision(ctx, inv.Epoch, inv.Revision), inv.Topic)
	fmt.Printf("%s: %s\n", inv.Topic, snap.Data)
	// Output:
	// cart:alice
	// cart:bob: ["pear"]
}

// reloadable is an Authenticator whose Tokens are replaced when the token
// file is loaded again.
type reloadable struct {
	cur atomic.Pointer[httpsync.Tokens]
}

func (a *reloadable) Authenticate(r *http.Request) (httpsync.Grants, error) {
	return a.cur.Load().Authenticate(r)
}

// Reloading a token file (on SIGHUP, say): Regrant moves the open event
// streams onto the new tokens, closing those whose token is gone or lost a
// grant; then the Authenticator gives the new tokens to new requests.
func ExampleHandler_Regrant() {
	src, _ := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	defer src.Close()
	first, _ := httpsync.ParseTokens(strings.NewReader(`{"tokens":[{"token":"s3cr3t","read":["*"]}]}`))
	auth := &reloadable{}
	auth.cur.Store(first)
	api := httpsync.NewHandler(src, &httpsync.HandlerOptions{Auth: auth})
	defer api.Close()

	// Later, the file changed:
	next, err := httpsync.ParseTokens(strings.NewReader(`{"tokens":[{"token":"s3cr3t","read":["settings"]}]}`))
	if err != nil {
		log.Print(err) // keep the previous tokens
		return
	}
	auth.cur.Store(next)
	fmt.Println("streams closed:", api.Regrant(next.Regrant))
	// Output: streams closed: 0
}
