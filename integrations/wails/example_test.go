package wailssync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/integrations/wails"
)

// A Wails app follows a Source through a Bridge. In a real app the emit
// function is Wails' runtime.EventsEmit itself and the Bridge is bound:
//
//	bridge := wailssync.NewBridge(src, runtime.EventsEmit, nil)
//	err := wails.Run(&options.App{
//		OnStartup:  bridge.Startup, // gives the Bridge the Wails context
//		OnShutdown: func(context.Context) { bridge.Close() },
//		Bind:       []any{bridge.API()},
//		// ...
//	})
//
// and the frontend builds its transport from the generated bindings:
//
//	import { EventsOn, EventsOff } from "../wailsjs/runtime/runtime";
//	import { GetSnapshot } from "../wailsjs/go/wailssync/API";
//	import { createWailsTransport } from "./statesync-wails.js";
//	const t = createWailsTransport({ EventsOn, EventsOff, call: GetSnapshot });
//	// createConsumer({ topic: "settings", subscriber: t.subscriber("settings"),
//	//                  provider: t.provider("settings"), applier })
//
// Here a printing function stands in for runtime.EventsEmit.
func ExampleNewBridge() {
	store := statesync.NewMemoryStore(&statesync.MemoryStoreOptions{
		FirstRevision: 1,
		Epoch:         "e1",
		Now:           func() time.Time { return time.UnixMilli(1764000000000) },
	})
	src, err := statesync.NewSource(store, nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()

	emitted := make(chan struct{})
	emit := func(_ context.Context, event string, data ...any) {
		b, _ := json.Marshal(data[0])
		fmt.Printf("emit %s %s\n", event, b)
		close(emitted)
	}
	bridge := wailssync.NewBridge(src, emit, nil)
	defer bridge.Close()
	bridge.Startup(context.Background()) // Wails calls this via OnStartup

	// What the frontend calls through the bindings:
	api := bridge.API()
	if _, err := api.Put("settings", json.RawMessage(`{"theme":"dark"}`)); err != nil {
		panic(err)
	}
	<-emitted
	snap, _ := api.GetSnapshot("settings")
	b, _ := json.Marshal(snap)
	fmt.Printf("GetSnapshot %s\n", b)
	// Output:
	// emit statesync:invalidation {"topic":"settings","revision":"1","epoch":"e1","timestampMs":1764000000000}
	// GetSnapshot {"revision":"1","epoch":"e1","data":{"theme":"dark"}}
}
