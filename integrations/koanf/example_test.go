package koanfsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync/atomic"

	kjson "github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/v2"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	koanfsync "github.com/statesync-go/statesync/integrations/koanf"
)

// A service loads its configuration from a topic on a statesync server and
// hot-reloads it: the watch callback loads a new koanf instance and swaps it
// in atomically, so readers never see a half-loaded configuration.
func Example() {
	ctx := context.Background()

	// A statesync server (the daemon, here in-process on loopback).
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()
	h := httpsync.NewHandler(src, nil)
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	client, err := httpsync.NewClient(srv.URL, nil)
	if err != nil {
		panic(err)
	}
	defer client.Close()
	if _, err := client.Put(ctx, "settings", json.RawMessage(`{"log":{"level":"info"}}`)); err != nil {
		panic(err)
	}

	// The service.
	p, err := koanfsync.New(client, "settings", nil)
	if err != nil {
		panic(err)
	}
	defer p.Close()

	var cfg atomic.Pointer[koanf.Koanf]
	k := koanf.New(".")
	if err := k.Load(p, kjson.Parser()); err != nil {
		panic(err)
	}
	cfg.Store(k)
	fmt.Println("level:", cfg.Load().String("log.level"))

	reloaded := make(chan struct{}, 1)
	err = p.Watch(func(_ any, err error) {
		if err != nil {
			fmt.Println("config error:", err) // the previous configuration stays
			return
		}
		k := koanf.New(".")
		if err := k.Load(p, kjson.Parser()); err != nil {
			fmt.Println("config error:", err)
			return
		}
		cfg.Store(k)
		reloaded <- struct{}{}
	})
	if err != nil {
		panic(err)
	}

	// An operator changes the configuration (statesync put settings …).
	if _, err := client.Put(ctx, "settings", json.RawMessage(`{"log":{"level":"debug"}}`)); err != nil {
		panic(err)
	}
	<-reloaded
	fmt.Println("level:", cfg.Load().String("log.level"))
	// Output:
	// level: info
	// level: debug
}
