package statesync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// A source of truth and a consumer in one process: every write to the
// source reaches the consumer's applier, in revision order.
func Example() {
	ctx := context.Background()
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	bus := memsync.New(src) // carries src's invalidations, serves its snapshots
	defer bus.Close()

	applied := make(chan string, 10)
	c, _ := statesync.NewConsumer("settings", bus, bus, statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		applied <- fmt.Sprintf("revision %d: %s", s.Revision, s.Data)
		return nil
	}), nil)
	if err := c.Start(ctx); err != nil { // applies the current state (revision 0, null)
		panic(err)
	}
	defer c.Stop()

	src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`))
	fmt.Println(<-applied)
	fmt.Println(<-applied)
	// Output:
	// revision 0: null
	// revision 1: {"theme":"dark"}
}

// Topic names are what users write: any UTF-8 of 1 to 256 bytes without
// control characters. CheckTopic says why a name is refused;
// CheckTopicPrefix whether a prefix may begin a name.
func ExampleCheckTopic() {
	for _, name := range []string{"settings/ui", "my topic", "café", "cart:42", "a*", "", "..", "line\nbreak", " "} {
		if err := statesync.CheckTopic(name); err != nil {
			fmt.Printf("%q: %v\n", name, err)
		} else {
			fmt.Printf("%q: valid\n", name)
		}
	}
	fmt.Println(statesync.CheckTopicPrefix(" "), statesync.CheckTopicPrefix("caf"))
	// Output:
	// "settings/ui": valid
	// "my topic": valid
	// "café": valid
	// "cart:42": valid
	// "a*": valid
	// "": statesync: invalid topic: empty
	// "..": statesync: invalid topic: ".." is not a valid URL path segment
	// "line\nbreak": statesync: invalid topic: character U+000A at byte 4 of "line\nbreak"
	// " ": statesync: invalid topic: " " is only white space
	// <nil> <nil>
}

// remoteSettings stands for a provider that makes a network round trip per
// call (an HTTP GET), and counts the calls. Its answers do not depend on
// who asks, so it declares itself a SharedProvider.
type remoteSettings struct {
	calls atomic.Int64
	rev   atomic.Uint64
}

func (p *remoteSettings) Snapshot(ctx context.Context, topic string) (statesync.Snapshot, error) {
	p.calls.Add(1)
	time.Sleep(20 * time.Millisecond) // the round trip
	return statesync.Snapshot{Revision: statesync.Revision(p.rev.Load()), Data: []byte(`{"theme":"dark"}`)}, nil
}

func (p *remoteSettings) SharedSnapshots() {}

// Three windows of one process follow the same topic through one
// SharedProvider: an invalidation reaches all three, and they share one
// fetch instead of making three round trips.
func ExampleSharedProvider() {
	ctx := context.Background()
	bus := memsync.New(nil) // carries the invalidations only
	defer bus.Close()
	prov := &remoteSettings{}
	prov.rev.Store(1)

	var wg sync.WaitGroup
	applied := make([]statesync.Revision, 3) // what each window applied last
	for i := range applied {
		c, _ := statesync.NewConsumer("settings", bus, prov, statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
			applied[i] = s.Revision
			if s.Revision == 2 {
				wg.Done()
			}
			return nil
		}), nil)
		if err := c.Start(ctx); err != nil { // Start always fetches: 3 calls
			panic(err)
		}
		defer c.Stop()
	}

	wg.Add(len(applied))
	prov.rev.Store(2)
	prov.calls.Store(0)
	bus.Publish(statesync.Invalidation{Topic: "settings", Revision: 2})
	wg.Wait()
	fmt.Println("windows applied revision", applied[0], applied[1], applied[2])
	fmt.Println("fetches for the invalidation:", prov.calls.Load())
	// Output:
	// windows applied revision 2 2 2
	// fetches for the invalidation: 1
}
