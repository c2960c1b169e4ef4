package natsstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/natsstore"
)

// Two daemons on one bucket of a three-server cluster: a write through one
// is reported to the watchers of the other. (Needs servers, so it is only
// compiled.)
func Example() {
	ctx := context.Background()
	url := "nats://nats1:4222,nats2:4222,nats3:4222?bucket=statesync&replicas=3&feed_probe=5s"
	a, err := natsstore.Open(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := natsstore.Open(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	seen := make(chan statesync.Record, 16)
	stop, err := b.Watch(ctx, func(r statesync.Record) {
		select {
		case seen <- r:
		default: // a Watch function must not block
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	rec, err := a.Write(ctx, statesync.Write{Topic: "settings", Data: json.RawMessage(`{"theme":"dark"}`), SourceID: "daemon-a"})
	if err != nil {
		log.Fatal(err)
	}
	for {
		select {
		case r := <-seen:
			if r.Resync || r.Topic != rec.Topic {
				continue
			}
			fmt.Println(r.Topic, r.Revision == rec.Revision, r.SourceID, b.FeedStatus().Connected)
			return
		case <-time.After(5 * time.Second):
			log.Fatal("not seen")
		}
	}
}
