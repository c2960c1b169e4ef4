package boltstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
)

// A Source over a bolt file: the state and its revisions survive a restart,
// and the restarted store has a new epoch.
func Example() {
	dir, _ := os.MkdirTemp("", "statesync")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "statesync.db")
	ctx := context.Background()

	store, err := boltstore.Open(path, nil)
	if err != nil {
		panic(err)
	}
	src, _ := statesync.NewSource(store, nil)
	src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`))
	snap, _ := src.Put(ctx, "settings", json.RawMessage(`{"theme":"light"}`))
	fmt.Println("before restart:", snap.Revision, string(snap.Data))
	firstEpoch := store.Epoch()
	src.Close()
	store.Close()

	store, err = boltstore.Open(path, nil) // the daemon restarts
	if err != nil {
		panic(err)
	}
	defer store.Close()
	src, _ = statesync.NewSource(store, nil)
	defer src.Close()
	snap, _ = src.Snapshot(ctx, "settings")
	fmt.Println("after restart:", snap.Revision, string(snap.Data))
	fmt.Println("new epoch:", snap.Epoch != firstEpoch)
	snap, _ = src.Put(ctx, "settings", json.RawMessage(`{"theme":"blue"}`))
	fmt.Println("next write:", snap.Revision)
	// Output:
	// before restart: 2 {"theme":"light"}
	// after restart: 2 {"theme":"light"}
	// new epoch: true
	// next write: 3
}

// A second process (or a second Open in this one) cannot use a file in
// use: Open fails after Options.Timeout instead of waiting forever.
func ExampleOpen_locked() {
	dir, _ := os.MkdirTemp("", "statesync")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "statesync.db")

	first, err := boltstore.Open(path, nil)
	if err != nil {
		panic(err)
	}
	defer first.Close()
	_, err = boltstore.Open(path, &boltstore.Options{Timeout: 50 * time.Millisecond})
	fmt.Println(errors.Is(err, boltstore.ErrLocked))
	// Output:
	// true
}
