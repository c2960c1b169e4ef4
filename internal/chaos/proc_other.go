//go:build !unix

package main

import "os/exec"

// ownProcessGroup does nothing here: cancelling cmd kills the test binary
// only.
func ownProcessGroup(*exec.Cmd) {}
