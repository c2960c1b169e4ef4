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
		defer p.Close(ctx) // saves what is pending
		c, _ := statesync.NewConsumer("settings", memsync.New(nil), prov, p, nil)
		defer c.Stop()
		_, err := persist.StartWithCache(ctx, c, p)
		fmt.Printf("started: %v; consumer at revision %d\n", err != nil, c.Revision())
	}

	run(statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) {
		return statesync.Snapshot{Revision: 7, Epoch: "e1", Data: json.RawMessage(`{"theme":"dark"}`)}, nil
	}))
	run(statesync.ProviderFunc(func(context.Context, string) (statesync.Snapshot, error) {
		return statesync.Snapshot{}, errors.New("connection refused")
	}))
	// Output:
	// applied revision 7: {"theme":"dark"}
	// started: false; consumer at revision 7
	// applied revision 7: {"theme":"dark"}
	// started: true; consumer at revision 7
}

// Records of an older schema are migrated on load, checked, and written
// back with the current version.
func ExampleMigrationBuilder() {
	migs, err := (&persist.MigrationBuilder{}).
		AddMigration(1, persist.MapStep(func(m map[string]any) (map[string]any, error) {
			m["lang"] = "en" // v2 added a language
			return m, nil
		})).
		Build(2)
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
