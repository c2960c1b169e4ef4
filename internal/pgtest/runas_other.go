//go:build !unix

package pgtest

import osexec "os/exec"

// runAs does nothing where processes have no Unix credentials: a cluster
// takes a credential only when running as root (os.Geteuid() == 0), which
// is never the case there (Geteuid returns -1).
func runAs(*osexec.Cmd, *credential) {}
