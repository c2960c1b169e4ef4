// Package apply holds the appliers of statesync: Go state containers that
// a [statesync.Consumer] keeps up to date, with change notification.
//
// # Model
//
// An applier turns one snapshot into one change of its container; it never
// fetches or subscribes. Give it to [statesync.NewConsumer], which calls
// Apply with each newer snapshot, one at a time:
//
//   - [Value] holds a T decoded from the snapshot's JSON (or mapped by a
//     ToState function), replaced whole by each snapshot.
//   - [Map] holds the snapshot's top-level JSON object as a map[string]V.
//   - [Struct] holds a struct S whose top-level JSON fields are the keys.
//
// Map and Struct take the same options ([MapOptions], [StructOptions]):
// [Patch] (the default) sets the keys present in a
// snapshot and keeps the others, [Replace] makes the keys exactly those of
// the snapshot; PickKeys (an allowlist) or OmitKeys (a denylist) limits the
// keys a snapshot may touch; ToState maps the data first; and in the default
// strict mode, data that is not a JSON object fails with [ErrNotObject]
// (Lenient ignores it).
//
// # Guarantees
//
//   - Reads are lock-free and consistent: each Apply builds a new state and
//     publishes it with one atomic store (copy-on-write), so Load never
//     blocks and never sees a half-applied snapshot, and a state returned
//     earlier is never modified.
//   - Applied state never shares memory with the snapshot: values are
//     decoded afresh on each apply.
//   - A failed Apply changes nothing; the consumer reports its error with
//     phase apply.
//   - Change notification never blocks Apply: OnChange callbacks run after
//     the store on the applying goroutine, outside every lock, and a
//     Changes channel holds only the latest state, replacing a state not
//     yet received. Wait blocks until the state satisfies a condition.
//
// # Caveats
//
//   - OnChange callbacks run on the consumer's refresh goroutine: the
//     consumer applies nothing else until they return, so they must be
//     quick. A panic in one is recovered and returned by Apply (wrapping
//     [ErrCallbackPanicked]) although the state has been stored.
//   - The values inside a state (maps, slices, pointers) are shared by all
//     readers of that state: treat them as read-only.
//   - A topic never written, or deleted, has the data null, which a strict
//     Map or Struct refuses, so a consumer cannot start on it. Set Lenient,
//     or map null to an object in ToState, if that can happen.
//   - A Map[any] decodes JSON numbers as float64, which loses integers above
//     2^53; use Map[json.RawMessage] or a concrete V to keep them.
//   - Map and Struct always publish a new state while the container (the
//     *Map or *Struct) stays the same: a Go map mutated in place could not
//     be shared with lock-free readers.
package apply
