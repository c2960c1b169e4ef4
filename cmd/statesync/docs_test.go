package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/internal/daemon"
)

// repoRoot is the module's root, from this package's directory.
const repoRoot = "../.."

// TestDocsUseTheDaemonsAddress: every client default, example and doc
// names the daemon's own default address, so that following one never
// connects to a port nothing listens on (issue 9, item 13: the Bubble Tea
// example said 8080 while the daemon listens on 8765).
func TestDocsUseTheDaemonsAddress(t *testing.T) {
	want := "http://" + daemon.DefaultConfig().Addr
	if defaultServer != want {
		t.Errorf("the CLI's default server is %q; want the daemon's %q", defaultServer, want)
	}
	_, port, _ := strings.Cut(daemon.DefaultConfig().Addr, ":")
	local := regexp.MustCompile(`(127\.0\.0\.1|localhost|\[::1\]):([0-9]+)`)
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") && path != repoRoot {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".go" && ext != ".md" && ext != ".js" && ext != ".html" || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range local.FindAllSubmatch(b, -1) {
			if p := string(m[2]); p != port && p != "0" && p != "1" {
				t.Errorf("%s names %s; the daemon listens on port %s", path, m[0], port)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadmeListsEveryErrorStatus: the README's list of error statuses
// holds every status the API answers with (each Code* constant of httpsync
// documents its status in a "// NNN:" comment).
func TestReadmeListsEveryErrorStatus(t *testing.T) {
	codes, err := os.ReadFile(filepath.Join(repoRoot, "httpsync", "errors.go"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(readme), "Errors are JSON")
	if !ok {
		t.Fatal(`README.md has no "Errors are JSON" paragraph`)
	}
	list, _, _ = strings.Cut(list, "\n\n")
	statuses := regexp.MustCompile(`Code\w+\s+= "[a-z_]+"\s+// ([0-9]{3}):`).FindAllStringSubmatch(string(codes), -1)
	if len(statuses) < 10 {
		t.Fatalf("found %d documented codes in httpsync/errors.go; the pattern no longer matches", len(statuses))
	}
	for _, m := range statuses {
		if !strings.Contains(list, m[1]) {
			t.Errorf("README's error paragraph does not list %s (%s)", m[1], strings.TrimSpace(m[0]))
		}
	}
}

// TestReadmeListsEveryServeFlag: the README's table of serve flags holds
// every flag of `statesync serve`, and the metrics section every metric
// the daemon's code names.
func TestReadmeListsEveryServeFlag(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var usage strings.Builder
	if _, err := daemon.ParseFlags([]string{"-h"}, func(string) string { return "" }, &usage); err == nil {
		t.Fatal("ParseFlags(-h) returned no error")
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(usage.String(), -1)
	if len(flags) < 10 {
		t.Fatalf("found %d flags in the usage; the pattern no longer matches:\n%s", len(flags), usage.String())
	}
	for _, m := range flags {
		if !strings.Contains(string(readme), "`--"+m[1]+"`") {
			t.Errorf("README does not list the serve flag --%s", m[1])
		}
	}
	for _, v := range regexp.MustCompile(`STATESYNC_[A-Z_]+`).FindAllString(usage.String(), -1) {
		if !strings.Contains(string(readme), "`"+v+"`") {
			t.Errorf("README does not name the variable %s", v)
		}
	}
	src, err := filepath.Glob(filepath.Join(repoRoot, "internal", "daemon", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range src {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"(?:statesync_)?([a-z_]+_(?:total|open|seconds|connected))"`).FindAllStringSubmatch(string(b), -1) {
			n++
			if !strings.Contains(string(readme), "statesync_"+strings.TrimPrefix(m[1], "statesync_")) {
				t.Errorf("README does not document the metric statesync_%s (%s)", m[1], filepath.Base(f))
			}
		}
	}
	if n < 15 {
		t.Errorf("found %d metric names in internal/daemon; the pattern no longer matches", n)
	}
}
