package main

import (
	"github.com/statesync-go/statesync/internal/svc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/statesync-go/statesync/httpsync"
)

// TestServerURL: --server takes a URL, or host:port without a scheme:
// http:// on a loopback host, https:// elsewhere; nonsense is an error.
func TestServerURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:8765", "http://127.0.0.1:8765"},
		{"https://sync.example/base", "https://sync.example/base"},
		{"localhost:8765", "http://localhost:8765"},
		{"127.0.0.1:8765", "http://127.0.0.1:8765"},
		{"127.0.0.2:8765", "http://127.0.0.2:8765"},
		{"[::1]:8765", "http://[::1]:8765"},
		{"app.localhost:8765", "http://app.localhost:8765"},
		{"LOCALHOST:8765", "http://LOCALHOST:8765"},
		{":8765", "http://127.0.0.1:8765"},
		{"localhost", "http://localhost"},
		{"sync.example:8765", "https://sync.example:8765"},
		{"10.0.0.5:8765", "https://10.0.0.5:8765"},
		{"localhost.evil.example:8765", "https://localhost.evil.example:8765"},
		{"sync.example:8765/base", "https://sync.example:8765/base"},
	}
	for _, tt := range tests {
		if got, err := serverURL(tt.in); err != nil || got != tt.want {
			t.Errorf("serverURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "user:pw@host:8765", "host:8765?x=1", "host:8765#f", "[::1", "a b:80"} {
		if got, err := serverURL(bad); err == nil {
			t.Errorf("serverURL(%q) = %q; want an error", bad, got)
		}
	}
}

// FuzzServerURL: whatever --server holds, serverURL does not panic, and
// what it accepts without a scheme is an http(s) URL the client takes.
func FuzzServerURL(f *testing.F) {
	for _, s := range []string{"localhost:8765", ":8765", "[::1]:1", "a.example", "http://x", "%zz:1", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := serverURL(s)
		if err != nil || strings.Contains(s, "://") {
			return
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			t.Fatalf("serverURL(%q) = %q; want http:// or https://", s, u)
		}
		if c, err := httpsync.NewClient(u, nil); err == nil {
			c.Close()
		}
	})
}

// TestServerHostPort: the client commands reach the daemon given as
// host:port, with 127.0.0.1 and localhost.
func TestServerHostPort(t *testing.T) {
	server := startTestDaemon(t, nil)
	hostport := strings.TrimPrefix(server, "http://")
	_, port, _ := strings.Cut(hostport, ":")
	for _, s := range []string{hostport, "localhost:" + port, ":" + port} {
		mustCLI(t, nil, "", "put", "--server", s, "a", `1`)
		if out := mustCLI(t, []string{"STATESYNC_SERVER", s}, "", "get", "a"); !strings.Contains(out, `"data":1`) {
			t.Errorf("get with STATESYNC_SERVER=%s = %q; want a's data", s, out)
		}
	}
}

// TestOutputFormats: get and topics print JSON lines when stdout is not a
// terminal (a test's buffer), a table with -o table or STATESYNC_OUTPUT,
// names with -o name; a bad -o is a usage error. Data from the server
// cannot reach the terminal as control characters.
func TestOutputFormats(t *testing.T) {
	server := startTestDaemon(t, nil)
	env := []string{"STATESYNC_SERVER", server}
	mustCLI(t, env, "", "put", "settings", `{"theme":"dark","evil":"\u009b31m"}`)
	mustCLI(t, env, "", "put", "cart:alice", `[1,2]`)

	lines := parseLines(t, mustCLI(t, env, "", "topics"), false)
	if len(lines) != 2 || lines[0].Topic != "cart:alice" {
		t.Errorf("topics (not a terminal) = %v; want two JSON lines", lines)
	}
	table := mustCLI(t, env, "", "topics", "-o", "table")
	rows := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "TOPIC ") || !strings.HasPrefix(rows[1], "cart:alice ") || !strings.HasPrefix(rows[2], "settings ") ||
		strings.Index(rows[0], "REVISION") != strings.Index(rows[1], strings.Fields(rows[1])[1]) {
		t.Errorf("topics -o table =\n%s\nwant a header and two aligned rows", table)
	}
	if got := mustCLI(t, append(env, "STATESYNC_OUTPUT", "table"), "", "topics"); got != table {
		t.Errorf("topics with STATESYNC_OUTPUT=table =\n%s\nwant\n%s", got, table)
	}
	if got := mustCLI(t, append(env, "STATESYNC_OUTPUT", "table"), "", "topics", "-o", "json"); !strings.HasPrefix(got, "{") {
		t.Errorf("-o json over STATESYNC_OUTPUT=table = %q; want JSON", got)
	}
	if got := mustCLI(t, env, "", "topics", "-o", "name"); got != "cart:alice\nsettings\n" {
		t.Errorf("topics -o name = %q; want the two names", got)
	}

	get := mustCLI(t, env, "", "get", "-o", "table", "settings")
	if !strings.HasPrefix(get, "TOPIC ") || !strings.Contains(get, "\n  \"theme\": \"dark\"") || !strings.Contains(get, `\u009b31m`) {
		t.Errorf("get -o table =\n%s\nwant a header, the data indented and the C1 control escaped", get)
	}
	for _, r := range get {
		if !unicode.IsPrint(r) && r != '\n' && r != ' ' {
			t.Errorf("get -o table printed the non-printable %U", r)
		}
	}
	if code, _, stderr := cli(t, env, "", "get", "-o", "yaml", "settings"); code != 2 || !strings.Contains(stderr, "json, table, name") {
		t.Errorf("get -o yaml = exit %d, stderr %q; want 2 and the formats", code, stderr)
	}
	if code, _, stderr := cli(t, append(env, "STATESYNC_OUTPUT", "yaml"), "", "topics"); code != 1 || !strings.Contains(stderr, "STATESYNC_OUTPUT") {
		t.Errorf("topics with STATESYNC_OUTPUT=yaml = exit %d, stderr %q; want 1 naming the variable", code, stderr)
	}
	mustCLI(t, append(env, "STATESYNC_OUTPUT", "yaml"), "", "topics", "-o", "name") // -o wins
}

// TestIsTerminal: pipes, files and buffers are not terminals.
func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(w) || isTerminal(f) || isTerminal(&strings.Builder{}) {
		t.Errorf("isTerminal(pipe, file, buffer) = %v, %v, %v; want false", isTerminal(w), isTerminal(f), isTerminal(&strings.Builder{}))
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Errorf("isTerminal(/dev/tty) = false")
		}
	}
}

// TestVersionFlag: statesync --version prints what statesync version does.
func TestVersionFlag(t *testing.T) {
	want := mustCLI(t, nil, "", "version")
	for _, arg := range []string{"--version", "-version"} {
		if got := mustCLI(t, nil, "", arg); got != want || !strings.HasPrefix(got, "statesync ") {
			t.Errorf("statesync %s = %q; want %q", arg, got, want)
		}
	}
}

// TestServeConflictingFlags: flags that exclude each other are usage
// errors, exit 2, with the reason.
func TestServeConflictingFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--memory", "--data", t.TempDir()},
		{"serve", "--store", "memory:", "--memory"},
		{"serve", "--metrics-token", "a", "--metrics-token-file", "f", "--memory"},
	} {
		if code, _, stderr := cli(t, nil, "", args...); code != 2 || !strings.Contains(stderr, "not both") {
			t.Errorf("Run(%q) = exit %d, stderr %q; want exit 2 and \"not both\"", args, code, stderr)
		}
	}
	if code, _, stderr := cli(t, []string{"STATESYNC_DATA", t.TempDir()}, "", "serve", "--memory"); code != 2 || !strings.Contains(stderr, "--memory or --data") {
		t.Errorf("serve --memory with STATESYNC_DATA = exit %d, stderr %q; want exit 2", code, stderr)
	}
}

// completionScript writes the script of `statesync completion shell` to a
// file and returns its path.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "statesync."+shell)
	if err := os.WriteFile(path, []byte(mustCLI(t, nil, "", "completion", shell)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCompletionBash: the bash script registers itself and completes
// commands, each command's flags (read from its -h, so new flags are in),
// -o's formats, and topic names from `statesync topics -o name`.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		svc.Missing(t, "no bash")
	}
	script := completionScript(t, "bash")
	// statesync is a shell function here: the script calls it for topics.
	const prelude = `statesync() { [[ "$*" == "topics -o name" ]] && printf 'cart:alice\nsettings\n'; }
source "$1"
complete -p statesync
comp() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _statesync; echo "${COMPREPLY[*]}"; }
comp statesync se
comp statesync serve --met
comp statesync get -o ''
comp statesync topics --se
comp statesync get ''
comp statesync watch set
comp statesync completion ''
comp statesync serve --tls-cert ''
`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prelude, "bash", script)
	cmd.Dir = filepath.Dir(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	want := []string{
		"complete -F _statesync statesync",
		"serve",
		"--metrics-token --metrics-token-file",
		"json table name",
		"--server",
		"cart:alice settings",
		"settings",
		"bash zsh",
		"statesync.bash", // the file in the current directory
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("bash completion printed\n%s\nwant %d lines %q", out, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bash completion line %d = %q; want %q", i, got[i], want[i])
		}
	}
}

// TestCompletionZsh: the zsh script registers itself with compinit and
// offers commands, flags, -o's formats, files and topic names (compadd and
// _files are stubbed to print what they are given; zsh filters by the
// prefix itself). Skipped where zsh is not installed (CI does not need it).
func TestCompletionZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		svc.Missing(t, "zsh is not installed")
	}
	script := completionScript(t, "zsh")
	const prelude = `autoload -U compinit && compinit -u -d "$2"
source "$1"
print -r -- ${_comps[statesync]}
compadd() { [[ $1 == -- ]] && shift; print -r -- "$*"; }
_files() { print -r -- FILES; }
statesync() { [[ "$*" == "topics -o name" ]] && printf 'cart:alice\nsettings\n'; }
comp() { words=("$@"); CURRENT=$#; PREFIX=${words[CURRENT]}; _statesync; }
comp statesync se
comp statesync serve --met
comp statesync get -o ''
comp statesync get ''
comp statesync completion ''
comp statesync serve --tls-cert ''
`
	out, err := exec.Command(zsh, "-f", "-c", prelude, "zsh", script, filepath.Join(t.TempDir(), "zcompdump")).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	want := []string{"_statesync", strings.Join(commands, " "), "", "json table name", "cart:alice settings", "bash zsh", "FILES"}
	if len(got) != len(want) {
		t.Fatalf("zsh completion printed\n%s\nwant %d lines", out, len(want))
	}
	for i, w := range want {
		if i == 2 {
			if !strings.Contains(got[i], "--metrics-token --metrics-token-file") || !strings.Contains(got[i], "--access-log") {
				t.Errorf("zsh completion of serve's flags = %q; want every flag of serve", got[i])
			}
			continue
		}
		if got[i] != w {
			t.Errorf("zsh completion line %d = %q; want %q", i, got[i], w)
		}
	}
}

// TestCompletionUsage: completion takes bash or zsh.
func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		if code, _, _ := cli(t, nil, "", args...); code != 2 {
			t.Errorf("Run(%q) = exit %d; want 2", args, code)
		}
	}
	if out := mustCLI(t, nil, "", "completion", "zsh"); !strings.HasPrefix(out, "#compdef statesync") || !strings.Contains(out, "--access-log") {
		t.Errorf("completion zsh = %.200q; want a #compdef script with the serve flags", out)
	}
}
