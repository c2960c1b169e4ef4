//go:build !unix

package persist

import (
	"context"
	"os"
	"sync"
)

// lockMu stands in for file locks where flock is not available: it
// serialises SaveIfNewer within this process only.
var lockMu sync.Mutex

func lockFile(ctx context.Context, path string, mode os.FileMode) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lockMu.Lock()
	return lockMu.Unlock, nil
}
