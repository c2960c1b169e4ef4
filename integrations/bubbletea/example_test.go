package teasync_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/statesync-go/statesync"
	teasync "github.com/statesync-go/statesync/integrations/bubbletea"
	"github.com/statesync-go/statesync/memsync"
)

// A consumer keeps a Bubble Tea program informed: give it an Applier that
// sends to the program. With a real program, the Sender is
// teasync.SenderFunc(func(m any) { p.Send(m) }) and the program's Update
// receives teasync.SnapshotMsg[T]; here a channel stands in for it.
func ExampleNewApplier() {
	ctx := context.Background()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()
	if _, err := src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`)); err != nil {
		panic(err)
	}

	type Settings struct {
		Theme string `json:"theme"`
	}
	program := make(chan any) // stands in for a *tea.Program
	applier := teasync.NewApplier[Settings](teasync.SenderFunc(func(m any) { program <- m }), "settings", nil)
	defer applier.Close()

	c, err := statesync.NewConsumer("settings", bus, bus, applier, nil)
	if err != nil {
		panic(err)
	}
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	defer c.Stop()
	msg := (<-program).(teasync.SnapshotMsg[Settings])
	fmt.Println(msg.Topic, msg.Revision, msg.Value.Theme)

	if _, err := src.Put(ctx, "settings", json.RawMessage(`{"theme":"light"}`)); err != nil {
		panic(err)
	}
	msg = (<-program).(teasync.SnapshotMsg[Settings])
	fmt.Println(msg.Topic, msg.Revision, msg.Value.Theme)
	// Output:
	// settings 1 dark
	// settings 2 light
}
