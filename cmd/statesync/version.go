package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// runVersion runs `statesync version`: the module version and, when the
// binary was built from a VCS checkout, the commit, read from the build
// information.
func (m *Main) runVersion(_ context.Context, args []string) error {
	fs := m.newFlagSet("version", "\n\nPrints the version of statesync.")
	names, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		fmt.Fprintf(m.Stderr, "statesync version: unexpected argument %q\n", names[0])
		return errUsage
	}
	fmt.Fprintln(m.Stdout, versionString(debug.ReadBuildInfo()))
	return nil
}

// versionString formats build information as
// "statesync VERSION (go1.26, commit 0123456789ab, modified)".
func versionString(info *debug.BuildInfo, ok bool) string {
	if !ok {
		return "statesync (unknown version)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	s := "statesync " + v + " (" + info.GoVersion
	var rev, modified string
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	if rev != "" {
		s += ", commit " + rev[:min(12, len(rev))]
		if modified == "true" {
			s += ", modified"
		}
	}
	return s + ")"
}
