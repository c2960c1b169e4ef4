// Command statesync-tui follows a topic on a statesync daemon and shows its
// revision and data (pretty JSON), live. Press q to quit.
//
//	statesync-tui --server http://127.0.0.1:8765 --topic settings
//
// The server defaults to $STATESYNC_SERVER (else http://127.0.0.1:8765);
// a bearer token is read from $STATESYNC_TOKEN. Change the topic with
// `statesync put` and the screen follows.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	teasync "github.com/statesync-go/statesync/integrations/bubbletea"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "statesync-tui:", err)
		os.Exit(1)
	}
}

// run parses args, connects and runs the program until q. Nil in and out
// mean the terminal; tests pass pipes. extra options are appended.
func run(ctx context.Context, args []string, getenv func(string) string, in io.Reader, out io.Writer, extra ...tea.ProgramOption) error {
	fs := flag.NewFlagSet("statesync-tui", flag.ContinueOnError)
	server := fs.String("server", envOr(getenv, "STATESYNC_SERVER", "http://127.0.0.1:8765"), "statesync server URL (env STATESYNC_SERVER)")
	topic := fs.String("topic", "", "topic to follow (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("--topic is required")
	}
	client, err := httpsync.NewClient(*server, &httpsync.ClientOptions{Token: getenv("STATESYNC_TOKEN")})
	if err != nil {
		return err
	}
	defer client.Close()

	opts := []tea.ProgramOption{tea.WithContext(ctx)}
	if in != nil {
		opts = append(opts, tea.WithInput(in))
	}
	if out != nil {
		opts = append(opts, tea.WithOutput(out))
	}
	opts = append(opts, extra...)
	p := tea.NewProgram(newModel(*server, *topic), opts...)

	applier := teasync.NewApplier[json.RawMessage](teasync.SenderFunc(func(m any) { p.Send(m) }), *topic, nil)
	defer applier.Close() // after Run: Send is then a no-op
	consumer, err := statesync.NewConsumer(*topic, client, client, applier, &statesync.ConsumerOptions{
		OnError: func(e *statesync.Error) {
			if e.Phase != statesync.PhaseApply { // apply errors arrive as ErrorMsg
				go p.Send(errMsg{e})
			}
		},
		Retry: &statesync.RetryPolicy{},
	})
	if err != nil {
		return err
	}
	// Start in the background: the screen shows "connecting" meanwhile,
	// and a failed start is shown rather than ending the program.
	started := make(chan struct{})
	go func() {
		defer close(started)
		if err := consumer.Start(ctx); err != nil {
			p.Send(errMsg{err})
		}
	}()

	_, runErr := p.Run()
	consumer.Stop()
	<-started
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := consumer.Wait(wctx); err != nil && runErr == nil {
		runErr = err
	}
	if errors.Is(runErr, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return runErr
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// errMsg carries an error of the consumer to the model.
type errMsg struct{ err error }

// model is the TUI's state.
type model struct {
	server, topic string
	synced        bool
	rev           statesync.Revision
	epoch         string
	pretty        string
	err           error
}

func newModel(server, topic string) model { return model{server: server, topic: topic} }

func (m model) Init() tea.Cmd { return nil }

func (m model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		}
	case teasync.SnapshotMsg[json.RawMessage]:
		m.synced, m.rev, m.epoch, m.err = true, msg.Revision, msg.Epoch, nil
		var b bytes.Buffer
		if err := json.Indent(&b, msg.Value, "", "  "); err != nil {
			m.pretty = string(msg.Value)
		} else {
			m.pretty = b.String()
		}
	case teasync.ErrorMsg:
		m.err = msg.Err
	case errMsg:
		m.err = msg.err
	}
	return m, nil
}

func (m model) View() tea.View {
	var b strings.Builder
	fmt.Fprintf(&b, "statesync  %s  topic %q\n", m.server, m.topic)
	if m.synced {
		fmt.Fprintf(&b, "revision %v  epoch %s\n\n%s\n", m.rev, m.epoch, m.pretty)
	} else {
		b.WriteString("connecting…\n")
	}
	if m.err != nil {
		fmt.Fprintf(&b, "\nerror: %v\n", m.err)
	}
	b.WriteString("\nq: quit\n")
	return tea.NewView(b.String())
}
