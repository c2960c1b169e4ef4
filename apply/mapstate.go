package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/statesync-go/statesync"
)

// A Map holds the state of a topic as a map from the top-level keys of the
// snapshot's JSON object to values of type V. Use Map[any] for values as
// [json.Unmarshal] decodes them into an interface (float64, string,
// map[string]any, …), Map[json.RawMessage] to keep each value's JSON
// exactly, or a concrete V when every value has one type.
//
// A snapshot changes the keys its [MapOptions] allow, in [Patch] or
// [Replace] mode. Each Apply publishes a new map built from the previous
// one (copy-on-write): a map returned by [Map.Load] is never
// modified afterwards, so readers need no lock and never see a
// half-applied state. Treat it, and the values in it, as read-only.
//
// A Map is safe for concurrent use. Make one with [NewMap]; the zero value
// is not usable.
type Map[V any] struct {
	c       core[map[string]V]
	mode    Mode
	filter  keyFilter
	lenient bool
	toState func(json.RawMessage, *Map[V]) (any, error)
}

// MapOptions configures a [Map]. The zero value means Patch mode, strict, no
// mapping, every key allowed.
type MapOptions[V any] struct {
	// Mode is Patch (the default) or Replace.
	Mode Mode
	// PickKeys, if not empty, allows only these keys: the others in a
	// snapshot are ignored, and Replace keeps their current values.
	PickKeys []string
	// OmitKeys, if not empty, allows every key but these. Setting both
	// PickKeys and OmitKeys is an error ([ErrConflictingKeyFilters]).
	OmitKeys []string
	// Lenient makes Apply ignore, without error, a snapshot whose data (or
	// ToState result) is not a JSON object: the Map, its revision included,
	// stays as it is. By default such a snapshot fails with [ErrNotObject].
	//
	// A topic never written, or deleted, has the data null: a strict Map
	// fails on it, so a [statesync.Consumer] cannot start on such a topic.
	// Set Lenient, or map null to {} in ToState, if that can happen.
	Lenient bool
	// ToState maps the snapshot data to the new top-level state before the
	// filter applies; target is the Map itself. The result may be a map, a
	// struct, json.RawMessage or any value that encodes to a JSON object; it
	// is converted through JSON, so the Map never shares memory with it. An
	// error is returned by Apply as is. ToState runs on the applying
	// goroutine, outside the Map's locks; it must not retain data. Nil means
	// the data itself.
	ToState func(data json.RawMessage, target *Map[V]) (any, error)
	// Initial is the state before the first snapshot; it is copied.
	Initial map[string]V
}

var _ statesync.Applier = (*Map[any])(nil)

// NewMap returns a Map holding a copy of opts.Initial (empty if nil) at
// revision 0. A nil opts gives the defaults. It returns an error wrapping
// [ErrConflictingKeyFilters] if both PickKeys and OmitKeys are set,
// or [ErrInvalidOptions] for an unknown Mode.
func NewMap[V any](opts *MapOptions[V]) (*Map[V], error) {
	if opts == nil {
		opts = &MapOptions[V]{}
	}
	f, err := newKeyFilter(opts.Mode, opts.PickKeys, opts.OmitKeys)
	if err != nil {
		return nil, err
	}
	m := &Map[V]{mode: opts.Mode, filter: f, lenient: opts.Lenient, toState: opts.ToState}
	initial := maps.Clone(opts.Initial)
	if initial == nil {
		initial = map[string]V{}
	}
	m.c.init(initial)
	return m, nil
}

// Apply implements [statesync.Applier]. It maps s.Data through ToState if
// set, checks that the result is a JSON object, decodes each allowed key's
// value into a V, and publishes the new map with s.Revision: in Patch mode
// the previous map with those keys set, in Replace mode the keys the filter
// excludes from the previous map plus those of the snapshot. Keys the filter
// excludes in the snapshot are ignored.
//
// Nothing changes if Apply returns an error, except when an OnChange
// callback panicked (see [Map.OnChange]).
func (m *Map[V]) Apply(ctx context.Context, s statesync.Snapshot) error {
	fields, kind, err := object(s.Data, m.toState, m)
	if err != nil {
		return err
	}
	if fields == nil {
		if m.lenient {
			return nil
		}
		return notObject(kind)
	}
	// Decode outside the lock: UnmarshalJSON methods of V are user code.
	set := make(map[string]V, len(fields))
	for k, raw := range fields {
		if !m.filter.allowed(k) {
			continue
		}
		var v V
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("apply: key %q: %w", k, err)
		}
		set[k] = v
	}
	return m.c.commit(s.Revision, func(old map[string]V) (map[string]V, error) {
		next := make(map[string]V, len(old)+len(set))
		for k, v := range old {
			if m.mode == Patch || !m.filter.allowed(k) {
				next[k] = v
			}
		}
		maps.Copy(next, set)
		return next, nil
	})
}

// Load returns the current map. It is never modified afterwards: treat it
// as read-only, and clone it (maps.Clone) to change a copy. Load never
// blocks.
func (m *Map[V]) Load() map[string]V { return m.c.load().v }

// Get returns the current value of key and whether the key is present.
func (m *Map[V]) Get(key string) (V, bool) {
	v, ok := m.c.load().v[key]
	return v, ok
}

// Revision returns the revision of the last snapshot that changed the Map,
// 0 before any.
func (m *Map[V]) Revision() statesync.Revision { return m.c.load().rev }

// OnChange registers fn to be called after each successful Apply with the
// previous and the new map, and returns a function that unregisters it. It
// behaves as [Value.OnChange]: callbacks run synchronously on the applying
// goroutine after the new map is published, outside the Map's locks, and
// must be quick; a panic is recovered and reported by Apply as
// [ErrCallbackPanicked]. A snapshot ignored by a Lenient Map is not a
// change.
func (m *Map[V]) OnChange(fn func(old, new map[string]V)) (remove func()) {
	return m.c.onChange(fn)
}

// Changes returns a channel that holds the latest map applied; see
// [Value.Changes].
func (m *Map[V]) Changes(ctx context.Context) <-chan map[string]V { return m.c.changes(ctx) }

// Wait blocks until a snapshot has been applied and pred returns true for
// the current map and revision, and returns that map; see [Value.Wait].
func (m *Map[V]) Wait(ctx context.Context, pred func(m map[string]V, rev statesync.Revision) bool) (map[string]V, error) {
	return m.c.wait(ctx, pred)
}
