// Package sleep is the module's one way to wait for a duration unless a
// context ends first.
package sleep

import (
	"context"
	"time"
)

// For waits d, or until ctx is done if that comes first: it returns nil
// once d has elapsed, and ctx.Err() if ctx is done before. For d <= 0 it
// returns nil at once, as time.Sleep returns.
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
