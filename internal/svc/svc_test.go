package svc_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/internal/svc"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// stopping.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		require             string
		wantSkip, wantFatal string
	}{
		{require: "", wantSkip: "no x: 1"},
		{require: "1", wantFatal: svc.EnvRequire + " is set but no x: 1"},
		{require: "no", wantFatal: svc.EnvRequire + " is set but no x: 1"},
	} {
		t.Setenv(svc.EnvRequire, tc.require)
		r := &recorder{TB: t}
		svc.Missing(r, "no x: %d", 1)
		if r.skipped != tc.wantSkip || r.failed != tc.wantFatal {
			t.Errorf("Missing with %s=%q: skipped %q, failed %q; want %q, %q",
				svc.EnvRequire, tc.require, r.skipped, r.failed, tc.wantSkip, tc.wantFatal)
		}
	}
}

func TestURL(t *testing.T) {
	const env = "STATESYNC_TEST_SVC_URL"
	const u = "redis://x:1/0"
	for _, tc := range []struct {
		name, url, require string
		want               string
		skip, fail         bool
	}{
		{name: "Set", url: u, want: u},
		{name: "SetRequired", url: u, require: "1", want: u},
		{name: "Unset", skip: true},
		{name: "UnsetRequired", require: "1", fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(env, tc.url)
			t.Setenv(svc.EnvRequire, tc.require)
			r := &recorder{TB: t}
			if got := svc.URL(r, env); got != tc.want {
				t.Errorf("URL() = %q; want %q", got, tc.want)
			}
			if (r.skipped != "") != tc.skip {
				t.Errorf("skipped: %q; want skipped %v", r.skipped, tc.skip)
			}
			if (r.failed != "") != tc.fail {
				t.Errorf("failed: %q; want failed %v", r.failed, tc.fail)
			}
			if msg := r.skipped + r.failed; msg != "" && !strings.Contains(msg, env) {
				t.Errorf("message %q does not name %s", msg, env)
			}
		})
	}
}
