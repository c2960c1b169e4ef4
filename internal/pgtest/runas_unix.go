//go:build unix

package pgtest

import (
	osexec "os/exec"
	"syscall"
)

// runAs makes cmd run as cred's user and group.
func runAs(cmd *osexec.Cmd, cred *credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: cred.uid, Gid: cred.gid, NoSetGroups: true}}
}
