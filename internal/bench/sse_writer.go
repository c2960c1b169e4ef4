package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/sleep"
)

// The writes of sse_fanout come from a process of their own, so that the
// acknowledgement of each write is read as soon as it arrives: in the
// consumers' process, the writer's goroutine would wait its turn behind the
// thousands of consumer goroutines that the write itself woke up, and the
// latencies measured from its late acknowledgement would look shorter than
// they are.
//
// The writer (envSSEServer with role roleWriter) opens its connection with
// a GET, prints its hello line, waits for a line on stdin, then makes
// cfg.Writes PUTs of the topic through an httpsync.Client on a schedule
// of its own, one every cfg.Interval, and prints a writeResult line for
// each. It exits once stdin reaches end of file.

// writeResult is the line the writer prints for each write. Times are wall
// clock (Unix nanoseconds), comparable between processes of one machine.
type writeResult struct {
	Rev  statesync.Revision `json:"rev"`
	Sent int64              `json:"sent"` // when the PUT was sent
	Ack  int64              `json:"ack"`  // when its response had been read
	Err  string             `json:"err,omitempty"`
}

func runWriterRole(ctx context.Context, cfg sseServerConfig, stdin io.Reader, stdout io.Writer) error {
	var opts *httpsync.ClientOptions
	if cfg.Cert != "" {
		tr, err := transportFor([]byte(cfg.Cert))
		if err != nil {
			return err
		}
		defer tr.CloseIdleConnections()
		opts = &httpsync.ClientOptions{HTTPClient: &http.Client{Transport: tr}}
	}
	w, err := httpsync.NewClient(cfg.Target, opts)
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	if _, err := w.Snapshot(ctx, topic); err != nil { // opens the connection the PUTs reuse
		return err
	}
	hello, _ := json.Marshal(serverHello{Addr: cfg.Target})
	if _, err := fmt.Fprintf(stdout, "%s\n", hello); err != nil {
		return err
	}
	in := bufio.NewReader(stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return nil // stdin closed before the start: nothing to do
	}
	start := time.Now()
	for i := range cfg.Writes {
		if err := sleep.For(ctx, time.Until(start.Add(time.Duration(i)*cfg.Interval))); err != nil {
			return err
		}
		sent := time.Now()
		snap, err := w.Put(ctx, topic, writeData(i+1))
		res := writeResult{Rev: snap.Revision, Sent: sent.UnixNano(), Ack: time.Now().UnixNano()}
		if err != nil {
			res.Err = err.Error()
		}
		line, _ := json.Marshal(res) // plain fields always marshal
		if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
			return err
		}
	}
	_, _ = io.Copy(io.Discard, in)
	return nil
}
