package apply_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/apply"
	"github.com/statesync-go/statesync/memsync"
)

// A Value kept up to date by a consumer: readers call Load from any
// goroutine, and Wait blocks until the state they need has arrived.
func ExampleValue() {
	type Settings struct {
		Theme string `json:"theme"`
		Font  int    `json:"font"`
	}
	ctx := context.Background()
	src, _ := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	defer src.Close()
	bus := memsync.New(src)
	defer bus.Close()

	settings := apply.NewValue(&apply.ValueOptions[Settings]{Initial: Settings{Theme: "light", Font: 12}})
	c, _ := statesync.NewConsumer("settings", bus, bus, settings, nil)
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	defer c.Stop()

	w, _ := src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark","font":14}`))
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := settings.Wait(waitCtx, func(_ Settings, rev statesync.Revision) bool { return rev >= w.Revision })
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v at revision %d\n", s, settings.Revision())
	// Output:
	// {Theme:dark Font:14} at revision 1
}

// OnChange callbacks see each applied value with the one it replaced.
func ExampleValue_OnChange() {
	counter := apply.NewValue[int](nil)
	counter.OnChange(func(old, new int) { fmt.Println(old, "→", new) })
	for rev, data := range []string{"1", "5", "7"} {
		counter.Apply(context.Background(), statesync.Snapshot{Revision: statesync.Revision(rev + 1), Data: json.RawMessage(data)})
	}
	// Output:
	// 0 → 1
	// 1 → 5
	// 5 → 7
}

// A Changes channel holds only the latest value: a reader that falls behind
// skips to it, and Apply never waits for the reader.
func ExampleValue_Changes() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := apply.NewValue[string](nil)
	ch := v.Changes(ctx)
	for rev, data := range []string{`"a"`, `"b"`, `"c"`} {
		v.Apply(ctx, statesync.Snapshot{Revision: statesync.Revision(rev + 1), Data: json.RawMessage(data)})
	}
	fmt.Println(<-ch)
	// Output:
	// c
}

// Patch mode sets the keys present in a snapshot; keys outside PickKeys are
// left alone.
func ExampleMap() {
	m, _ := apply.NewMap(&apply.MapOptions[any]{
		PickKeys: []string{"theme", "lang"},
		Initial:  map[string]any{"theme": "light", "lang": "en", "local": true},
	})
	m.Apply(context.Background(), statesync.Snapshot{Revision: 1, Data: json.RawMessage(`{"theme":"dark","local":false}`)})
	fmt.Println(m.Load())
	// Output:
	// map[lang:en local:true theme:dark]
}

// Replace mode makes the allowed keys exactly those of the snapshot, and
// keeps the keys OmitKeys protects.
func ExampleMap_replace() {
	m, _ := apply.NewMap(&apply.MapOptions[any]{
		Mode:     apply.Replace,
		OmitKeys: []string{"draft"},
		Initial:  map[string]any{"a": 1, "b": 2, "draft": "unsaved"},
	})
	m.Apply(context.Background(), statesync.Snapshot{Revision: 1, Data: json.RawMessage(`{"a":10}`)})
	fmt.Println(m.Load())
	// Output:
	// map[a:10 draft:unsaved]
}

// ToState maps the snapshot to the state, here an envelope to its payload;
// Lenient ignores data that is not an object, such as a deleted topic's
// null.
func ExampleMapOptions_toState() {
	m, _ := apply.NewMap(&apply.MapOptions[any]{
		Lenient: true,
		ToState: func(data json.RawMessage, _ *apply.Map[any]) (any, error) {
			var env struct {
				Payload json.RawMessage `json:"payload"`
			}
			if string(data) == "null" {
				return nil, nil
			}
			err := json.Unmarshal(data, &env)
			return env.Payload, err
		},
	})
	ctx := context.Background()
	m.Apply(ctx, statesync.Snapshot{Revision: 1, Data: json.RawMessage(`{"payload":{"n":1},"meta":"x"}`)})
	m.Apply(ctx, statesync.Snapshot{Revision: 2, Data: json.RawMessage(`null`)})
	fmt.Println(m.Load(), m.Revision())
	// Output:
	// map[n:1] 1
}

// A Struct's keys are its JSON field names; in Patch mode a snapshot sets
// only the fields it holds.
func ExampleStruct() {
	type Prefs struct {
		Theme  string `json:"theme"`
		Volume int    `json:"volume"`
		Muted  bool   `json:"muted"`
	}
	p, _ := apply.NewStruct(&apply.StructOptions[Prefs]{Initial: Prefs{Theme: "light", Volume: 5}})
	p.Apply(context.Background(), statesync.Snapshot{Revision: 1, Data: json.RawMessage(`{"volume":0,"muted":true}`)})
	fmt.Printf("%+v\n", p.Load())
	// Output:
	// {Theme:light Volume:0 Muted:true}
}
