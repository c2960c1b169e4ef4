package daemon

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/statesync-go/statesync"
)

// SetStoreOpener makes --store URLs of scheme open with open until t
// ends, so that tests can run the daemon on a store of their own.
func SetStoreOpener(t testing.TB, scheme string, open func(ctx context.Context, rawURL string, log *slog.Logger) (statesync.Store, io.Closer, error)) {
	prev, had := storeOpeners[scheme]
	storeOpeners[scheme] = open
	t.Cleanup(func() {
		if had {
			storeOpeners[scheme] = prev
		} else {
			delete(storeOpeners, scheme)
		}
	})
}

// RedactURL is redactURL.
var RedactURL = redactURL
