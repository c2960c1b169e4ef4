package memsync_test

import (
	"context"
	"slices"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/memsync"
)

// recorder is a handler that records the revisions (and raw payloads) it
// is given.
type recorder struct {
	revs []statesync.Revision
	raws []string
}

func (r *recorder) Invalidate(inv statesync.Invalidation) { r.revs = append(r.revs, inv.Revision) }
func (r *recorder) InvalidateRaw(p []byte)                { r.raws = append(r.raws, string(p)) }

// Publish remembers the topic it delivered to last, to skip the topic
// lookup when the next publish is for the same topic: deliveries still go
// to the handlers of the topic published, whatever the order of topics,
// subscriptions and unsubscriptions, for Publish and PublishRaw alike.
func TestPublishDeliversToTheTopicPublished(t *testing.T) {
	bus := memsync.New(nil)
	ctx := context.Background()
	var a, b, c recorder
	unsubA, err := bus.Subscribe(ctx, "a", &a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Subscribe(ctx, "b", &b); err != nil {
		t.Fatal(err)
	}
	bus.Publish(statesync.Invalidation{Topic: "a", Revision: 1})
	bus.Publish(statesync.Invalidation{Topic: "a", Revision: 2}) // same topic: from the remembered entry
	bus.Publish(statesync.Invalidation{Topic: "b", Revision: 3})
	bus.Publish(statesync.Invalidation{Topic: "nobody", Revision: 4}) // no subscriber: dropped
	bus.Publish(statesync.Invalidation{Topic: "b", Revision: 5})
	bus.Publish(statesync.Invalidation{Topic: "a", Revision: 6})
	// A topic subscribed after another was remembered.
	if _, err := bus.Subscribe(ctx, "c", &c); err != nil {
		t.Fatal(err)
	}
	bus.Publish(statesync.Invalidation{Topic: "c", Revision: 7})
	bus.Publish(statesync.Invalidation{Topic: "a", Revision: 8})
	unsubA()
	bus.Publish(statesync.Invalidation{Topic: "a", Revision: 9}) // unsubscribed: not delivered
	bus.PublishRaw("b", []byte(`raw-b`))
	bus.PublishRaw("b", []byte(`raw-b2`))
	bus.PublishRaw("c", []byte(`raw-c`))
	bus.PublishRaw("nobody", []byte(`raw-x`))
	// Topics that share a prefix, or differ only in length, are different.
	bus.Publish(statesync.Invalidation{Topic: "bb", Revision: 10})
	bus.Publish(statesync.Invalidation{Topic: "", Revision: 11})

	for _, tc := range []struct {
		name string
		got  []statesync.Revision
		want []statesync.Revision
	}{
		{"a", a.revs, []statesync.Revision{1, 2, 6, 8}},
		{"b", b.revs, []statesync.Revision{3, 5}},
		{"c", c.revs, []statesync.Revision{7}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("topic %s got revisions %v; want %v", tc.name, tc.got, tc.want)
		}
	}
	if !slices.Equal(b.raws, []string{"raw-b", "raw-b2"}) || !slices.Equal(c.raws, []string{"raw-c"}) || len(a.raws) != 0 {
		t.Errorf("raw payloads: a %q, b %q, c %q", a.raws, b.raws, c.raws)
	}
}
