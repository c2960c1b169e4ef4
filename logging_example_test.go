package statesync_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// The console logger writes one line per record: the prefix, the level, the
// message and the attributes. Debug records are dropped unless
// ConsoleOptions.Debug is set.
func ExampleNewConsoleLogger() {
	log := statesync.NewConsoleLogger(os.Stdout, nil)
	log.Debug("not shown: debug is off")
	log.Info("applied snapshot", "topic", "settings", "revision", "42")
	log.Warn("getSnapshot retry scheduled", slog.Int("attempt", 1),
		slog.Duration("nextDelay", 500*time.Millisecond), slog.String("error", "connection refused"))
	// Output:
	// [state-sync] INFO applied snapshot topic=settings revision=42
	// [state-sync] WARN getSnapshot retry scheduled attempt=1 nextDelay=500ms error="connection refused"
}

// A consumer logging through the console logger: the engine's messages
// carry no prefix of their own, so the prefix appears once per line.
func ExampleNewConsoleLogger_consumer() {
	ctx := context.Background()
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()

	log := statesync.NewConsoleLogger(os.Stdout, nil) // info and above
	app := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil })
	c, _ := statesync.NewConsumer("settings", bus, bus, app, &statesync.ConsumerOptions{Logger: log})
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	defer c.Stop()

	// A malformed invalidation is reported at error level, and dropped.
	bus.PublishRaw("settings", []byte(`{"topic":"","revision":"2"}`))
	// Output:
	// [state-sync] ERROR protocol error component=statesync topic=settings phase=protocol error="statesync: invalid payload: empty topic in invalidation event" localRevision=0 sourceEvent="{\"topic\":\"\",\"revision\":\"2\"}"
}

// Tags are added to every record; a record's own attribute with a tag's key
// replaces the tag instead of repeating the key.
func ExampleTagLogger() {
	base := statesync.NewConsoleLogger(os.Stdout, &statesync.ConsoleOptions{Prefix: "[app]", Debug: true})
	log := statesync.TagLogger(base, slog.String("windowId", "main"), slog.String("sourceId", "w1"))
	log.Debug("write", "topic", "settings")
	log.Warn("echo from another window", "sourceId", "w2")
	// Output:
	// [app] DEBUG write windowId=main sourceId=w1 topic=settings
	// [app] WARN echo from another window windowId=main sourceId=w2
}
