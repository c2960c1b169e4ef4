package statesync_test

import (
	"context"
	"encoding/json"
	"fmt"

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
