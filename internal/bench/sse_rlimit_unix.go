//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// raiseOpenFiles raises the soft limit of open files (RLIMIT_NOFILE) to
// the hard limit and returns it, or an error if it is below need, naming
// both limits and what needs them.
func raiseOpenFiles(need uint64, what string) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raising the open-file limit to %d: %w", lim.Max, err)
		}
	}
	if lim.Cur < need {
		return lim.Cur, fmt.Errorf("%s needs at least %d open files; the limit is %d (hard limit %d): raise it (ulimit -Hn) or run fewer consumers (-n)",
			what, need, lim.Cur, lim.Max)
	}
	return lim.Cur, nil
}
