package statesync_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// A consumer logs through any [log/slog] handler. Here a text handler
// writes one line per record at info level and above, without the time (to
// keep the output stable), and With adds tags to every record: the window
// the consumer runs in. The engine adds component=statesync and the topic.
func ExampleConsumerOptions_logger() {
	ctx := context.Background()
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()

	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime})).
		With("windowId", "main")
	app := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil })
	c, _ := statesync.NewConsumer("settings", bus, bus, app, &statesync.ConsumerOptions{Logger: log})
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	defer c.Stop()

	// A malformed invalidation is reported at error level, and dropped.
	bus.PublishRaw("settings", []byte(`{"topic":"","revision":"2"}`))
	// Output:
	// level=ERROR msg="protocol error" windowId=main component=statesync topic=settings phase=protocol error="statesync: invalid payload: empty topic in invalidation event" localRevision=0 sourceEvent="{\"topic\":\"\",\"revision\":\"2\"}"
}
