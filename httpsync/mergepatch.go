package httpsync

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/statesync-go/statesync"
)

// MergePatch applies the JSON merge patch patch to the JSON document target
// and returns the result, as RFC 7396 defines it: an object patch sets each
// of its members in target (recursively for objects) and removes those it
// sets to null; any other patch replaces target whole. A nil or empty target
// stands for null.
//
// Members keep their order: target's first, then the new ones in the order
// of the patch. Numbers and strings are copied verbatim, never re-encoded.
// The result is compact JSON. An invalid target or patch returns an error
// wrapping [statesync.ErrInvalidPayload].
func MergePatch(target, patch []byte) ([]byte, error) {
	if len(bytes.TrimSpace(target)) == 0 {
		target = []byte("null")
	}
	if !json.Valid(target) {
		return nil, fmt.Errorf("%w: merge patch target is not valid JSON", statesync.ErrInvalidPayload)
	}
	if !json.Valid(patch) {
		return nil, fmt.Errorf("%w: merge patch is not valid JSON", statesync.ErrInvalidPayload)
	}
	var out bytes.Buffer
	mergeInto(&out, bytes.TrimSpace(target), bytes.TrimSpace(patch))
	return out.Bytes(), nil
}

// member is one name/value pair of a JSON object, its value raw.
type member struct {
	name  string
	value []byte
}

// mergeInto writes MergePatch(target, patch) to out. Both are valid JSON
// without surrounding space; target may be nil for "absent".
func mergeInto(out *bytes.Buffer, target, patch []byte) {
	if !isObject(patch) {
		_ = json.Compact(out, patch) // valid JSON always compacts
		return
	}
	var members []member
	index := map[string]int{}
	if isObject(target) {
		members, index = objectMembers(target)
	}
	patchMembers, _ := objectMembers(patch)
	for _, pm := range patchMembers {
		i, exists := index[pm.name]
		if isNullJSON(pm.value) {
			if exists {
				members[i].value = nil // removed
				delete(index, pm.name)
			}
			continue
		}
		var v bytes.Buffer
		if exists {
			mergeInto(&v, members[i].value, pm.value)
			members[i].value = v.Bytes()
			continue
		}
		mergeInto(&v, nil, pm.value)
		index[pm.name] = len(members)
		members = append(members, member{name: pm.name, value: v.Bytes()})
	}
	out.WriteByte('{')
	first := true
	for _, m := range members {
		if m.value == nil {
			continue
		}
		if !first {
			out.WriteByte(',')
		}
		first = false
		writeJSONString(out, m.name)
		out.WriteByte(':')
		_ = json.Compact(out, m.value)
	}
	out.WriteByte('}')
}

// objectMembers returns the members of a valid JSON object in order, a
// repeated name keeping its first position and its last value (the value
// encoding/json would decode), with an index by name.
func objectMembers(obj []byte) ([]member, map[string]int) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	_, _ = dec.Token() // {
	var members []member
	index := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break // cannot happen: obj is valid
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		v = bytes.TrimSpace(v)
		if i, ok := index[name]; ok {
			members[i].value = v
			continue
		}
		index[name] = len(members)
		members = append(members, member{name: name, value: v})
	}
	return members, index
}

func isObject(b []byte) bool { return len(b) > 0 && b[0] == '{' }

func isNullJSON(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// writeJSONString writes s as a JSON string, without HTML escaping.
func writeJSONString(out *bytes.Buffer, s string) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	out.Truncate(out.Len() - 1) // Encode appends a newline
}
