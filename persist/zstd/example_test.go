package zstd_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/zstd"
)

// A Persister whose records are zstd-compressed: a load decompresses (and
// checks) them before anything is applied.
func Example() {
	ctx := context.Background()
	zc, err := zstd.New(nil)
	if err != nil {
		panic(err)
	}
	store := persist.NewMemoryStorage(nil)
	var last statesync.Snapshot
	app := statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error { last = s; return nil })
	p, err := persist.New(store, app, &persist.Options{Compressor: zc, Hash: true})
	if err != nil {
		panic(err)
	}
	data := json.RawMessage(`{"greeting":"héllo wörld 👋","items":[1,2,3,1,2,3,1,2,3,1,2,3]}`)
	if err := p.Apply(ctx, statesync.Snapshot{Revision: 9, Data: data}); err != nil {
		panic(err)
	}
	if err := p.Shutdown(ctx); err != nil { // saves what is pending
		panic(err)
	}
	rec, _, _ := store.Load(ctx)
	fmt.Printf("stored with %s: %d bytes of JSON\n", rec.Meta.Algorithm, rec.Meta.SizeBytes)

	snap, _, err := persist.Load(ctx, store, nil, &persist.LoadOptions{Compressors: []persist.Compressor{zc}})
	fmt.Println(snap.Revision, string(snap.Data), err)
	fmt.Println(string(last.Data) == string(snap.Data))
	// Output:
	// stored with zstd: 91 bytes of JSON
	// 9 {"greeting":"héllo wörld 👋","items":[1,2,3,1,2,3,1,2,3,1,2,3]} <nil>
	// true
}
