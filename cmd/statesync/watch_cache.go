package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/procsync"
)

// watchCache is watch's --cache: the last snapshot of each topic is kept
// in a file of the cache directory (persist.FileStorage), printed at once
// when watch starts, even with the server down, and replaced as newer
// snapshots are applied. Several watch processes sharing the directory
// tell each other about their saves over a procsync.SocketBus in its
// ".bus" subdirectory. A nil *watchCache (no --cache) does nothing.
type watchCache struct {
	dir        string
	log        *slog.Logger
	bus        *procsync.SocketBus // nil if sockets are unavailable
	persisters map[string]*persist.Persister
	peers      []*procsync.Peer
}

// openWatchCache opens the cache of dir, or returns nil if dir is "".
func openWatchCache(dir string, log *slog.Logger) (*watchCache, error) {
	if dir == "" {
		return nil, nil
	}
	if _, err := persist.NewFileStorage(dir, "probe", nil); err != nil { // creates dir, checks access
		return nil, err
	}
	w := &watchCache{dir: dir, log: log, persisters: map[string]*persist.Persister{}}
	bus, err := procsync.OpenSocketBus(filepath.Join(dir, ".bus"))
	if err != nil {
		log.Info("cache: no cross-process updates", slog.Any("error", err))
	} else {
		w.bus = bus
	}
	return w, nil
}

// wrap returns the applier that prints with app and saves to the cache.
func (w *watchCache) wrap(topic string, app statesync.Applier) statesync.Applier {
	if w == nil {
		return app
	}
	store, err := persist.NewFileStorage(w.dir, topic, nil)
	if err != nil {
		w.log.Error("cache: topic not cached", slog.String("topic", topic), slog.Any("error", err))
		return app
	}
	o := &persist.Options{
		Topic: topic, Hash: true,
		OnError: func(e *persist.Error) {
			w.log.Warn("cache", slog.String("topic", topic), slog.String("op", string(e.Op)), slog.Any("error", e.Err))
		},
	}
	p, err := persist.New(store, app, o)
	if err != nil {
		w.log.Error("cache: topic not cached", slog.String("topic", topic), slog.Any("error", err))
		return app
	}
	w.persisters[topic] = p
	if w.bus != nil {
		peer, err := procsync.Join(p, w.bus, procsync.ChannelName(topic), nil)
		if err != nil {
			w.log.Info("cache: no cross-process updates", slog.String("topic", topic), slog.Any("error", err))
		} else {
			w.peers = append(w.peers, peer)
		}
	}
	return p
}

// hydrate offers the cached snapshot of topic to cons (which prints it)
// before cons starts: cons then applies only newer snapshots.
func (w *watchCache) hydrate(ctx context.Context, topic string, cons *statesync.Consumer) {
	if w == nil || w.persisters[topic] == nil {
		return
	}
	p := w.persisters[topic]
	info, err := p.Restore(ctx, cons)
	if err == nil && info.Applied {
		w.log.Info("cache: printed the cached snapshot", slog.String("topic", topic),
			slog.String("revision", info.Meta.Revision.String()), slog.Duration("age", info.Age))
	}
}

// Close saves what is pending and closes the cache.
func (w *watchCache) Close() {
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, peer := range w.peers {
		_ = peer.Close()
	}
	for _, p := range w.persisters {
		_ = p.Shutdown(ctx)
	}
	if w.bus != nil {
		_ = w.bus.Close()
	}
}
