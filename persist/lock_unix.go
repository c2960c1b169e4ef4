//go:build unix

package persist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/statesync-go/statesync/internal/sleep"
)

// lockFile takes an exclusive advisory lock (flock) on path, creating it,
// waiting until ctx ends. Locks conflict between processes and between
// open files of one process.
func lockFile(ctx context.Context, path string, mode os.FileMode) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return nil, fmt.Errorf("persist: lock: %w", err)
	}
	delay := 100 * time.Microsecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("persist: lock %s: %w", path, err)
		}
		if err := sleep.For(ctx, delay); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
		}
		delay = min(delay*2, 20*time.Millisecond)
	}
}
