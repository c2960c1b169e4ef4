// Package teasync connects a statesync consumer to a Bubble Tea program
// (charm.land/bubbletea/v2): its [Applier] decodes each snapshot the
// consumer applies into a T and sends it to the program as a
// [SnapshotMsg], so the program's Update sees the topic's state as typed
// messages.
//
// The package lives in a nested module so that users of the statesync
// module do not download Bubble Tea. The applier itself needs only a
// [Sender] (a *tea.Program wrapped in a [SenderFunc]); the example TUI in cmd/statesync-tui
// follows a topic on a statesync daemon.
//
// # Sending never blocks the engine
//
// tea.Program.Send blocks until the program's event loop reads the
// message (and forever before the program has started). The applier
// therefore never calls Send on the consumer's goroutine: Apply decodes
// the snapshot, stores the message in a one-message mailbox and returns.
// One goroutine owned by the applier takes messages from the mailbox and
// sends them. A message not yet taken is replaced by the next one, so a
// slow program skips intermediate states and always ends up with the
// latest one; this is the usual state-sync
// contract, since each snapshot is a whole state. An [ErrorMsg] in the
// mailbox may likewise be replaced by a later message; its error is
// returned by Apply too, so the consumer reports it (phase apply) in any
// case.
//
// Close stops the goroutine. It waits for a Send in progress: a
// *tea.Program's Send returns once the program reads the message or has
// exited, so close the applier after the program's Run has returned (or
// while it runs).
package teasync
