package memsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// printer is a [statesync.InvalidationHandler] that prints what it receives.
type printer struct{ name string }

func (p printer) Invalidate(inv statesync.Invalidation) {
	fmt.Printf("%s: %s is now at revision %d\n", p.name, inv.Topic, inv.Revision)
}

func (p printer) InvalidateRaw(payload []byte) {
	fmt.Printf("%s: raw %s\n", p.name, payload)
}

// A Bus made without a Source is a plain in-process fan-out: Publish calls
// the handlers of the invalidation's topic, synchronously, before it
// returns, and no other handler.
func ExampleBus_Publish() {
	ctx := context.Background()
	bus := memsync.New(nil)

	unsubscribe, err := bus.Subscribe(ctx, "settings", printer{name: "a"})
	if err != nil {
		panic(err)
	}
	bus.Subscribe(ctx, "cart", printer{name: "b"})

	bus.Publish(statesync.Invalidation{Topic: "settings", Revision: 7})
	bus.PublishRaw("cart", []byte(`{"topic":"cart","revision":"3"}`))
	fmt.Println("settings subscribers:", bus.Subscribers("settings"))

	unsubscribe()
	bus.Publish(statesync.Invalidation{Topic: "settings", Revision: 8}) // nobody listens any more
	fmt.Println("settings subscribers:", bus.Subscribers("settings"))
	// Output:
	// a: settings is now at revision 7
	// b: raw {"topic":"cart","revision":"3"}
	// settings subscribers: 1
	// settings subscribers: 0
}

// A Bus made with a Source carries the Source's invalidations and serves its
// snapshots, so one value is both the Subscriber and the Provider of every
// consumer in the process. Each consumer converges on the latest revision.
func ExampleNew() {
	ctx := context.Background()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()

	var consumers []*statesync.Consumer
	applied := make(chan string, 16)
	for _, name := range []string{"window-1", "window-2"} {
		c, err := statesync.NewConsumer("settings", bus, bus, statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
			if s.Revision > 0 { // skip the initial null state at revision 0
				applied <- fmt.Sprintf("%s applied revision %d: %s", name, s.Revision, s.Data)
			}
			return nil
		}), nil)
		if err != nil {
			panic(err)
		}
		if err := c.Start(ctx); err != nil {
			panic(err)
		}
		consumers = append(consumers, c)
	}
	fmt.Println("subscribers:", bus.Subscribers("settings"))

	if _, err := src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`)); err != nil {
		panic(err)
	}
	// The two consumers refresh concurrently: sort their reports.
	a, b := <-applied, <-applied
	if a > b {
		a, b = b, a
	}
	fmt.Println(a)
	fmt.Println(b)

	for _, c := range consumers {
		// The applier reported before the engine adopted the revision: a
		// Refresh returns after a run begun later, so after that adoption.
		if err := c.Refresh(ctx); err != nil {
			panic(err)
		}
		c.Stop()
		c.Wait(ctx)
		fmt.Println(c.Topic(), "stopped at revision", c.Revision())
	}
	fmt.Println("subscribers:", bus.Subscribers("settings"))
	// Output:
	// subscribers: 2
	// window-1 applied revision 1: {"theme":"dark"}
	// window-2 applied revision 1: {"theme":"dark"}
	// settings stopped at revision 1
	// settings stopped at revision 1
	// subscribers: 0
}

// A writer that is also a consumer of the topic it writes need not pull its
// own write back: it tags the write with its source id, skips invalidations
// carrying that id with ShouldRefresh, and hands the snapshot the write
// returned to [statesync.Consumer.Offer], which applies it through the same
// revision gate as a refresh.
func ExampleNew_writeEcho() {
	ctx := context.Background()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()

	var fetches atomic.Int32
	provider := statesync.ProviderFunc(func(ctx context.Context, topic string) (statesync.Snapshot, error) {
		fetches.Add(1)
		return bus.Snapshot(ctx, topic)
	})
	const me = "window-1"
	c, err := statesync.NewConsumer("settings", bus, provider, statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		fmt.Printf("applied revision %d: %s\n", s.Revision, s.Data)
		return nil
	}), &statesync.ConsumerOptions{
		ShouldRefresh: func(inv statesync.Invalidation) bool { return inv.SourceID != me },
	})
	if err != nil {
		panic(err)
	}
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	defer c.Wait(ctx)
	defer c.Stop()

	snap, err := src.Put(statesync.WithSourceID(ctx, me), "settings", json.RawMessage(`{"theme":"dark"}`))
	if err != nil {
		panic(err)
	}
	if err := c.Offer(ctx, snap); err != nil {
		panic(err)
	}
	fmt.Println("revision:", c.Revision(), "fetches:", fetches.Load())
	// Output:
	// applied revision 0: null
	// applied revision 1: {"theme":"dark"}
	// revision: 1 fetches: 1
}

// With InlineRefresh, a consumer refreshes inside the Source's write (on
// the writer's goroutine), so when Put returns every such consumer in the
// process has applied the write: no waiting, no goroutine hand-off.
func ExampleNew_inlineRefresh() {
	ctx := context.Background()
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()

	var current atomic.Value // what the consumer last applied
	c, err := statesync.NewConsumer("flags", bus, bus, statesync.ApplierFunc(func(ctx context.Context, s statesync.Snapshot) error {
		current.Store(string(s.Data))
		return nil
	}), &statesync.ConsumerOptions{InlineRefresh: true})
	if err != nil {
		panic(err)
	}
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	defer c.Stop()

	for _, v := range []string{`{"beta":false}`, `{"beta":true}`} {
		if _, err := src.Put(ctx, "flags", json.RawMessage(v)); err != nil {
			panic(err)
		}
		fmt.Printf("after Put: revision %d, %s\n", c.Revision(), current.Load())
	}
	// Output:
	// after Put: revision 1, {"beta":false}
	// after Put: revision 2, {"beta":true}
}
