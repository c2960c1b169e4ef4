package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
)

// TestTopicNamesCLI: the client commands take any valid topic name as
// one argument (statesync get 'my topic'), against the daemon (its
// ServeMux in front): put, get, topics and watch print the exact name, and
// what they write is what the HTTP API reads under that name
// (docs/PROTOCOL.md "Topic names").
func TestTopicNamesCLI(t *testing.T) {
	server := startTestDaemon(t, nil)
	env := []string{"STATESYNC_SERVER", server}
	names := []string{"my topic", "settings/ui", "café", "cafe\u0301", "100%", "a?b#c", "a+b", "a/../b", "*", `a\*`, "<b>", strings.Repeat("é", statesync.MaxTopicLen/2)}
	for _, name := range names {
		data := fmt.Sprintf(`{"name":%q}`, name)
		w := oneLine(t, mustCLI(t, env, "", "put", name, data), false)
		if w.Topic != name || w.Revision == 0 {
			t.Errorf("put %q = %+v; want that topic at a revision", name, w)
		}
		g := oneLine(t, mustCLI(t, env, "", "get", name), true)
		if g.Topic != name || g.Revision != w.Revision || !jsonEqual(g.Data, []byte(data)) {
			t.Errorf("get %q = %+v; want revision %v and data %s", name, g, w.Revision, data)
		}
		if s := httpGet(t, server, url.PathEscape(name)); s.Revision != w.Revision {
			t.Errorf("GET of %q = %+v; want revision %v", name, s, w.Revision)
		}
	}
	var listed []string
	for _, l := range parseLines(t, mustCLI(t, env, "", "topics"), false) {
		listed = append(listed, l.Topic)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("topics = %q; want %q", listed, want)
	}

	// watch follows names holding a space and a '/', and prints them.
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()
	var stdout, stderr lockedbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: envOf("STATESYNC_SERVER", server)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"watch", "my topic", "settings/ui"}) }()
	w := httpPut(t, server, url.PathEscape("settings/ui"), `{"again":1}`)
	// The two topics' lines come in either order: wait for both.
	poll.UntilState(t, `watch printing settings/ui at its new revision and a line of "my topic"`, func() (bool, string) {
		lines := watchLines(t, &stdout)
		if slices.ContainsFunc(lines, func(l cliLine) bool { return l.Topic == "settings/ui" && l.Revision == w.Revision }) &&
			slices.ContainsFunc(lines, func(l cliLine) bool { return l.Topic == "my topic" }) {
			return true, ""
		}
		return false, fmt.Sprintf("stdout %q, stderr %q", stdout.String(), stderr.String())
	})
	cancel()
	<-done
}
