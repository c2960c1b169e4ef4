package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/boltstore"
)

// A storeOpener opens the store a --store URL names. The io.Closer closes
// it once the daemon's Source is closed.
type storeOpener func(ctx context.Context, rawURL string, log *slog.Logger) (statesync.Store, io.Closer, error)

// storeOpeners maps the schemes of --store to their stores. Only tests
// change it (export_test.go).
var storeOpeners = map[string]storeOpener{
	"bbolt":      openBolt,
	"memory":     openMemory,
	"postgres":   openPostgres,
	"postgresql": openPostgres,
	"nats":       openNATS,
	"tls":        openNATS,
	"redis":      openRedis,
	"rediss":     openRedis,
}

// storeScheme returns the scheme of a --store URL, lower-cased, if a store
// of storeOpeners serves it. Its errors never hold the URL, which may
// hold a password.
func storeScheme(raw string) (string, error) {
	if s := natsScheme(raw); s != "" && storeOpeners[s] != nil {
		return s, nil // several servers: not always a URL url.Parse takes
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// url.Parse's error quotes the URL: not repeated here.
		return "", fmt.Errorf("serve: --store must be a URL (%s)", supportedStores())
	}
	scheme := strings.ToLower(u.Scheme)
	if storeOpeners[scheme] == nil {
		return "", fmt.Errorf("serve: --store: unknown scheme %q (%s)", scheme, supportedStores())
	}
	return scheme, nil
}

// supportedStores lists the schemes of storeOpeners.
func supportedStores() string {
	var list []string
	for s := range storeOpeners {
		switch s {
		case "bbolt":
			list = append(list, "bbolt:DIR")
		case "memory":
			list = append(list, "memory:")
		default:
			list = append(list, s+"://…")
		}
	}
	slices.Sort(list)
	return "supported: " + strings.Join(list, ", ")
}

// redactURL returns raw for logs: its passwords, in the user information
// or in a password or sslpassword query parameter, replaced by xxxxx, and
// a URL in a feed_url parameter (pgstore's and redisstore's) redacted the
// same way; NATS URLs as redactNATS does.
func redactURL(raw string) string {
	if natsScheme(raw) != "" {
		return redactNATS(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(a malformed URL)"
	}
	if u.RawQuery != "" {
		q, changed := u.Query(), false
		for k, vs := range q {
			switch strings.ToLower(k) {
			case "password", "sslpassword":
				for i := range vs {
					vs[i] = "xxxxx"
				}
				changed = true
			case "feed_url":
				for i := range vs {
					vs[i] = redactURL(vs[i])
				}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// openStore opens the store of cfg: --store, else memory or the bbolt file
// in --data. desc describes it for the logs, without any password.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (store statesync.Store, closer io.Closer, desc string, err error) {
	raw := cfg.Store
	switch {
	case raw == "" && cfg.Memory:
		store, closer, _ = openMemory(ctx, "", log)
		return store, closer, "memory", nil
	case raw == "":
		store, closer, err = openBoltDir(cfg.Data)
		if err != nil {
			return nil, nil, "", fmt.Errorf("serve: %w", err)
		}
		return store, closer, "bbolt " + filepath.Join(cfg.Data, "statesync.db"), nil
	}
	scheme, err := storeScheme(raw)
	if err != nil {
		return nil, nil, "", err
	}
	desc = redactURL(raw)
	store, closer, err = storeOpeners[scheme](ctx, raw, log)
	if err != nil {
		return nil, nil, "", fmt.Errorf("serve: opening store %s: %w", desc, err)
	}
	return store, closer, desc, nil
}

// nopCloser closes nothing.
type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func openMemory(context.Context, string, *slog.Logger) (statesync.Store, io.Closer, error) {
	return statesync.NewMemoryStore(nil), nopCloser{}, nil
}

// openBolt opens the bbolt file statesync.db in the directory of a
// bbolt:DIR (or bbolt:///abs/dir) URL, creating the directory.
func openBolt(_ context.Context, raw string, _ *slog.Logger) (statesync.Store, io.Closer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, errors.New("malformed URL")
	}
	dir := u.Path
	if u.Opaque != "" {
		if dir, err = url.PathUnescape(u.Opaque); err != nil {
			return nil, nil, errors.New("malformed URL")
		}
	}
	if dir == "" {
		return nil, nil, errors.New("name a directory: bbolt:DIR")
	}
	return openBoltDir(dir)
}

// openBoltDir opens the bbolt file statesync.db in dir, creating dir.
func openBoltDir(dir string) (statesync.Store, io.Closer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, "statesync.db")
	bs, err := boltstore.Open(path, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return bs, bs, nil
}
