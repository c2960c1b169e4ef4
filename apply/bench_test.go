package apply_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/apply"
)

var benchData = json.RawMessage(`{"a":1,"b":2,"c":3,"config":{"theme":"dark","lang":"en"},"tags":{"x":"y"},"list":[1,2,3,4],"count":"42"}`)

// BenchmarkLoadParallel measures reads while nothing is applied: one atomic
// load per call, whatever the number of readers.
func BenchmarkLoadParallel(b *testing.B) {
	m, _ := apply.NewMap[any](nil)
	m.Apply(context.Background(), statesync.Snapshot{Revision: 1, Data: benchData})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if m.Load()["a"] != 1.0 {
				b.Fatal("wrong value")
			}
		}
	})
}

func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	v := apply.NewValue[settings](nil)
	m, _ := apply.NewMap[any](nil)
	raw, _ := apply.NewMap[json.RawMessage](nil)
	s, _ := apply.NewStruct[settings](nil)
	sr, _ := apply.NewStruct(&apply.StructOptions[settings]{Mode: apply.Replace, OmitKeys: []string{"b"}})
	for _, bb := range []struct {
		name string
		a    statesync.Applier
	}{{"Value", v}, {"MapAny", m}, {"MapRaw", raw}, {"StructPatch", s}, {"StructReplace", sr}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			var rev statesync.Revision
			for b.Loop() {
				rev++
				if err := bb.a.Apply(ctx, statesync.Snapshot{Revision: rev, Data: benchData}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
