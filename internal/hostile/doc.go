// Package hostile holds the hostile-client tests of the daemon: what a
// malicious or careless client sends (stalled bodies, deep JSON, readers
// that never read, tokens reaching past their grants), run against a real
// daemon on a loopback port. The package has no code of its own; its tests
// log the figures they measure, and CI prints them with go test -v.
package hostile
