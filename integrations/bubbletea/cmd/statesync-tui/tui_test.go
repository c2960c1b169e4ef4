package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// screen returns the text of the emulated terminal.
func screen(emu *vt.SafeEmulator) string { return ansi.Strip(emu.Render()) }

// waitScreen polls the emulated terminal until it shows every one of want.
func waitScreen(t *testing.T, emu *vt.SafeEmulator, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := screen(emu)
		ok := true
		for _, w := range want {
			if !strings.Contains(s, w) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("screen = \n%s\nwant it to show %q", s, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The example TUI follows a topic on a real (loopback) statesync HTTP
// server: it shows the current revision and data, then a change made with
// Client.Put (what `statesync put` does), and q quits. The program runs
// with pipes for input and a terminal emulator for output (no TTY), and the
// test reads the emulated screen, so it sees what a user would see even
// though the renderer only writes the cells that changed.
func TestTUIShowsPutChange(t *testing.T) {
	src, err := statesync.NewSource(statesync.NewMemoryStore(&statesync.MemoryStoreOptions{FirstRevision: 1}), nil)
	if err != nil {
		t.Fatalf("NewSource = %v", err)
	}
	defer src.Close()
	h := httpsync.NewHandler(src, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close() // ends event streams before srv.Close waits for them

	ctx := context.Background()
	if _, err := src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`)); err != nil {
		t.Fatalf("Put = %v", err)
	}

	emu := vt.NewSafeEmulator(80, 24)
	// Drain the terminal's answers to the program's queries. Closing the
	// answer pipe ends the drain (vt's Emulator.Close races with Read).
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, emu); close(drained) }()
	defer func() { <-drained }()
	defer emu.InputPipe().(*io.PipeWriter).CloseWithError(io.EOF)
	inR, inW := io.Pipe()
	defer inW.Close()

	env := map[string]string{"STATESYNC_SERVER": srv.URL}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--topic", "settings"}, func(k string) string { return env[k] }, inR, emu,
			tea.WithWindowSize(80, 24), tea.WithEnvironment([]string{"TERM=xterm-256color"}), tea.WithoutSignalHandler())
	}()

	waitScreen(t, emu, `topic "settings"`, "revision 1 ", `"theme": "dark"`)

	client, err := httpsync.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatalf("NewClient = %v", err)
	}
	defer client.Close()
	snap, err := client.Put(ctx, "settings", json.RawMessage(`{"theme":"solarized","size":14}`))
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	if snap.Revision != 2 {
		t.Fatalf("Put revision = %v; want 2", snap.Revision)
	}
	waitScreen(t, emu, "revision 2 ", `"theme": "solarized"`, `"size": 14`)

	if _, err := inW.Write([]byte("q")); err != nil {
		t.Fatalf("write q: %v", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run = %v; want nil after q", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the program did not quit on q")
	}
}

func TestRunNeedsTopic(t *testing.T) {
	err := run(context.Background(), nil, func(string) string { return "" }, strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--topic") {
		t.Fatalf("run(no topic) = %v; want an error about --topic", err)
	}
}
