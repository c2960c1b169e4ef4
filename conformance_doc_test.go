package statesync_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// conformanceIDCount is the number of ids in conformanceIDs, so that a list
// cut short by an edit fails the test instead of shrinking it.
const conformanceIDCount = 431

// conformanceTestRef matches a package-qualified test name in backquotes:
// `statesync.TestX` (the root package) or `dir/pkg.TestX` (a directory of
// the module).
var conformanceTestRef = regexp.MustCompile("`((?:[a-z0-9_]+/)*[a-z0-9_]+)\\.((?:Test|Fuzz|Example|Benchmark)[A-Za-z0-9_]*)`")

// TestConformanceDocMapsEveryID checks docs/CONFORMANCE.md: every required
// id has exactly one row that names a test or says why there is none, no
// row names an unknown id, and every test it names exists as a function of
// a _test.go file in the named package's directory.
func TestConformanceDocMapsEveryID(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("docs", "CONFORMANCE.md"))
	if err != nil {
		t.Fatalf("ReadFile(docs/CONFORMANCE.md) = %v", err)
	}
	required := strings.Fields(conformanceIDs)
	if len(required) != conformanceIDCount {
		t.Fatalf("conformanceIDs holds %d ids; want %d", len(required), conformanceIDCount)
	}
	want := map[string]bool{}
	for _, id := range required {
		if want[id] {
			t.Errorf("conformanceIDs lists %s twice", id)
		}
		want[id] = true
	}

	// The mapping tables come before the Gaps section, which repeats some
	// ids on purpose.
	mapping, _, _ := bytes.Cut(doc, []byte("\n## Gaps"))
	rows := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(mapping))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if !strings.HasPrefix(text, "| B-") {
			continue
		}
		cells := strings.Split(strings.Trim(text, "|"), "|")
		if len(cells) != 3 {
			t.Errorf("line %d: %d cells; want 3 (id, behaviour, pinned by)", line, len(cells))
			continue
		}
		id, pinned := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[2])
		if !want[id] {
			t.Errorf("line %d: row for %s, which is not a required id", line, id)
		}
		if prev, dup := rows[id]; dup {
			t.Errorf("line %d: second row for %s (first on line %d)", line, id, prev)
		}
		rows[id] = line
		if !conformanceTestRef.MatchString(pinned) &&
			!strings.Contains(pinned, "Not applicable in Go") && !strings.Contains(pinned, "Belongs to") {
			t.Errorf("line %d: %s names no test and gives no reason: %q", line, id, pinned)
		}
	}
	for _, id := range required {
		if _, ok := rows[id]; !ok {
			t.Errorf("docs/CONFORMANCE.md has no row for %s", id)
		}
	}

	// Every test named anywhere in the file exists.
	funcs := map[string]map[string]bool{} // directory → function names
	for _, m := range conformanceTestRef.FindAllSubmatch(doc, -1) {
		pkg, name := string(m[1]), string(m[2])
		dir := pkg
		if pkg == "statesync" {
			dir = "."
		}
		if funcs[dir] == nil {
			funcs[dir] = conformanceTestFuncs(t, dir)
		}
		if !funcs[dir][name] {
			t.Errorf("docs/CONFORMANCE.md names %s.%s; no func %s( in %s/*_test.go", pkg, name, name, dir)
		}
	}
}

var conformanceFuncDecl = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Example|Benchmark)[A-Za-z0-9_]*)\(`)

// conformanceTestFuncs returns the names of the test, fuzz, example and
// benchmark functions declared in dir/*_test.go.
func conformanceTestFuncs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Errorf("package directory %s has no _test.go files (%v)", dir, err)
		return map[string]bool{}
	}
	names := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("ReadFile(%s) = %v", f, err)
		}
		for _, m := range conformanceFuncDecl.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
	}
	return names
}

// conformanceIDs lists every behaviour id that docs/CONFORMANCE.md must map:
// sections 1–12, 15 (B-TRANS), 16, 17 and 18 of spec/behaviour.md. It was
// generated once from the specification, which is not part of this
// repository, so that the check runs without it.
const conformanceIDs = `
B-REV-01 B-REV-02 B-REV-03 B-REV-04 B-REV-05 B-REV-06 B-REV-07 B-REV-08
B-REV-09 B-REV-10 B-REV-11 B-REV-12 B-REV-13 B-PROTO-01 B-PROTO-02 B-PROTO-03
B-PROTO-04 B-PROTO-05 B-PROTO-06 B-PROTO-07 B-PROTO-08 B-PROTO-09 B-PROTO-10 B-PROTO-11
B-PROTO-12 B-PROTO-13 B-PROTO-14 B-PROTO-15 B-PROTO-16 B-LIFE-01 B-LIFE-02 B-LIFE-03
B-LIFE-04 B-LIFE-05 B-LIFE-06 B-LIFE-07 B-LIFE-08 B-LIFE-09 B-LIFE-10 B-LIFE-11
B-LIFE-12 B-LIFE-13 B-LIFE-14 B-LIFE-15 B-LIFE-16 B-LIFE-17 B-LIFE-18 B-LIFE-19
B-LIFE-20 B-LIFE-21 B-LIFE-22 B-LIFE-23 B-LIFE-24 B-LIFE-25 B-LIFE-26 B-LIFE-27
B-COAL-01 B-COAL-02 B-COAL-03 B-COAL-04 B-COAL-05 B-COAL-06 B-COAL-07 B-COAL-08
B-COAL-09 B-COAL-10 B-COAL-11 B-GATE-01 B-GATE-02 B-GATE-03 B-GATE-04 B-GATE-05
B-GATE-06 B-GATE-07 B-GATE-08 B-GATE-09 B-GATE-10 B-GATE-11 B-GATE-12 B-TOPIC-01
B-TOPIC-02 B-TOPIC-03 B-TOPIC-04 B-FILT-01 B-FILT-02 B-FILT-03 B-FILT-04 B-FILT-05
B-FILT-06 B-ERR-01 B-ERR-02 B-ERR-03 B-ERR-04 B-ERR-05 B-ERR-06 B-ERR-07
B-ERR-08 B-ERR-09 B-ERR-10 B-ERR-11 B-ERR-12 B-ERR-13 B-ERR-14 B-ERR-15
B-ONERR-01 B-ONERR-02 B-ONERR-03 B-ONERR-04 B-ONERR-05 B-ONERR-06 B-THR-01 B-THR-02
B-THR-03 B-THR-04 B-THR-05 B-THR-06 B-THR-07 B-THR-08 B-THR-09 B-THR-10
B-THR-11 B-THR-12 B-THR-13 B-THR-14 B-THR-15 B-THR-16 B-THR-17 B-THR-18
B-THR-19 B-THR-20 B-THR-21 B-THR-22 B-RETRY-01 B-RETRY-02 B-RETRY-03 B-RETRY-04
B-RETRY-05 B-RETRY-06 B-RETRY-07 B-RETRY-08 B-RETRY-09 B-RETRY-10 B-RETRY-11 B-RETRY-12
B-RETRY-13 B-RETRY-14 B-RETRY-15 B-RETRY-16 B-RETRY-17 B-LOG-01 B-LOG-02 B-LOG-03
B-LOG-04 B-LOG-05 B-LOG-06 B-LOG-07 B-LOG-08 B-LOG-09 B-HARN-01 B-HARN-02
B-HARN-03 B-HARN-04 B-HARN-05 B-HARN-06 B-HARN-07 B-HARN-08 B-HARN-09 B-E2E-01
B-E2E-02 B-E2E-03 B-E2E-04 B-E2E-05 B-E2E-06 B-E2E-07 B-E2E-08 B-E2E-09
B-E2E-10 B-E2E-11 B-E2E-12 B-E2E-13 B-E2E-14 B-E2E-15 B-E2E-16 B-E2E-17
B-E2E-18 B-E2E-19 B-E2E-20 B-E2E-21 B-E2E-22 B-E2E-23 B-E2E-24 B-E2E-25
B-E2E-26 B-E2E-27 B-E2E-28 B-E2E-29 B-E2E-30 B-E2E-31 B-E2E-32 B-E2E-33
B-E2E-34 B-E2E-35 B-E2E-36 B-E2E-37 B-E2E-38 B-E2E-39 B-E2E-40 B-E2E-41
B-E2E-42 B-E2E-43 B-E2E-44 B-E2E-45 B-E2E-46 B-E2E-47 B-E2E-48 B-E2E-49
B-E2E-50 B-E2E-51 B-E2E-52 B-E2E-53 B-E2E-54 B-E2E-55 B-E2E-56 B-E2E-57
B-E2E-58 B-E2E-59 B-E2E-60 B-GO-01 B-GO-02 B-GO-03 B-GO-04 B-GO-05
B-GO-06 B-GO-07 B-DEF-01 B-DEF-02 B-DEF-03 B-DEF-04 B-DEF-05 B-DEF-06
B-DEF-07 B-DEF-08 B-DEF-09 B-DEF-10 B-DEF-11 B-DEF-12 B-DEF-13 B-DEF-14
B-PSAVE-01 B-PSAVE-02 B-PSAVE-03 B-PSAVE-04 B-PSAVE-05 B-PSAVE-06 B-PSAVE-07 B-PSAVE-08 B-PSAVE-09 B-PSAVE-10 B-PSAVE-11 B-PSAVE-12 B-PSAVE-13 B-PSAVE-14 B-PSAVE-15 B-PSAVE-16 B-PSAVE-17 B-PSAVE-18 B-PSAVE-19 B-PSAVE-20 B-PSTAT-01 B-PSTAT-02 B-PSTAT-03 B-PSTAT-04 B-PSTAT-05 B-PSTAT-06 B-PEVT-01 B-PEVT-02 B-PEVT-03 B-PEVT-04 B-PEVT-05 B-PEVT-06 B-PEVT-07 B-PEVT-08 B-PMETA-01 B-PMETA-02 B-PMETA-03 B-PMETA-04 B-PMETA-05 B-PMETA-06 B-PMETA-07 B-PMETA-08 B-PMETA-09 B-PMETA-10 B-PLOAD-01 B-PLOAD-02 B-PLOAD-03 B-PLOAD-04 B-PLOAD-05 B-PLOAD-06 B-PLOAD-07 B-PLOAD-08 B-PLOAD-09 B-PLOAD-10 B-PLOAD-11 B-PLOAD-12 B-MIG-01 B-MIG-02 B-MIG-03 B-MIG-04 B-MIG-05 B-MIG-06 B-MIG-07 B-MIG-08 B-MIG-09 B-MIG-10 B-MIG-11 B-MIG-12 B-MIG-13 B-MIG-14 B-MIG-15 B-COMP-01 B-COMP-02 B-COMP-03 B-COMP-04 B-COMP-05 B-COMP-06 B-COMP-07 B-COMP-08 B-COMP-09 B-COMP-10 B-COMP-11 B-COMP-12 B-COMP-13 B-COMP-14 B-STORE-01 B-STORE-02 B-STORE-03 B-STORE-04 B-STORE-05 B-STORE-06 B-STORE-07 B-STORE-08 B-STORE-09 B-STORE-10 B-STORE-11 B-STORE-12 B-STORE-13 B-STORE-14 B-STORE-15 B-STORE-16 B-STORE-17 B-STORE-18 B-STORE-19 B-STORE-20 B-STORE-21 B-STORE-22 B-STORE-23 B-STORE-24 B-STORE-25 B-STORE-26 B-STORE-27 B-STORE-28 B-STORE-29 B-STORE-30 B-STORE-31 B-STORE-32 B-STORE-33 B-STORE-34 B-STORE-35 B-STORE-36 B-XTAB-01 B-XTAB-02 B-XTAB-03 B-XTAB-04 B-XTAB-05 B-XTAB-06 B-XTAB-07 B-XTAB-08 B-XTAB-09 B-XTAB-10 B-XTAB-11 B-XTAB-12 B-XTAB-13 B-XTAB-14 B-XTAB-15 B-XTAB-16 B-BOOT-01 B-BOOT-02 B-BOOT-03 B-BOOT-04 B-BOOT-05 B-BOOT-06 B-BOOT-07
B-ADAPT-01 B-ADAPT-02 B-ADAPT-03 B-ADAPT-04 B-ADAPT-05 B-ADAPT-06 B-ADAPT-07 B-ADAPT-08 B-ADAPT-09 B-ADAPT-10 B-ADAPT-11 B-ADAPT-12 B-ADAPT-13 B-ADAPT-14 B-ADAPT-15 B-ADAPT-16 B-ADAPT-17 B-ADAPT-18 B-ADAPT-19 B-ADAPT-20 B-ADAPT-21 B-ADAPT-22 B-ADAPT-23 B-ADAPT-24 B-ADAPT-25 B-ADAPT-26 B-ADAPT-27 B-ADAPT-28 B-ADAPT-29
B-TRANS-01 B-TRANS-02 B-TRANS-03 B-TRANS-04 B-TRANS-05 B-TRANS-06 B-TRANS-07 B-TRANS-08
B-TRANS-09 B-TRANS-10
`
