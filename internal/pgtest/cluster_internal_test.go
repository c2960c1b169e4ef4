package pgtest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestIsExecutable(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "exe"), filepath.Join(dir, "plain")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{exe: true, plain: false, dir: false, filepath.Join(dir, "missing"): false} {
		if got := isExecutable(path); got != want {
			t.Errorf("isExecutable(%q) = %v; want %v", path, got, want)
		}
	}
}

func TestVersionOf(t *testing.T) {
	for dir, want := range map[string]int{"/usr/lib/postgresql/15/bin": 15, "/usr/lib/postgresql/9/bin": 9, "/x/bin": 0} {
		if got := versionOf(dir); got != want {
			t.Errorf("versionOf(%q) = %d; want %d", dir, got, want)
		}
	}
}

func TestBinDirIn(t *testing.T) {
	onlyInitdb, both := t.TempDir(), t.TempDir()
	for path, mode := range map[string]os.FileMode{
		filepath.Join(onlyInitdb, "initdb"): 0o755, filepath.Join(onlyInitdb, "pg_ctl"): 0o644,
		filepath.Join(both, "initdb"): 0o755, filepath.Join(both, "pg_ctl"): 0o755,
	} {
		if err := os.WriteFile(path, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	if got := binDirIn([]string{onlyInitdb, both}); got != both {
		t.Errorf("binDirIn = %q; want %q, the only one with both binaries executable", got, both)
	}
	if got := binDirIn([]string{onlyInitdb}); got != "" {
		t.Errorf("binDirIn = %q; want none", got)
	}
}

// Where the server binaries are installed, findBinDir finds them (else
// StartCluster would skip and its tests prove nothing).
func TestFindBinDir(t *testing.T) {
	installed, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	got := findBinDir()
	if len(installed) == 0 {
		if got != "" {
			t.Errorf("findBinDir() = %q with no server installed under /usr/lib/postgresql", got)
		}
		return
	}
	if got == "" || !isExecutable(filepath.Join(got, "initdb")) || !isExecutable(filepath.Join(got, "pg_ctl")) {
		t.Errorf("findBinDir() = %q; want the directory of the installed initdb and pg_ctl (%v)", got, installed)
	}
}
