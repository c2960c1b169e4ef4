package persist_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
	"github.com/statesync-go/statesync/persist"
)

// A consumer with a file cache: the first run saves what it applies; the
// next one, started while the source is down, comes up at once with the
// cached state, revision and epoch.
func Example() {
	dir, _ := os.MkdirTemp("", "cache")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	show := statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
		fmt.Printf("applied revision %d: %s\n", s.Revision, s.Data)
		return nil
	})
	run := func(prov statesync.Provider) {
		store, _ := persist.NewFileStorage(dir, "settings", nil)
		p, _ := persist.New(store, show, &persist.Options{Topic: "settings", Hash: true})
		defer p.Shutdown(ctx) // saves what is pending
		c, _ := statesync.NewConsumer("settings", memsync.New(nil), prov, p, nil)
		defer c.Stop()
		if _, err := p.Restore(ctx, c); err != nil { // apply the cache first
			fmt.Println("no usable cache:", err)
		}
		err := c.Start(ctx) // then subscribe and refresh
		fmt.Printf("start failed: %v; consumer at revision %d\n", err != nil, c.Revision())
	}

	run(statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) {
		return statesync.Snapshot{Revision: 7, Epoch: "e1", Data: json.RawMessage(`{"theme":"dark"}`)}, nil
	}))
	run(statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) {
		return statesync.Snapshot{}, errors.New("connection refused")
	}))
	// Output:
	// applied revision 7: {"theme":"dark"}
	// start failed: false; consumer at revision 7
	// applied revision 7: {"theme":"dark"}
	// start failed: true; consumer at revision 7
}

// Restore offers the cached snapshot to a consumer before it starts: the
// consumer adopts the cached revision, so the source's snapshot is applied
// only if it is newer.
func ExamplePersister_Restore() {
	ctx := context.Background()
	store := persist.NewMemoryStorage(&persist.MemoryOptions{
		Initial: &statesync.Snapshot{Revision: 4, Data: json.RawMessage(`"cached"`)},
	})
	show := statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
		fmt.Printf("applied %d: %s\n", s.Revision, s.Data)
		return nil
	})
	p, _ := persist.New(store, show, nil)
	defer p.Close()
	source := statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) {
		return statesync.Snapshot{Revision: 5, Data: json.RawMessage(`"fresh"`)}, nil
	})
	c, _ := statesync.NewConsumer("settings", memsync.New(nil), source, p, nil)
	defer c.Stop()

	info, err := p.Restore(ctx, c)
	fmt.Println("restored:", info.Applied, err)
	fmt.Println("start:", c.Start(ctx))
	// Output:
	// applied 4: "cached"
	// restored: true <nil>
	// applied 5: "fresh"
	// start: <nil>
}

// Records of an older schema are migrated on load, checked, and written
// back with the current version.
func ExampleNewMigrations() {
	migs, err := persist.NewMigrations(2, map[int]persist.MigrationStep{
		1: persist.TypedStep(func(m map[string]any) (map[string]any, error) {
			m["lang"] = "en" // v2 added a language
			return m, nil
		}),
	}, nil)
	if err != nil {
		panic(err)
	}
	store := persist.NewMemoryStorage(nil)
	old, _ := persist.NewRecord(statesync.Snapshot{Revision: 3, Data: json.RawMessage(`{"theme":"dark"}`)}, &persist.RecordOptions{SchemaVersion: 1})
	store.Save(context.Background(), old)

	snap, info, err := persist.Load(context.Background(), store, nil, &persist.LoadOptions{Migrations: migs})
	fmt.Println(string(snap.Data), err)
	fmt.Printf("migrated %d→%d, written back: %v\n", info.FromVersion, info.ToVersion, info.WrittenBack)
	// Output:
	// {"lang":"en","theme":"dark"} <nil>
	// migrated 1→2, written back: true
}
