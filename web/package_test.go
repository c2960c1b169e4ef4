package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
)

// needTool returns the path of name on PATH; without it the test skips,
// or fails when STATESYNC_REQUIRE_SERVICES is set (as in CI, where
// .ci/services installs it).
func needTool(t *testing.T, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("STATESYNC_REQUIRE_SERVICES") != "" {
			t.Fatalf("%s not on PATH (%s) and STATESYNC_REQUIRE_SERVICES is set", name, why)
		}
		t.Skipf("%s not on PATH: %s", name, why)
	}
	return p
}

// run runs name with args in dir, with the variables env added, and
// returns its combined output; it fails the test if the command fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// installPackage packs web/ with npm pack, as a publish would, and
// installs the tarball into a new project in a temporary directory, which
// it returns. It checks the tarball holds statesync.js, its types, the
// LICENSE and package.json only.
func installPackage(t *testing.T) string {
	t.Helper()
	needTool(t, "node", "the package is not installed and run in Node")
	npm := needTool(t, "npm", "the package is not packed and installed")
	tmp := t.TempDir()
	// npm writes its cache and logs under HOME: keep them in the test's
	// directory. The install never asks the registry (--offline: the
	// package has no dependencies).
	env := []string{"npm_config_cache=" + filepath.Join(tmp, "npm-cache"), "npm_config_update_notifier=false",
		"npm_config_audit=false", "npm_config_fund=false"}
	out := run(t, ".", env, npm, "pack", "--json", "--pack-destination", tmp)
	var packed []struct {
		Filename string
		Files    []struct{ Path string }
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json printed %q: %v", out, err)
	}
	var files []string
	for _, f := range packed[0].Files {
		files = append(files, f.Path)
	}
	if got, want := strings.Join(files, " "), "LICENSE package.json statesync.d.ts statesync.js"; got != want {
		t.Errorf("the package holds %s; want %s", got, want)
	}
	app := filepath.Join(tmp, "app")
	if err := os.Mkdir(app, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"private": true, "type": "module"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, app, env, npm, "install", "--offline", filepath.Join(tmp, packed[0].Filename))
	return app
}

// TestPackageLicense: web/LICENSE, which the npm package carries, is the
// module's LICENSE, byte for byte (copy ../LICENSE over it when that
// changes), and package.json names its license and lists the file.
func TestPackageLicense(t *testing.T) {
	root, err := os.ReadFile("../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	web, err := os.ReadFile("LICENSE")
	if err != nil {
		t.Fatalf("web/LICENSE: %v; the npm package must carry the license (cp LICENSE web/LICENSE)", err)
	}
	if !bytes.Equal(root, web) {
		t.Errorf("web/LICENSE differs from ../LICENSE: cp LICENSE web/LICENSE")
	}
	var pkg struct {
		License string   `json:"license"`
		Files   []string `json:"files"`
	}
	b, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.License != "MIT" || !bytes.HasPrefix(root, []byte("MIT License")) || !slices.Contains(pkg.Files, "LICENSE") {
		t.Errorf("package.json license %q, files %q, LICENSE starts %.20q; want MIT, LICENSE listed, an MIT license", pkg.License, pkg.Files, root)
	}
}

// TestPackageFollowsInNode installs the package from its folder (npm pack,
// then npm install of the tarball) into a Node project and follows a topic
// of a real daemon with it (with a token), given an EventSource written in
// a few lines over fetch (Node 20 has none; the "eventsource" package
// would do as well): the follower sees the writes of another client, and
// a conflicting write is a 412 StateSyncError.
func TestPackageFollowsInNode(t *testing.T) {
	app := installPackage(t)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(`{"tokens": [{"name": "node", "token": "tok-node", "read": ["*"], "write": ["*"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Memory = true
	cfg.Data = ""
	cfg.Tokens = tokens
	cfg.ShutdownTimeout = 5 * time.Second
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("daemon.Start = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	})
	url := "http://" + s.Addr().String()

	script := `import { connect, StateSyncError } from "@statesync/client";

` + fetchEventSource + `
const url = process.argv[2];
const opts = { url, token: "tok-node", EventSourceImpl: FetchEventSource };
const follower = connect(opts);
const writer = connect(opts);
const seen = [];
let wake = () => {};
const f = await follower.follow("cart", (snap) => {
  seen.push(JSON.stringify(snap.data));
  wake();
});
const until = (n) => new Promise((resolve) => {
  wake = () => { if (seen.length >= n) resolve(); };
  wake();
});
const w1 = await writer.put("cart", { items: 1 });
await until(2);
await writer.patch("cart", { items: 2 }, { ifRevision: w1.revision });
await until(3);
let conflict = "none";
try {
  await writer.put("cart", { items: 9 }, { ifRevision: w1.revision });
} catch (e) {
  conflict = (e instanceof StateSyncError) + " " + e.status + " " + e.conflict;
}
console.log("seen:", seen.join(" "));
console.log("revision:", f.revision() === (await writer.getSnapshot("cart")).revision);
console.log("conflict:", conflict);
f.stop();
follower.close();
writer.close();
`
	if err := os.WriteFile(filepath.Join(app, "follow.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(run(t, app, nil, "node", "follow.mjs", url), "\r\n", "\n")
	want := `seen: null {"items":1} {"items":2}
revision: true
conflict: true 412 true
`
	if got != want {
		t.Errorf("node follow.mjs printed:\n%s\nwant:\n%s", got, want)
	}
}

// TestPackageTypes type-checks testdata/consumer.ts, which uses every
// export and option of statesync.d.ts (and checks that wrong uses are
// refused), with tsc --strict against the installed package. CI installs
// a pinned TypeScript (.ci/services).
func TestPackageTypes(t *testing.T) {
	tsc := needTool(t, "tsc", "statesync.d.ts is not type-checked")
	app := installPackage(t)
	src, err := os.ReadFile(filepath.Join("testdata", "consumer.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "consumer.ts"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, app, nil, tsc, "--strict", "--noEmit", "--module", "nodenext", "--moduleResolution", "nodenext",
		"--target", "es2022", "--lib", "es2022,dom", "consumer.ts")
}
