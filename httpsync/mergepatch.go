package httpsync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/statesync-go/statesync"
)

// MergePatch applies the JSON merge patch patch to the JSON document target
// and returns the result, as RFC 7396 defines it: an object patch sets each
// of its members in target (recursively for objects) and removes those it
// sets to null; any other patch replaces target whole. A nil or empty target
// stands for null.
//
// Members keep their order: target's first, then the new ones in the order
// of the patch; a name repeated in an object keeps its first position and
// its last value. Numbers and strings are copied verbatim, never re-encoded.
// The result is compact JSON. An invalid target or patch returns an error
// wrapping [statesync.ErrInvalidPayload].
//
// The cost is linear in the size of target and patch, however deeply they
// nest: each is scanned once, its objects indexed in one tree, and the
// result written in one pass.
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
	target, patch = bytes.TrimSpace(target), bytes.TrimSpace(patch) // JSON white space only, now
	if patch[0] != '{' {
		return appendCompact(make([]byte, 0, len(patch)), patch), nil
	}
	// Both are valid JSON from here on, nested at most 10,000 deep (the
	// limit of json.Valid), which bounds the recursion below.
	p, _ := parseNode(patch, 0)
	t, _ := parseNode(target, 0)
	return appendMerged(make([]byte, 0, len(target)+len(patch)), t, p), nil
}

// An mpNode is a JSON value of a merge: its text and, for an object, its
// members, parsed once. Arrays and scalars are kept as text only.
type mpNode struct {
	raw     []byte // the value's text, as in the input
	object  bool
	members []mpMember     // objects: in order, each name once (its last value)
	index   map[string]int // objects with many members: name -> members index
}

// An mpMember is a member of an object.
type mpMember struct {
	name    string // decoded
	rawName []byte // as in the input, quotes included
	value   *mpNode
}

// mpIndexAt is the member count from which an object is indexed by a map
// rather than searched.
const mpIndexAt = 8

// lookup returns the index of the member named name, or -1.
func (n *mpNode) lookup(name string) int {
	if n.index != nil {
		if i, ok := n.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range n.members {
		if n.members[i].name == name {
			return i
		}
	}
	return -1
}

// add adds a member, a repeated name keeping its first position and taking
// the new value.
func (n *mpNode) add(m mpMember) {
	if i := n.lookup(m.name); i >= 0 {
		n.members[i].value = m.value
		return
	}
	n.members = append(n.members, m)
	switch {
	case n.index != nil:
		n.index[m.name] = len(n.members) - 1
	case len(n.members) >= mpIndexAt:
		n.index = make(map[string]int, 2*len(n.members))
		for i := range n.members {
			n.index[n.members[i].name] = i
		}
	}
}

// parseNode parses the valid JSON value starting at b[i] (not a space) and
// returns it with the index just after it.
func parseNode(b []byte, i int) (*mpNode, int) {
	start := i
	if b[i] != '{' {
		i = skipValue(b, i)
		return &mpNode{raw: b[start:i]}, i
	}
	n := &mpNode{object: true}
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		j := skipString(b, i)
		m := mpMember{rawName: b[i:j]}
		m.name = decodeName(m.rawName)
		i = skipSpace(b, skipSpace(b, j)+1) // past the colon
		m.value, i = parseNode(b, i)
		n.add(m)
		i = skipSpace(b, i)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	i++
	n.raw = b[start:i]
	return n, i
}

// appendMerged appends the merge of patch into target (nil: absent) to out.
func appendMerged(out []byte, target, patch *mpNode) []byte {
	if !patch.object {
		return appendCompact(out, patch.raw)
	}
	type slot struct {
		m       mpMember // the name, and the target's value if any
		patch   *mpNode  // the patch's value, if any
		removed bool
	}
	var slots []slot
	if target != nil && target.object {
		slots = make([]slot, len(target.members), len(target.members)+len(patch.members))
		for i, m := range target.members {
			slots[i].m = m
		}
	} else {
		target = nil
	}
	for _, pm := range patch.members {
		i := -1
		if target != nil {
			i = target.lookup(pm.name) // slots[:len(target.members)] mirror target.members
		}
		switch {
		case isNullJSON(pm.value.raw):
			if i >= 0 {
				slots[i].removed = true
			}
		case i >= 0:
			slots[i].patch = pm.value
		default:
			slots = append(slots, slot{m: mpMember{name: pm.name, rawName: pm.rawName}, patch: pm.value})
		}
	}
	out = append(out, '{')
	first := true
	for _, s := range slots {
		if s.removed {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendName(out, s.m)
		out = append(out, ':')
		if s.patch == nil {
			out = appendCompact(out, s.m.value.raw)
		} else {
			out = appendMerged(out, s.m.value, s.patch)
		}
	}
	return append(out, '}')
}

// appendName appends the name of m as a JSON string: its text when that is
// how encoding/json (without HTML escaping) writes it, else re-encoded.
func appendName(out []byte, m mpMember) []byte {
	inner := m.rawName[1 : len(m.rawName)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) &&
		!bytes.Contains(inner, []byte("\u2028")) && !bytes.Contains(inner, []byte("\u2029")) {
		return append(out, m.rawName...)
	}
	var buf bytes.Buffer
	writeJSONString(&buf, m.name)
	return append(out, buf.Bytes()...)
}

// decodeName decodes the valid JSON string raw, quotes included.
func decodeName(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(raw, &s) // valid: cannot fail
	return s
}

// appendCompact appends the valid JSON text v without the white space
// outside its strings, as json.Compact does.
func appendCompact(out, v []byte) []byte {
	inString := false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			out = append(out, v[start:i]...)
			start = i + 1
		}
	}
	return append(out, v[start:]...)
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just after the valid JSON string at b[i].
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index just after the valid JSON value at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

func isNullJSON(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// writeJSONString writes s as a JSON string, without HTML escaping.
func writeJSONString(out *bytes.Buffer, s string) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	out.Truncate(out.Len() - 1) // Encode appends a newline
}

// jsonDepth returns how deeply the JSON text b nests arrays and objects (0
// for a scalar, 1 for {} or [1], 2 for {"a":[]}), stopping as soon as it
// exceeds limit (then it returns limit+1). It is one pass over the bytes
// that minds strings and their escapes but checks nothing else: run it
// before parsing, to refuse deep input cheaply.
func jsonDepth(b []byte, limit int) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > limit {
					return deepest
				}
			}
		case '}', ']':
			depth--
		}
	}
	return deepest
}
