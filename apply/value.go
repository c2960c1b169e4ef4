package apply

import (
	"context"
	"encoding/json"

	"github.com/statesync-go/statesync"
)

// A Value holds the state of a topic as a Go value of type T, replaced
// whole by each snapshot. It is the [statesync.Applier] to use when the
// state is one value, such as a struct decoded from the topic's JSON.
//
// Reads are lock-free: [Value.Load] is one atomic load, and the T it returns
// is never modified afterwards, so readers on any number of goroutines
// never see a half-applied state. Treat the maps, slices and pointers
// inside it as read-only.
//
// A Value is safe for concurrent use. Make one with [NewValue]; the zero
// value is not usable.
type Value[T any] struct {
	c       core[T]
	toState func(json.RawMessage) (T, error)
}

// ValueOptions configures a [Value]. The zero value gives the defaults.
type ValueOptions[T any] struct {
	// ToState maps snapshot data to the state. It runs on the applying
	// goroutine before anything is stored; an error it returns is returned
	// by Apply as is, and the state stays unchanged. The data must not be
	// retained. Nil means decoding the data into a new T with
	// [json.Unmarshal].
	ToState func(data json.RawMessage) (T, error)
	// Initial is the value Load returns before the first snapshot. With the
	// default decoding, a snapshot whose data is null (a topic never written,
	// or deleted) sets the zero T, not Initial.
	Initial T
}

var _ statesync.Applier = (*Value[int])(nil)

// NewValue returns a Value holding opts.Initial at revision 0. A nil opts
// gives the defaults.
func NewValue[T any](opts *ValueOptions[T]) *Value[T] {
	v := &Value[T]{toState: decodeValue[T]}
	var initial T
	if opts != nil {
		if opts.ToState != nil {
			v.toState = opts.ToState
		}
		initial = opts.Initial
	}
	v.c.init(initial)
	return v
}

func decodeValue[T any](data json.RawMessage) (T, error) {
	var v T
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	err := json.Unmarshal(data, &v) // a new T: nothing aliases data
	return v, err
}

// Apply implements [statesync.Applier]: it maps s.Data to a T, stores it
// with s.Revision, and then notifies the change (see [Value.OnChange] and
// [Value.Changes]). If the mapping fails it returns the error and nothing
// changes. If an OnChange callback panics, Apply returns an error wrapping
// [ErrCallbackPanicked], although the value has been stored.
func (v *Value[T]) Apply(ctx context.Context, s statesync.Snapshot) error {
	nv, err := v.toState(s.Data)
	if err != nil {
		return err
	}
	return v.c.commit(s.Revision, func(T) (T, error) { return nv, nil })
}

// Load returns the current value: the last one applied, or the initial value
// before any. It never blocks.
func (v *Value[T]) Load() T { return v.c.load().v }

// Revision returns the revision of the last snapshot applied, 0 before any.
// It never blocks.
func (v *Value[T]) Revision() statesync.Revision { return v.c.load().rev }

// OnChange registers fn to be called after each successful Apply with the
// previous and the new value, and returns a function that unregisters it.
// fn is not called for applies that begin after remove returns.
//
// Callbacks run synchronously on the goroutine that calls Apply (a
// [statesync.Consumer]'s refresh goroutine), after the new value is
// stored and outside every lock of the Value, in registration order. They
// must be quick: the consumer applies nothing else until they return. They
// may call any method of the Value, including Apply. A panic in fn is
// recovered; the remaining callbacks still run and Apply returns an error
// wrapping [ErrCallbackPanicked].
func (v *Value[T]) OnChange(fn func(old, new T)) (remove func()) { return v.c.onChange(fn) }

// Changes returns a channel that holds the latest value applied. It has a
// capacity of 1, and each Apply replaces a value not yet received by the new
// one, so Apply never blocks on it and a slow reader skips to the latest
// value rather than reading a queue. If a snapshot has been applied
// already, the channel holds the current value at once. The channel is
// closed once ctx is done.
func (v *Value[T]) Changes(ctx context.Context) <-chan T { return v.c.changes(ctx) }

// Wait blocks until a snapshot has been applied and pred, called with the
// current value and its revision, returns true, and returns that value. A
// nil pred waits only for the first snapshot. pred runs on the caller's
// goroutine, once for the value current at the call and once per later
// apply (values applied and replaced between two checks are skipped). If
// ctx ends first, Wait returns the zero T and ctx.Err().
func (v *Value[T]) Wait(ctx context.Context, pred func(v T, rev statesync.Revision) bool) (T, error) {
	return v.c.wait(ctx, pred)
}
