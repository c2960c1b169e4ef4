package daemon

import (
	"context"
	"io"
	"log/slog"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/pgstore"
)

// openPostgres opens the PostgreSQL store of a postgres:// or
// postgresql:// URL: a libpq/pgx URL plus pgstore's schema, feed_probe and
// feed_url parameters. ctx bounds the opening only.
func openPostgres(ctx context.Context, rawURL string, log *slog.Logger) (statesync.Store, io.Closer, error) {
	st, err := pgstore.Open(ctx, rawURL, &pgstore.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return st, st, nil
}
