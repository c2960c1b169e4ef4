package statesynctest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/statesynctest"
)

// Two consumers follow a topic through an in-process bus; the history
// checks what each applied and says when both are at the last write.
func ExampleHistory() {
	ctx := context.Background()
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()

	h := statesynctest.NewHistory()
	for _, name := range []string{"editor", "preview"} {
		c, _ := statesync.NewConsumer("doc", bus, bus, h.Applier(name, nil), nil)
		if err := c.Start(ctx); err != nil {
			panic(err)
		}
		defer c.Wait(ctx)
		defer c.Stop()
	}
	for i := range 3 {
		src.Put(ctx, "doc", json.RawMessage(strconv.Itoa(i+1)))
	}

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := h.WaitConverged(wctx, 3, ""); err != nil {
		fmt.Println(err)
	}
	fmt.Println("violations:", h.Err())
	for _, name := range h.Names() {
		last, _ := h.Last(name)
		fmt.Printf("%s: revision %d, data %s\n", name, last.Revision, last.Data)
	}
	// Output:
	// violations: <nil>
	// editor: revision 3, data 3
	// preview: revision 3, data 3
}

// A Chaos that drops every invalidation, then is quiesced: what it dropped
// is gone, what comes after gets through.
func ExampleNewChaos() {
	bus := memsync.New(nil)
	defer bus.Close()
	ch := statesynctest.NewChaos(bus, nil, statesynctest.ChaosOptions{Drop: 1})
	defer ch.Close()

	var got []statesync.Revision
	unsub, _ := ch.Subscribe(context.Background(), "doc", handlerFunc(func(inv statesync.Invalidation) {
		got = append(got, inv.Revision)
	}))
	defer unsub()

	bus.Publish(statesync.Invalidation{Topic: "doc", Revision: 1})
	bus.Publish(statesync.Invalidation{Topic: "doc", Revision: 2})
	ch.Quiesce()
	bus.Publish(statesync.Invalidation{Topic: "doc", Revision: 3})

	st := ch.Stats()
	fmt.Printf("delivered %v, dropped %d\n", got, st.Dropped)
	// Output:
	// delivered [3], dropped 2
}

// handlerFunc adapts a function to statesync.InvalidationHandler, for the example.
type handlerFunc func(statesync.Invalidation)

func (f handlerFunc) Invalidate(inv statesync.Invalidation) { f(inv) }

func (f handlerFunc) InvalidateRaw(p []byte) {
	if inv, err := statesync.DecodeInvalidation(p); err == nil {
		f(inv)
	}
}
