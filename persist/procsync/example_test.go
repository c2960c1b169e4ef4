package procsync_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/procsync"
)

// Two processes (here, two Persisters) share a storage and a bus: a save
// by one is applied by the other, read from the storage.
func ExampleJoin() {
	ctx := context.Background()
	store := persist.NewMemoryStorage(nil) // processes would share a FileStorage directory
	bus := &procsync.MemoryBus{}           // and a procsync.OpenSocketBus directory

	writer, _ := persist.New(store, statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil }), nil)
	defer writer.Close()
	wpeer, _ := procsync.Join(writer, bus, procsync.ChannelName("settings"), nil)
	defer wpeer.Close()

	got := make(chan statesync.Snapshot, 1)
	reader, _ := persist.New(store, statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
		got <- s
		return nil
	}), nil)
	defer reader.Close()
	rpeer, _ := procsync.Join(reader, bus, procsync.ChannelName("settings"), nil)
	defer rpeer.Close()

	writer.Apply(ctx, statesync.Snapshot{Revision: 3, Data: json.RawMessage(`{"theme":"dark"}`)})
	s := <-got
	fmt.Printf("the other process applied revision %d: %s\n", s.Revision, s.Data)
	// Output:
	// the other process applied revision 3: {"theme":"dark"}
}
