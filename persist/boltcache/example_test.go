package boltcache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/boltcache"
)

// One bbolt file caches the last snapshot of several topics, each under
// its own key; with Shared, several processes may use the file in turn.
func Example() {
	dir, _ := os.MkdirTemp("", "boltcache")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := boltcache.Open(filepath.Join(dir, "cache.db"), &boltcache.Options{Shared: true})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	for i, topic := range []string{"settings", "flags"} {
		store, err := db.Storage(topic)
		if err != nil {
			panic(err)
		}
		rec, err := persist.NewRecord(statesync.Snapshot{Revision: statesync.Revision(10 + i), Epoch: "e1",
			Data: json.RawMessage(fmt.Sprintf(`{"topic":%q}`, topic))}, &persist.RecordOptions{Topic: topic})
		if err != nil {
			panic(err)
		}
		if err := store.Save(ctx, rec); err != nil {
			panic(err)
		}
	}

	// Later, maybe in another process: hydrate "flags" from the file.
	store, _ := db.Storage("flags")
	snap, _, err := persist.Load(ctx, store, nil, &persist.LoadOptions{Topic: "flags"})
	fmt.Println(snap.Epoch, snap.Revision, string(snap.Data), err)
	// Output:
	// e1 11 {"topic":"flags"} <nil>
}
