package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Sentinel errors. Each is matched with [errors.Is]; the errors returned by
// this package wrap them with detail.
var (
	// ErrNotObject is returned by a strict [Map] or [Struct] when the
	// snapshot data, or the result of ToState, is not a JSON object: null,
	// an array, a string, a number or a boolean. The state is
	// left unchanged.
	ErrNotObject = errors.New("apply: toState(data) must return a plain object (top-level state)")
	// ErrConflictingKeyFilters is returned by [NewMap] and [NewStruct] when
	// both PickKeys and OmitKeys are set.
	ErrConflictingKeyFilters = errors.New("apply: PickKeys and OmitKeys are mutually exclusive")
	// ErrUnknownKey is returned by [NewStruct] when PickKeys or OmitKeys
	// names a key that is not a JSON field of the struct.
	ErrUnknownKey = errors.New("apply: unknown key")
	// ErrInvalidOptions is returned by the constructors for an unknown
	// [Mode] or a state type they cannot handle.
	ErrInvalidOptions = errors.New("apply: invalid options")
	// ErrCallbackPanicked is returned by Apply when an OnChange callback
	// panicked. The error also wraps a *[statesync.PanicError] holding the
	// panic value. The new state had been stored before the callbacks ran,
	// and the other callbacks still ran.
	ErrCallbackPanicked = errors.New("apply: OnChange callback panicked")
)

// A Mode says how a [Map] or [Struct] applies a snapshot.
type Mode int

const (
	// Patch, the default, sets each allowed key present in the snapshot and
	// leaves every other key as it is. It is shallow: a nested
	// value is replaced whole, never merged.
	Patch Mode = iota
	// Replace makes the allowed keys exactly those of the snapshot: allowed
	// keys absent from it are removed (a Map) or reset to their zero value
	// (a Struct), and keys the filter excludes keep their values.
	Replace
)

// String returns "patch" or "replace".
func (m Mode) String() string {
	switch m {
	case Patch:
		return "patch"
	case Replace:
		return "replace"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// keyFilter is the PickKeys/OmitKeys filter. With neither, every key is
// allowed.
type keyFilter struct {
	pick map[string]bool // non-nil: allowlist
	omit map[string]bool // non-nil: denylist
}

func newKeyFilter(mode Mode, pick, omit []string) (keyFilter, error) {
	var f keyFilter
	if mode != Patch && mode != Replace {
		return f, fmt.Errorf("%w: mode %v", ErrInvalidOptions, mode)
	}
	if len(pick) > 0 && len(omit) > 0 {
		return f, ErrConflictingKeyFilters
	}
	if len(pick) > 0 {
		f.pick = set(pick)
	}
	if len(omit) > 0 {
		f.omit = set(omit)
	}
	return f, nil
}

func set(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func (f keyFilter) allowed(key string) bool {
	switch {
	case f.pick != nil:
		return f.pick[key]
	case f.omit != nil:
		return !f.omit[key]
	}
	return true
}

// names returns the keys the filter names, for checking them.
func (f keyFilter) names() map[string]bool {
	if f.pick != nil {
		return f.pick
	}
	return f.omit
}

// object returns the top-level fields of data, the snapshot data or the
// result of toState. ok is false if the value is not a JSON
// object; kind then says what it is.
func object[C any](data json.RawMessage, toState func(json.RawMessage, C) (any, error), target C) (fields map[string]json.RawMessage, kind string, err error) {
	if toState != nil {
		res, err := toState(data, target)
		if err != nil {
			return nil, "", err // as is
		}
		if data, err = encode(res); err != nil {
			return nil, "", fmt.Errorf("apply: encoding the result of ToState: %w", err)
		}
	}
	if kind := jsonKind(data); kind != "object" {
		return nil, kind, nil
	}
	// Unmarshal copies the raw values: nothing of data is kept.
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, "", err
	}
	return fields, "object", nil
}

// encode turns the result of ToState into JSON.
func encode(res any) (json.RawMessage, error) {
	switch r := res.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		return r, nil
	case []byte:
		return r, nil
	}
	return json.Marshal(res)
}

// jsonKind names the kind of the JSON value in data, by its first byte.
func jsonKind(data []byte) string {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return "null" // nil Data stands for null
	}
	switch data[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

func notObject(kind string) error {
	return fmt.Errorf("%w: got %s", ErrNotObject, kind)
}
