//go:build unix

package daemon

import "syscall"

// openFileLimit returns the soft limit of open files of the process, or 0
// if it is unknown or unlimited.
func openFileLimit() int {
	var rl syscall.Rlimit
	// Above 2^30 is as good as unlimited (RLIM_INFINITY included).
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}
