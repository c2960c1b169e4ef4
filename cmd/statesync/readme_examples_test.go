package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// goBlocks returns the ```go blocks of the Markdown file path.
func goBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```go":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// snippetVars are the names README fragments use without declaring them.
const snippetVars = `
var (
	ctx     = context.Background()
	applier statesync.Applier
	dir     string
	client  *httpsync.Client
	store   persist.Storage
	sub     statesync.Subscriber
	prov    statesync.Provider
)
`

// snippetImports are the packages README snippets may use, by name.
var snippetImports = map[string]string{
	"context":   "context",
	"json":      "encoding/json",
	"fmt":       "fmt",
	"log":       "log",
	"os":        "os",
	"time":      "time",
	"statesync": "github.com/statesync-go/statesync",
	"httpsync":  "github.com/statesync-go/statesync/httpsync",
	"memsync":   "github.com/statesync-go/statesync/memsync",
	"persist":   "github.com/statesync-go/statesync/persist",
}

// TestDocGoSnippetsCompile: every Go snippet of README.md and docs/*.md
// compiles against the current API, and a whole program runs and prints
// what the README shows. Fragments are compiled as the body of a function,
// with the variables they take as given (ctx, applier, client, ...)
// declared around them; "…" stands for error handling.
func TestDocGoSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the snippets with the go command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	docs, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	docs = append([]string{filepath.Join(repoRoot, "README.md")}, docs...)
	// A directory inside the module (so that its imports resolve), which
	// "./..." leaves out because its name starts with "_".
	dir, err := os.MkdirTemp(repoRoot, "_snippets")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	n := 0
	var programs []string
	for _, doc := range docs {
		for i, block := range goBlocks(t, doc) {
			name := fmt.Sprintf("%s block %d", filepath.Base(doc), i+1)
			if strings.HasPrefix(strings.TrimSpace(block), "package main") {
				pdir := filepath.Join(dir, fmt.Sprintf("prog%d", len(programs)))
				if err := os.MkdirAll(pdir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(pdir, "main.go"), []byte(block), 0o644); err != nil {
					t.Fatal(err)
				}
				programs = append(programs, name)
				continue
			}
			body := strings.ReplaceAll(block, "{ … }", "{ return err }")
			if regexp.MustCompile(`(?m)^\s*err :=`).MatchString(body) {
				body += "\n_ = err"
			}
			src := "package snippets\n\nimport (\n"
			for pkg, path := range snippetImports {
				if pkg == "context" || pkg == "statesync" || pkg == "httpsync" || pkg == "persist" ||
					regexp.MustCompile(`\b`+pkg+`\.`).MatchString(body) {
					src += fmt.Sprintf("\t%q\n", path)
				}
			}
			src += ")\n" + snippetVars + fmt.Sprintf("\n// %s\nfunc snippet%d() error {\n%s\nreturn nil\n}\n", name, n, body)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("snippet%d.go", n)), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 || len(programs) == 0 {
		t.Fatalf("found %d fragments and %d programs in %v; want some of each", n, len(programs), docs)
	}
	// The fragments share one package: each file declares the same
	// variables, so build them one at a time.
	files, _ := filepath.Glob(filepath.Join(dir, "snippet*.go"))
	for _, f := range files {
		if out, err := exec.CommandContext(ctx, goTool, "vet", f).CombinedOutput(); err != nil {
			src, _ := os.ReadFile(f)
			t.Errorf("a documented snippet does not compile:\n%s\n%s", out, src)
		}
	}
	for i, name := range programs {
		cmd := exec.CommandContext(ctx, goTool, "run", ".")
		cmd.Dir = filepath.Join(dir, fmt.Sprintf("prog%d", i))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: go run = %v\n%s", name, err, out)
			continue
		}
		t.Logf("%s prints:\n%s", name, out)
		if !regexp.MustCompile(`(?s)^applied revision 0: null\napplied revision [1-9][0-9]*: \{"theme":"dark"\}\nconsumer at revision [1-9][0-9]*\n$`).Match(out) {
			t.Errorf("%s printed %q; want what the README shows", name, out)
		}
	}
}
