package apply

import (
	"cmp"
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"github.com/statesync-go/statesync"
)

// A Struct holds the state of a topic as a struct of type S whose
// top-level JSON fields are the state's keys. Field names
// follow encoding/json: the name in the json tag or else the Go field name,
// fields of embedded structs promoted, fields tagged "-" and unexported
// fields left out. A snapshot key matches a field only by its exact name
// (encoding/json would also accept another case); keys matching no field
// are ignored.
//
// In [Patch] mode a snapshot sets the allowed fields present in it as JSON
// keys (presence, not zero values, decides: {"count":0} sets count to 0)
// and leaves the others as they are. In [Replace] mode it also resets the
// allowed fields absent from it to their zero value. Fields the filter
// excludes keep their values in both modes. Each present field is decoded
// into a fresh zero value and replaced whole (a nested struct, map or slice
// is never merged); a JSON null leaves the field at its zero
// value.
//
// Each Apply publishes a new S (copy-on-write): [Struct.Load] returns a
// copy, and the maps, slices and pointers in it are never modified
// afterwards; treat them as read-only.
//
// A Struct is safe for concurrent use. Make one with [NewStruct]; the zero
// value is not usable.
type Struct[S any] struct {
	c       core[S]
	mode    Mode
	filter  keyFilter
	lenient bool
	toState func(json.RawMessage, *Struct[S]) (any, error)
	fields  map[string]*structField // by JSON name
}

// A structField is a JSON field of S: where it is and how to reach it.
type structField struct {
	name  string
	index []int // as for reflect.Value.FieldByIndex
}

// StructOptions configures a [Struct]. The zero value means Patch mode,
// strict, no mapping, every key allowed.
type StructOptions[S any] struct {
	// Mode is Patch (the default) or Replace.
	Mode Mode
	// PickKeys, if not empty, allows only these JSON field names.
	PickKeys []string
	// OmitKeys, if not empty, allows every field but these. Setting both
	// PickKeys and OmitKeys is an error ([ErrConflictingKeyFilters]); a name
	// that is not a JSON field of S is an error ([ErrUnknownKey]).
	OmitKeys []string
	// Lenient makes Apply ignore a snapshot whose data (or ToState result)
	// is not a JSON object; see [MapOptions.Lenient].
	Lenient bool
	// ToState maps the snapshot data to the new top-level state; see
	// [MapOptions.ToState]. target is the Struct itself.
	ToState func(data json.RawMessage, target *Struct[S]) (any, error)
	// Initial is the state before the first snapshot.
	Initial S
}

var _ statesync.Applier = (*Struct[struct{}])(nil)

// NewStruct returns a Struct holding opts.Initial at revision 0. A nil opts
// gives the defaults. It returns an error wrapping [ErrInvalidOptions] if S
// is not a struct type, or if *S decodes itself (implements
// [json.Unmarshaler] or [encoding.TextUnmarshaler]: use a [Value] for
// such a type); [ErrConflictingKeyFilters] if both PickKeys and OmitKeys are
// set; [ErrUnknownKey] if one of them names no JSON field of S;
// [ErrInvalidOptions] for an unknown Mode.
func NewStruct[S any](opts *StructOptions[S]) (*Struct[S], error) {
	if opts == nil {
		opts = &StructOptions[S]{}
	}
	t := reflect.TypeFor[S]()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v is not a struct type", ErrInvalidOptions, t)
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(reflect.TypeFor[json.Unmarshaler]()) || pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return nil, fmt.Errorf("%w: %v decodes itself; use a Value", ErrInvalidOptions, t)
	}
	f, err := newKeyFilter(opts.Mode, opts.PickKeys, opts.OmitKeys)
	if err != nil {
		return nil, err
	}
	s := &Struct[S]{mode: opts.Mode, filter: f, lenient: opts.Lenient, toState: opts.ToState, fields: jsonFields(t)}
	for _, k := range slices.Sorted(mapsKeys(f.names())) {
		if s.fields[k] == nil {
			return nil, fmt.Errorf("%w: %q is not a JSON field of %v", ErrUnknownKey, k, t)
		}
	}
	s.c.init(opts.Initial)
	return s, nil
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Apply implements [statesync.Applier]. It maps s.Data through ToState if
// set, checks that the result is a JSON object, decodes the allowed fields
// present in it into a new S, and publishes that S with s.Revision (see
// [Struct] for the modes). Nothing changes if Apply returns an error, except
// when an OnChange callback panicked (see [Value.OnChange]).
func (s *Struct[S]) Apply(ctx context.Context, snap statesync.Snapshot) error {
	fields, kind, err := object(snap.Data, s.toState, s)
	if err != nil {
		return err
	}
	if fields == nil {
		if s.lenient {
			return nil
		}
		return notObject(kind)
	}
	present := make([]*structField, 0, len(fields))
	selected := make(map[string]json.RawMessage, len(fields))
	for k, raw := range fields {
		if f := s.fields[k]; f != nil && s.filter.allowed(k) {
			present = append(present, f)
			selected[k] = raw
		}
	}
	// Decode the selected fields into a zero S outside the lock (their
	// UnmarshalJSON methods are user code), as one object so that tag
	// options such as ",string" apply. Only exact names reach the decoder,
	// so its case-insensitive matching cannot pick another field.
	fresh := reflect.New(reflect.TypeFor[S]()).Elem()
	if len(selected) > 0 {
		obj, err := json.Marshal(selected)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(obj, fresh.Addr().Interface()); err != nil {
			return err
		}
	}
	var absent []*structField
	if s.mode == Replace {
		for k, f := range s.fields {
			if _, ok := selected[k]; !ok && s.filter.allowed(k) {
				absent = append(absent, f)
			}
		}
	}
	return s.c.commit(snap.Revision, func(old S) (S, error) {
		next := reflect.New(reflect.TypeFor[S]()).Elem()
		next.Set(reflect.ValueOf(&old).Elem())
		for _, f := range present {
			dst := field(next, f.index, true)
			if src, err := fresh.FieldByIndexErr(f.index); err == nil {
				dst.Set(src)
			} else {
				dst.SetZero() // null for a field behind an embedded pointer
			}
		}
		for _, f := range absent {
			if v := field(next, f.index, false); v.IsValid() {
				v.SetZero()
			}
		}
		return next.Interface().(S), nil
	})
}

// field returns the field of v at index for setting. v is a new copy of the
// state, but the structs its embedded pointers point to are shared with the
// previous state: each is copied before it is written to. A nil embedded
// pointer is allocated if alloc is set; otherwise field returns the zero
// Value, as the field is already absent.
func field(v reflect.Value, index []int, alloc bool) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !alloc {
					return reflect.Value{}
				}
				v.Set(reflect.New(v.Type().Elem()))
			} else {
				cp := reflect.New(v.Type().Elem())
				cp.Elem().Set(v.Elem())
				v.Set(cp)
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// Load returns a copy of the current state. It never blocks.
func (s *Struct[S]) Load() S { return s.c.load().v }

// Revision returns the revision of the last snapshot that changed the
// state, 0 before any.
func (s *Struct[S]) Revision() statesync.Revision { return s.c.load().rev }

// Keys returns the JSON field names of S, the keys a snapshot can set,
// sorted.
func (s *Struct[S]) Keys() []string {
	keys := make([]string, 0, len(s.fields))
	for k := range s.fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// OnChange registers fn to be called after each successful Apply with the
// previous and the new state; see [Value.OnChange].
func (s *Struct[S]) OnChange(fn func(old, new S)) (remove func()) { return s.c.onChange(fn) }

// Changes returns a channel that holds the latest state applied; see
// [Value.Changes].
func (s *Struct[S]) Changes(ctx context.Context) <-chan S { return s.c.changes(ctx) }

// Wait blocks until a snapshot has been applied and pred returns true for
// the current state and revision, and returns that state; see [Value.Wait].
func (s *Struct[S]) Wait(ctx context.Context, pred func(v S, rev statesync.Revision) bool) (S, error) {
	return s.c.wait(ctx, pred)
}

// jsonFields returns the fields encoding/json decodes into for a struct
// type t, by JSON name, with its rules: the json tag's name or else the Go
// name; fields of embedded structs promoted, the shallowest winning and a
// tagged one breaking a tie at the same depth, a remaining tie hiding the
// name; unexported and "-" fields left out. Fields reached through an
// unexported embedded pointer are left out too: encoding/json cannot set
// them either.
func jsonFields(t reflect.Type) map[string]*structField {
	type candidate struct {
		structField
		tagged  bool
		blocked bool // reached through an unexported embedded pointer
	}
	type scan struct {
		typ     reflect.Type
		index   []int
		blocked bool // reached through an unexported embedded pointer
	}
	var (
		all     []candidate
		next    = []scan{{typ: t}}
		visited = map[reflect.Type]bool{}
	)
	for len(next) > 0 {
		current := next
		next = nil
		count := map[reflect.Type]int{}
		for _, sc := range current {
			count[sc.typ]++
		}
		for _, sc := range current {
			if visited[sc.typ] {
				continue
			}
			visited[sc.typ] = true
			for i := range sc.typ.NumField() {
				sf := sc.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTagName(name) {
					name = ""
				}
				index := append(slices.Clone(sc.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					c := candidate{structField{name: cmp.Or(name, sf.Name), index: index}, name != "", sc.blocked}
					all = append(all, c)
					if count[sc.typ] > 1 { // the same type twice at one depth: the names annihilate
						all = append(all, c)
					}
					continue
				}
				blocked := sc.blocked || (!sf.IsExported() && sf.Type.Kind() == reflect.Pointer)
				next = append(next, scan{typ: ft, index: index, blocked: blocked})
			}
		}
	}
	slices.SortStableFunc(all, func(a, b candidate) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return 0
	})
	fields := map[string]*structField{}
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		group := all[i:j]
		dominant := len(group) == 1 || len(group[0].index) < len(group[1].index) || group[0].tagged != group[1].tagged
		if dominant && !group[0].blocked {
			fields[group[0].name] = &group[0].structField
		}
		i = j
	}
	return fields
}

// validTagName is encoding/json's rule for a usable name in a json tag.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
