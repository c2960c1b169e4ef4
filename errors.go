package statesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Each is matched with [errors.Is]; the errors returned by
// this package wrap them with detail.
var (
	// ErrNonCanonicalRevision is returned when a revision is not a canonical
	// decimal string.
	ErrNonCanonicalRevision = errors.New("statesync: non-canonical revision")
	// ErrRevisionOverflow is returned by [Revision.Next] at [MaxRevision].
	ErrRevisionOverflow = errors.New("statesync: revision overflow")
	// ErrRevisionRegressed is reported when a source without a new epoch
	// returns a snapshot older than the one applied, which means the source
	// lost its history.
	ErrRevisionRegressed = errors.New("statesync: snapshot revision went backwards")
	// ErrInvalidPayload is returned when an invalidation or snapshot payload
	// is malformed.
	ErrInvalidPayload = errors.New("statesync: invalid payload")
	// ErrInvalidTopic is returned for a topic name that breaks the topic rules
	// (see [CheckTopic]).
	ErrInvalidTopic = errors.New("statesync: invalid topic")
	// ErrMissingDependency is returned by [NewConsumer] when the subscriber,
	// provider or applier is nil, and by [NewSource] for a nil store.
	ErrMissingDependency = errors.New("statesync: missing dependency")
	// ErrInvalidThrottle is returned by [NewConsumer] for negative durations
	// or for throttling that would never refresh.
	ErrInvalidThrottle = errors.New("statesync: invalid throttle options")
	// ErrInvalidRetry is returned by [NewConsumer] for a
	// [ConsumerOptions.Retry] policy with negative or out-of-range values.
	ErrInvalidRetry = errors.New("statesync: invalid retry policy")
	// ErrStartAfterStop is returned by [Consumer.Start] on a handle that was
	// stopped: a handle is single-use.
	ErrStartAfterStop = errors.New("statesync: start called after stop")
	// ErrStopped is returned by [Consumer.Start] when [Consumer.Stop] ran
	// before start-up finished, and by [Consumer.Offer] on a
	// stopped handle.
	ErrStopped = errors.New("statesync: consumer stopped")
	// ErrConflict is returned when a compare-and-set write finds another
	// revision than the one expected. The error is a *[ConflictError].
	ErrConflict = errors.New("statesync: revision conflict")
	// ErrClosed is returned by a [Source] or [Store] used after Close.
	ErrClosed = errors.New("statesync: closed")
)

// A Phase names the step of the sync cycle in which an error happened.
type Phase string

// The phases. There is no throttle phase: throttle options are checked by
// [NewConsumer], and the scheduler cannot fail afterwards.
const (
	// PhaseStart: Start could not finish because its context ended.
	PhaseStart Phase = "start"
	// PhaseSubscribe: the Subscriber failed.
	PhaseSubscribe Phase = "subscribe"
	// PhaseInvalidation: an invalidation could not be handled (a raw payload
	// that is not JSON, or a ShouldRefresh panic).
	PhaseInvalidation Phase = "invalidation"
	// PhaseGetSnapshot: the Provider failed, panicked or timed out.
	PhaseGetSnapshot Phase = "getSnapshot"
	// PhaseApply: the Applier failed or panicked.
	PhaseApply Phase = "apply"
	// PhaseProtocol: an invalidation or snapshot broke the protocol.
	PhaseProtocol Phase = "protocol"
)

// An Error is the error a [Consumer] reports to [ConsumerOptions.OnError]
// and returns from Start, Refresh and Offer. It says in which phase the
// failure happened and carries what is known of the context. Read it with
// [errors.As]; the cause is reached with [errors.Is] through Unwrap.
type Error struct {
	Phase Phase
	// Topic is the consumer's topic.
	Topic string
	// Err is the cause.
	Err error
	// LocalRevision is the consumer's revision when the error happened.
	LocalRevision Revision
	// EventRevision is the revision of the invalidation involved, as sent
	// (possibly non-canonical); empty if none.
	EventRevision string
	// EventTopic is the topic of the invalidation involved, as sent.
	EventTopic string
	// SnapshotRevision is the revision of the snapshot involved, as sent;
	// empty if none or if it was not a string.
	SnapshotRevision string
	// SourceID is the invalidation's source id, if any.
	SourceID string
	// SourceEvent is the raw invalidation payload, for protocol errors.
	SourceEvent json.RawMessage
	// Attempt is the 1-based number of the failed provider attempt when a
	// retry policy is in use; 0 otherwise.
	Attempt int
	// WillRetry reports whether another attempt is scheduled.
	WillRetry bool
	// NextDelay is the delay before the next attempt, if WillRetry.
	NextDelay time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("statesync: ")
	b.WriteString(string(e.Phase))
	b.WriteString(" error on topic ")
	b.WriteString(fmt.Sprintf("%q", e.Topic))
	if e.Attempt > 0 {
		fmt.Fprintf(&b, " (attempt %d", e.Attempt)
		if e.WillRetry {
			fmt.Fprintf(&b, ", retry in %v", e.NextDelay)
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("unknown error")
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// A ConflictError is returned by compare-and-set writes whose expected
// revision is not the current one. It wraps [ErrConflict].
type ConflictError struct {
	Topic string
	// Expected is the revision the writer expected.
	Expected Revision
	// Current is the topic's revision at the time of the write.
	Current Revision
	// Epoch is the store's epoch.
	Epoch string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("statesync: revision conflict on topic %q: expected %d, current %d", e.Topic, e.Expected, e.Current)
}

// Unwrap returns [ErrConflict].
func (e *ConflictError) Unwrap() error { return ErrConflict }

// A PanicError is the error made of a panic in user code (a provider,
// applier, filter or callback), which the engine recovers.
type PanicError struct {
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("statesync: panic: %v", e.Value) }

// IsRetryable reports whether err is worth retrying: it is not nil, not
// [context.Canceled] or [context.DeadlineExceeded], not a protocol or
// validation error, not a conflict, and not [ErrStopped] or [ErrClosed].
// Errors that implement interface{ Retryable() bool } decide for
// themselves.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrNonCanonicalRevision), errors.Is(err, ErrInvalidPayload),
		errors.Is(err, ErrInvalidTopic), errors.Is(err, ErrConflict),
		errors.Is(err, ErrStopped), errors.Is(err, ErrClosed):
		return false
	}
	return true
}
