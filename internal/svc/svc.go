// Package svc decides what a test does when a service it needs (a server,
// a program) is not there: it skips, unless STATESYNC_REQUIRE_SERVICES is
// set (as .ci/run does); then the test fails, so that CI never passes by
// skipping.
package svc

import (
	"os"
	"testing"
)

// EnvRequire names the environment variable that, when set (to anything
// but the empty string), makes a missing service a failure, not a skip.
const EnvRequire = "STATESYNC_REQUIRE_SERVICES"

// Missing skips t with the message format, args, or fails t with it when
// [EnvRequire] is set. Either way t stops, unless its Skipf and Fatalf
// return.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequire) != "" {
		t.Fatalf(EnvRequire+" is set but "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// URL returns the value of the environment variable env, the URL of a
// server for tests. When it is unset or empty it calls [Missing], and
// returns "" if t goes on.
func URL(t testing.TB, env string) string {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		Missing(t, "%s is not set (.ci/services starts a server and sets it)", env)
	}
	return u
}
