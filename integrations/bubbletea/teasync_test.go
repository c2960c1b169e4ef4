package teasync_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/statesync-go/statesync"
	teasync "github.com/statesync-go/statesync/integrations/bubbletea"
)

type settings struct {
	Theme string `json:"theme"`
	Size  int    `json:"size"`
}

// chanSender sends each message on a channel (blocking like tea.Program.Send
// until someone receives).
type chanSender chan any

func (c chanSender) Send(msg any) { c <- msg }

// B-ADAPT-01: Apply turns a snapshot into a typed message, nothing else.
func TestApplierSendsTypedSnapshotMsg(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		msgs := make(chanSender)
		a := teasync.NewApplier[settings](msgs, "ui", nil)
		defer a.Close()
		snap := statesync.Snapshot{Revision: 7, Epoch: "e1", Data: json.RawMessage(`{"theme":"dark","size":3}`)}
		if err := a.Apply(context.Background(), snap); err != nil {
			t.Fatalf("Apply(%v) = %v; want nil", snap, err)
		}
		got := <-msgs
		want := teasync.SnapshotMsg[settings]{Topic: "ui", Revision: 7, Epoch: "e1", Value: settings{Theme: "dark", Size: 3}}
		if got != any(want) {
			t.Fatalf("message = %#v; want %#v", got, want)
		}
	})
}

// B-ADAPT-17: a snapshot that does not decode into T is an apply error: the
// program gets an ErrorMsg and the consumer gets the same error.
func TestApplierDecodeErrorSendsErrorMsgAndReturnsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		msgs := make(chanSender)
		a := teasync.NewApplier[settings](msgs, "ui", nil)
		defer a.Close()
		err := a.Apply(context.Background(), statesync.Snapshot{Revision: 2, Data: json.RawMessage(`{"size":"big"}`)})
		var ute *json.UnmarshalTypeError
		if !errors.As(err, &ute) {
			t.Fatalf("Apply(bad data) = %v; want a *json.UnmarshalTypeError", err)
		}
		got, ok := (<-msgs).(teasync.ErrorMsg)
		if !ok || got.Topic != "ui" || got.Revision != 2 || got.Err != err {
			t.Fatalf("message = %#v; want ErrorMsg{ui, 2, %v}", got, err)
		}
	})
}

// B-ADAPT-29: a Sender that never reads (a tea.Program not yet running)
// must not block Apply; the mailbox keeps only the latest message, so the
// program ends up with the latest snapshot once it reads.
func TestApplierNeverBlocksOnSilentSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		msgs := make(chanSender) // nobody receives until the end
		a := teasync.NewApplier[settings](msgs, "ui", nil)
		const n = 100
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 1; i <= n; i++ {
				data, _ := json.Marshal(settings{Size: i})
				if err := a.Apply(context.Background(), statesync.Snapshot{Revision: statesync.Revision(i), Data: data}); err != nil {
					t.Errorf("Apply(%d) = %v; want nil", i, err)
				}
			}
		}()
		synctest.Wait() // every goroutine is blocked or done
		select {
		case <-done:
		default:
			t.Fatal("Apply blocked on a Sender that does not read")
		}
		// The sending goroutine holds at most one message in Send; the
		// mailbox holds the latest. Reading drains both, ending at n.
		var last teasync.SnapshotMsg[settings]
		count := 0
		for last.Revision != n {
			last = (<-msgs).(teasync.SnapshotMsg[settings])
			count++
		}
		if count > 2 || last.Value.Size != n {
			t.Fatalf("received %d messages ending with %+v; want at most 2 ending with revision %d", count, last, n)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close() = %v; want nil", err)
		}
	})
}

// Close waits for a Send in progress, stops the goroutine (goleak checks)
// and makes Apply fail with ErrClosed; a second Close is harmless.
func TestApplierClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		msgs := make(chanSender)
		a := teasync.NewApplier[settings](msgs, "ui", nil)
		if err := a.Apply(context.Background(), statesync.Snapshot{Revision: 1, Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatalf("Apply = %v; want nil", err)
		}
		synctest.Wait() // the goroutine is in Send
		closed := make(chan struct{})
		go func() { a.Close(); close(closed) }()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while Send was in progress")
		default:
		}
		<-msgs // the program reads: Send returns
		<-closed
		if err := a.Apply(context.Background(), statesync.Snapshot{Revision: 2, Data: json.RawMessage(`{}`)}); !errors.Is(err, teasync.ErrClosed) {
			t.Fatalf("Apply after Close = %v; want %v", err, teasync.ErrClosed)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close() = %v; want nil", err)
		}
	})
}

// Options.Decode replaces json.Unmarshal.
func TestApplierCustomDecode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		msgs := make(chanSender)
		a := teasync.NewApplier(msgs, "n", &teasync.Options[int]{
			Decode: func(data json.RawMessage) (int, error) { return len(data), nil },
		})
		defer a.Close()
		if err := a.Apply(context.Background(), statesync.Snapshot{Revision: 3, Data: json.RawMessage(`"abc"`)}); err != nil {
			t.Fatalf("Apply = %v; want nil", err)
		}
		if got := (<-msgs).(teasync.SnapshotMsg[int]).Value; got != 5 {
			t.Fatalf("Value = %d; want 5", got)
		}
	})
}
