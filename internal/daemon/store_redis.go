package daemon

import (
	"context"
	"io"
	"log/slog"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/redisstore"
)

// openRedis opens the Redis store of a redis:// or rediss:// URL: a
// go-redis URL plus redisstore's prefix, feed_probe, feed_url,
// stream_maxlen, wait and wait_timeout parameters. ctx bounds the opening
// only.
func openRedis(ctx context.Context, rawURL string, log *slog.Logger) (statesync.Store, io.Closer, error) {
	st, err := redisstore.Open(ctx, rawURL, &redisstore.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return st, st, nil
}
