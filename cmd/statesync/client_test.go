package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
)

// waitFor bounds the waits of these tests on a context or a channel;
// polls give up after poll.Timeout.
const waitFor = 15 * time.Second

// envOf returns a getenv func over vars (name, value pairs).
func envOf(vars ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return func(name string) string { return m[name] }
}

// cli runs the program in-process with the environment env (name, value
// pairs) and stdin, and returns its exit code and output.
func cli(t *testing.T, env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: envOf(env...)}
	code = m.exitCode(m.Run(ctx, args))
	return code, out.String(), errOut.String()
}

// mustCLI runs the program like cli and fails the test unless it exits 0
// with nothing on stderr; it returns stdout.
func mustCLI(t *testing.T, env []string, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := cli(t, env, stdin, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("Run(%q) = exit %d, stdout %q, stderr %q; want exit 0", args, code, stdout, stderr)
	}
	return stdout
}

// startTestDaemon starts a daemon on a free loopback port with a fresh
// data directory; mod may change its configuration. The test's cleanup
// shuts it down. It returns the server's URL.
func startTestDaemon(t *testing.T, mod func(*daemon.Config)) string {
	t.Helper()
	cfg := daemon.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.ShutdownTimeout = 5 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("daemon.Start = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpDo makes a request with a fresh connection and returns the status
// and body; hdr holds header name/value pairs.
func httpDo(t testing.TB, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// httpPut writes data to topic over HTTP and returns the new revision.
func httpPut(t testing.TB, server, topic, data string) statesync.Snapshot {
	t.Helper()
	status, b := httpDo(t, http.MethodPut, server+"/v1/topics/"+topic, data)
	var s statesync.Snapshot
	if err := json.Unmarshal(b, &s); status != http.StatusOK || err != nil {
		t.Fatalf("PUT %s = %d %s (%v); want 200", topic, status, b, err)
	}
	return s
}

// httpGet returns the snapshot of topic over HTTP.
func httpGet(t testing.TB, server, topic string) statesync.Snapshot {
	t.Helper()
	status, b := httpDo(t, http.MethodGet, server+"/v1/topics/"+topic, "")
	s, err := statesync.DecodeSnapshot(b)
	if status != http.StatusOK || err != nil {
		t.Fatalf("GET %s = %d %s (%v); want 200 and a snapshot", topic, status, b, err)
	}
	return s
}

// cliLine is the union of what get, put, patch, delete, topics and watch
// print.
type cliLine struct {
	Topic    string             `json:"topic"`
	Revision statesync.Revision `json:"revision"`
	Epoch    string             `json:"epoch"`
	Data     json.RawMessage    `json:"data"`
}

// parseLines parses out strictly: one JSON object per line, with only the
// fields of cliLine, each with a topic. withData says whether the lines
// must carry data (get and watch) or not (put, delete, topics).
func parseLines(t testing.TB, out string, withData bool) []cliLine {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output %q: want whole lines", out)
	}
	var lines []cliLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		var c cliLine
		if err := dec.Decode(&c); err != nil || dec.More() {
			t.Fatalf("output line %q: %v; want one JSON object", l, err)
		}
		if c.Topic == "" || c.Epoch == "" || (c.Data != nil) != withData {
			t.Fatalf("output line %q: want topic, revision, epoch%s", l, map[bool]string{true: " and data", false: " and no data"}[withData])
		}
		lines = append(lines, c)
	}
	return lines
}

// oneLine parses output that must be exactly one line.
func oneLine(t testing.TB, out string, withData bool) cliLine {
	t.Helper()
	lines := parseLines(t, out, withData)
	if len(lines) != 1 {
		t.Fatalf("output %q: want one line", out)
	}
	return lines[0]
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// TestPutGet: put takes inline JSON, @file and - (stdin) and prints the
// new revision; get prints the snapshot as one JSON line (DESIGN §5).
func TestPutGet(t *testing.T) {
	server := startTestDaemon(t, nil)
	env := []string{"STATESYNC_SERVER", server}
	file := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(file, []byte("{\n  \"from\": \"file\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arg, stdin, want string
	}{
		{`{"theme":"dark"}`, "", `{"theme":"dark"}`},
		{"@" + file, "", `{"from":"file"}`},
		{"-", " [1, 2, 3]\n", `[1,2,3]`},
		{`"just a string"`, "", `"just a string"`},
		{`null`, "", `null`},
	}
	var prev statesync.Revision
	for _, tt := range tests {
		w := oneLine(t, mustCLI(t, env, tt.stdin, "put", "demo", tt.arg), false)
		if w.Topic != "demo" || w.Revision <= prev {
			t.Errorf("put demo %s = %+v; want topic demo at a revision above %v", tt.arg, w, prev)
		}
		prev = w.Revision
		g := oneLine(t, mustCLI(t, env, "", "get", "demo"), true)
		if g.Topic != "demo" || g.Revision != w.Revision || g.Epoch != w.Epoch || !jsonEqual(g.Data, []byte(tt.want)) {
			t.Errorf("get demo after put %s = %+v; want revision %v, epoch %q, data %s", tt.arg, g, w.Revision, w.Epoch, tt.want)
		}
		if s := httpGet(t, server, "demo"); s.Revision != w.Revision || !jsonEqual(s.Data, []byte(tt.want)) {
			t.Errorf("GET demo after put %s = %+v; want revision %v and data %s", tt.arg, s, w.Revision, tt.want)
		}
	}
	// A topic never written.
	if g := oneLine(t, mustCLI(t, env, "", "get", "fresh"), true); g.Revision != 0 || string(g.Data) != "null" {
		t.Errorf("get fresh = %+v; want revision 0 and data null", g)
	}
}

// TestPutIfRevision: put --if-revision writes only at that revision; a
// stale one exits 1 with a message naming the current revision, and writes
// nothing.
func TestPutIfRevision(t *testing.T) {
	server := startTestDaemon(t, nil)
	env := []string{"STATESYNC_SERVER", server}

	// 0: the topic must be new.
	first := oneLine(t, mustCLI(t, env, "", "put", "--if-revision", "0", "cas", `{"v":1}`), false)
	// Flags may follow the arguments.
	second := oneLine(t, mustCLI(t, env, "", "put", "cas", `{"v":2}`, "--if-revision", first.Revision.String()), false)
	if second.Revision <= first.Revision {
		t.Errorf("put --if-revision %v = revision %v; want above it", first.Revision, second.Revision)
	}

	for _, args := range [][]string{
		{"put", "--if-revision", first.Revision.String(), "cas", `{"v":"stale"}`},
		{"put", "--if-revision", "0", "cas", `{"v":"stale"}`},
		{"patch", "--if-revision", first.Revision.String(), "cas", `{"v":"stale"}`},
		{"delete", "--if-revision", "999", "cas"},
	} {
		code, stdout, stderr := cli(t, env, "", args...)
		want := fmt.Sprintf("conflict: cas is at revision %v, not %s\n", second.Revision, args[2])
		if code != 1 || stdout != "" || stderr != "statesync: "+want {
			t.Errorf("Run(%q) = exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, stdout, stderr, want)
		}
	}
	if s := httpGet(t, server, "cas"); s.Revision != second.Revision || !jsonEqual(s.Data, []byte(`{"v":2}`)) {
		t.Errorf("GET cas after refused writes = %+v; want revision %v and {\"v\":2}", s, second.Revision)
	}
	// The current revision works for patch and delete too.
	p := oneLine(t, mustCLI(t, env, "", "patch", "--if-revision", second.Revision.String(), "cas", `{"w":3}`), false)
	d := oneLine(t, mustCLI(t, env, "", "delete", "--if-revision", p.Revision.String(), "cas"), false)
	if p.Revision <= second.Revision || d.Revision <= p.Revision {
		t.Errorf("patch then delete at the current revision = revisions %v, %v; want increasing above %v", p.Revision, d.Revision, second.Revision)
	}
}

// TestPatchDelete: patch applies a JSON merge patch; delete sets the data
// to null at a new revision.
func TestPatchDelete(t *testing.T) {
	server := startTestDaemon(t, nil)
	env := []string{"STATESYNC_SERVER", server}
	w := httpPut(t, server, "doc", `{"theme":"dark","lang":"fr","n":1}`)

	p := oneLine(t, mustCLI(t, env, "", "patch", "doc", `{"lang":"en","n":null,"extra":[1]}`), false)
	want := `{"theme":"dark","lang":"en","extra":[1]}`
	if s := httpGet(t, server, "doc"); p.Topic != "doc" || p.Revision <= w.Revision || s.Revision != p.Revision || !jsonEqual(s.Data, []byte(want)) {
		t.Errorf("patch doc = %+v, then GET = %+v; want a revision above %v and data %s", p, s, w.Revision, want)
	}
	p2 := oneLine(t, mustCLI(t, env, `{"theme":"light"}`, "patch", "doc", "-"), false)
	if s := httpGet(t, server, "doc"); s.Revision != p2.Revision || !jsonEqual(s.Data, []byte(`{"theme":"light","lang":"en","extra":[1]}`)) {
		t.Errorf("patch doc - = %+v, then GET = %+v; want the stdin patch applied", p2, s)
	}

	d := oneLine(t, mustCLI(t, env, "", "delete", "doc"), false)
	if g := oneLine(t, mustCLI(t, env, "", "get", "doc"), true); d.Revision <= p2.Revision || g.Revision != d.Revision || string(g.Data) != "null" {
		t.Errorf("delete doc = %+v, then get = %+v; want a revision above %v and data null", d, g, p2.Revision)
	}
}

// TestTopics: topics prints one line per topic, sorted, with its revision.
func TestTopics(t *testing.T) {
	server := startTestDaemon(t, nil)
	env := []string{"STATESYNC_SERVER", server}
	if out := mustCLI(t, env, "", "topics"); out != "" {
		t.Errorf("topics on an empty daemon = %q; want nothing", out)
	}
	b := httpPut(t, server, "b.topic", `1`)
	a := httpPut(t, server, "a:topic", `2`)
	b = httpPut(t, server, "b.topic", `3`)
	lines := parseLines(t, mustCLI(t, env, "", "topics"), false)
	if len(lines) != 2 || lines[0].Topic != "a:topic" || lines[0].Revision != a.Revision || lines[1].Topic != "b.topic" || lines[1].Revision != b.Revision {
		t.Errorf("topics = %+v; want a:topic at %v, b.topic at %v", lines, a.Revision, b.Revision)
	}
}

// TestServerAndToken: the client commands talk to --server or
// STATESYNC_SERVER, with the token of --token or STATESYNC_TOKEN; flags
// win.
func TestServerAndToken(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(`{"tokens":[{"token":"good","read":["*"],"write":["*"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	server := startTestDaemon(t, func(c *daemon.Config) { c.Tokens = tokens })
	dead := "http://" + freeAddr(t)

	// The flag wins over the variable.
	mustCLI(t, []string{"STATESYNC_SERVER", dead, "STATESYNC_TOKEN", "bad"}, "", "put", "--server", server, "--token", "good", "x", "1")
	g := oneLine(t, mustCLI(t, []string{"STATESYNC_SERVER", server, "STATESYNC_TOKEN", "good"}, "", "get", "x"), true)
	if string(g.Data) != "1" {
		t.Errorf("get x = %+v; want data 1", g)
	}
	tests := []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"STATESYNC_SERVER", server}, []string{"get", "x"}, "401"},
		{[]string{"STATESYNC_SERVER", server, "STATESYNC_TOKEN", "bad"}, []string{"get", "x"}, "401"},
		{[]string{"STATESYNC_SERVER", server, "STATESYNC_TOKEN", "good"}, []string{"get", "--token", "bad", "x"}, "401"},
		{[]string{"STATESYNC_SERVER", server, "STATESYNC_TOKEN", "bad"}, []string{"topics"}, "401"},
		{[]string{"STATESYNC_SERVER", dead, "STATESYNC_TOKEN", "good"}, []string{"get", "x"}, "connection refused"},
		{[]string{"STATESYNC_TOKEN", "good"}, []string{"put", "--server", dead, "x", "2"}, "connection refused"},
	}
	for _, tt := range tests {
		code, stdout, stderr := cli(t, tt.env, "", tt.args...)
		if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "statesync: ") || !strings.Contains(stderr, tt.want) {
			t.Errorf("Run(%q) with env %q = exit %d, stdout %q, stderr %q; want exit 1 and an error with %q", tt.args, tt.env, code, stdout, stderr, tt.want)
		}
	}
	if status, b := httpDo(t, http.MethodGet, server+"/v1/topics/x", "", "Authorization", "Bearer good"); status != http.StatusOK || !strings.Contains(string(b), `"data":1`) {
		t.Errorf("GET x after refused writes = %d %s; want data 1", status, b)
	}
}

// TestClientUsageErrors: a command line that cannot be run exits 2 with
// the command's usage on stderr and nothing on stdout.
func TestClientUsageErrors(t *testing.T) {
	tests := [][]string{
		{"get"},
		{"get", "a", "b"},
		{"get", "--bogus", "a"},
		{"put", "demo"},
		{"put", "demo", "1", "2"},
		{"put", "--if-revision", "007", "demo", "1"},
		{"put", "--if-revision", "-1", "demo", "1"},
		{"put", "--if-revision", "abc", "demo", "1"},
		{"patch", "demo"},
		{"delete"},
		{"delete", "a", "b"},
		{"topics", "extra"},
		{"watch"},
		{"watch", "--bogus", "a"},
	}
	for _, args := range tests {
		code, stdout, stderr := cli(t, []string{"STATESYNC_SERVER", "http://127.0.0.1:1"}, "", args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "Usage: statesync "+args[0]) {
			t.Errorf("Run(%q) = exit %d, stdout %q, stderr %q; want exit 2 and the usage of %s", args, code, stdout, stderr, args[0])
		}
	}
}

// TestClientErrors: bad data and bad topics exit 1 with a message, before
// any request.
func TestClientErrors(t *testing.T) {
	tests := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"put", "demo", `{"a":`}, "", "not valid JSON"},
		{[]string{"put", "demo", "-"}, "not json", "not valid JSON"},
		{[]string{"put", "demo", "@/nonexistent/data.json"}, "", "/nonexistent/data.json"},
		{[]string{"patch", "demo", "{"}, "", "not valid JSON"},
		{[]string{"get", "bad\ttopic"}, "", "topic"},
		{[]string{"get", ".."}, "", "topic"},
		{[]string{"put", "bad\x7f", "1"}, "", "topic"},
		{[]string{"watch", "ok", "bad\n"}, "", "topic"},
	}
	for _, tt := range tests {
		// The server address is dead: these must fail before connecting.
		code, stdout, stderr := cli(t, []string{"STATESYNC_SERVER", "http://127.0.0.1:1"}, tt.stdin, tt.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "connection refused") {
			t.Errorf("Run(%q) = exit %d, stdout %q, stderr %q; want exit 1 and an error with %q", tt.args, code, stdout, stderr, tt.want)
		}
	}
}

// TestClientHelp: -h prints a command's usage and flags and exits 0.
func TestClientHelp(t *testing.T) {
	for _, cmd := range []string{"get", "put", "patch", "delete", "topics", "watch"} {
		code, stdout, stderr := cli(t, nil, "", cmd, "-h")
		if code != 0 || stdout != "" || !strings.Contains(stderr, "Usage: statesync "+cmd) || !strings.Contains(stderr, "STATESYNC_SERVER") {
			t.Errorf("Run(%s -h) = exit %d, stdout %q, stderr %q; want exit 0 and the usage with -server", cmd, code, stdout, stderr)
		}
	}
}

// watchLines returns the lines watch has printed so far, parsed.
func watchLines(t testing.TB, out *lockedbuf.Buffer) []cliLine {
	t.Helper()
	s := out.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return parseLines(t, s[:i+1], true)
	}
	return nil
}

// TestWatch: watch follows its topics and prints each applied snapshot as
// one JSON line, revisions increasing per topic, until its context ends;
// then it returns and prints nothing more (B-GATE-03: the first snapshot,
// revision 0 included, is applied; B-GATE-06: applied revisions strictly
// increase; B-GO-06: nothing left running).
func TestWatch(t *testing.T) {
	server := startTestDaemon(t, nil)
	first := httpPut(t, server, "a", `{"n":0}`)
	// What was written at each revision of each topic.
	written := map[string]map[statesync.Revision]string{
		"a": {first.Revision: `{"n":0}`},
		"b": {0: `null`},
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()
	var stdout, stderr lockedbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: envOf("STATESYNC_SERVER", server)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"watch", "a", "b"}) }()

	// waitLine waits until watch has printed topic at rev.
	waitLine := func(topic string, rev statesync.Revision) {
		t.Helper()
		poll.UntilState(t, fmt.Sprintf("watch printing %s at %v", topic, rev), func() (bool, string) {
			for _, l := range watchLines(t, &stdout) {
				if l.Topic == topic && l.Revision == rev {
					return true, ""
				}
			}
			select {
			case err := <-done:
				t.Fatalf("watch returned %v early; stdout %q, stderr %q", err, stdout.String(), stderr.String())
			default:
			}
			return false, fmt.Sprintf("stdout %q, stderr %q", stdout.String(), stderr.String())
		})
	}
	waitLine("a", first.Revision)
	waitLine("b", 0)

	// One write at a time: each is printed.
	for i := 1; i <= 3; i++ {
		for _, topic := range []string{"a", "b"} {
			data := fmt.Sprintf(`{"topic":%q,"n":%d}`, topic, i)
			w := httpPut(t, server, topic, data)
			written[topic][w.Revision] = data
			waitLine(topic, w.Revision)
		}
	}
	// A burst: watch may skip revisions but ends at the last one.
	var last statesync.Snapshot
	for i := range 30 {
		data := fmt.Sprintf(`{"burst":%d}`, i)
		last = httpPut(t, server, "a", data)
		written["a"][last.Revision] = data
	}
	waitLine("a", last.Revision)

	cancel()
	select {
	case err := <-done:
		if code := m.exitCode(err); code != 0 {
			t.Errorf("watch after cancel = %v (exit %d); want exit 0", err, code)
		}
	case <-time.After(waitFor):
		t.Fatalf("watch did not return within %v of its context ending", waitFor)
	}
	if s := stderr.String(); s != "" {
		t.Errorf("watch stderr = %q; want nothing", s)
	}

	lines := watchLines(t, &stdout)
	if !strings.HasSuffix(stdout.String(), "\n") {
		t.Errorf("watch output %q ends with a partial line", stdout.String())
	}
	seen := map[string]statesync.Revision{}
	counts := map[string]int{}
	for _, l := range lines {
		want, ok := written[l.Topic][l.Revision]
		if !ok || !jsonEqual(l.Data, []byte(want)) {
			t.Errorf("watch printed %s at %v with data %s; want %s", l.Topic, l.Revision, l.Data, want)
		}
		if prev, ok := seen[l.Topic]; ok && l.Revision <= prev {
			t.Errorf("watch printed %s at %v after %v; want increasing revisions", l.Topic, l.Revision, prev)
		}
		seen[l.Topic] = l.Revision
		counts[l.Topic]++
	}
	if counts["b"] != 4 || counts["a"] < 5 || seen["a"] != last.Revision {
		t.Errorf("watch printed %d lines of a (last at %v), %d of b; want ≥ 5 ending at %v, and 4", counts["a"], seen["a"], counts["b"], last.Revision)
	}
	n := len(stdout.String())
	httpPut(t, server, "a", `"after"`)
	if len(stdout.String()) != n {
		t.Errorf("watch printed after it returned: %q", stdout.String()[n:])
	}
}

// TestWatchWaitsForServer: watch started before the daemon keeps trying,
// and follows the daemon once it is up.
func TestWatchWaitsForServer(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()
	var stdout, stderr lockedbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: envOf("STATESYNC_SERVER", "http://"+addr)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"watch", "-v", "late"}) }()

	// -v logs the failed attempts: start the daemon after the first one.
	poll.UntilState(t, "watch -v logging a failed connection", func() (bool, string) {
		return strings.Contains(stderr.String(), "connection refused"), fmt.Sprintf("stderr %q", stderr.String())
	})
	server := startTestDaemon(t, func(c *daemon.Config) { c.Addr = addr })
	w := httpPut(t, server, "late", `{"up":true}`)
	var last cliLine
	poll.UntilState(t, fmt.Sprintf("watch printing late at %v", w.Revision), func() (bool, string) {
		lines := watchLines(t, &stdout)
		if len(lines) == 0 {
			return false, "nothing"
		}
		last = lines[len(lines)-1]
		return last.Revision == w.Revision, fmt.Sprintf("stdout %q", stdout.String())
	})
	if !jsonEqual(last.Data, []byte(`{"up":true}`)) {
		t.Errorf("watch printed %+v; want the data written", last)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch after cancel = %v; want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("watch did not return within %v of its context ending", waitFor)
	}
}
