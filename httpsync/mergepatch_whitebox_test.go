package httpsync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// refMergePatch is the straightforward merge MergePatch replaced: each
// level re-decodes its object with encoding/json and compacts the values it
// copies, which costs depth × size. It is the reference of
// FuzzMergePatchReference, byte for byte.
func refMergePatch(target, patch []byte) ([]byte, bool) {
	if len(bytes.TrimSpace(target)) == 0 {
		target = []byte("null")
	}
	if !json.Valid(target) || !json.Valid(patch) {
		return nil, false
	}
	var out bytes.Buffer
	refMergeInto(&out, bytes.TrimSpace(target), bytes.TrimSpace(patch))
	return out.Bytes(), true
}

type refMember struct {
	name  string
	value []byte
}

func refMergeInto(out *bytes.Buffer, target, patch []byte) {
	if len(patch) == 0 || patch[0] != '{' {
		_ = json.Compact(out, patch)
		return
	}
	var members []refMember
	index := map[string]int{}
	if len(target) > 0 && target[0] == '{' {
		members, index = refMembers(target)
	}
	patchMembers, _ := refMembers(patch)
	for _, pm := range patchMembers {
		i, exists := index[pm.name]
		if isNullJSON(pm.value) {
			if exists {
				members[i].value = nil
				delete(index, pm.name)
			}
			continue
		}
		var v bytes.Buffer
		if exists {
			refMergeInto(&v, members[i].value, pm.value)
			members[i].value = v.Bytes()
			continue
		}
		refMergeInto(&v, nil, pm.value)
		index[pm.name] = len(members)
		members = append(members, refMember{name: pm.name, value: v.Bytes()})
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

func refMembers(obj []byte) ([]refMember, map[string]int) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	_, _ = dec.Token()
	var members []refMember
	index := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
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
		members = append(members, refMember{name: name, value: v})
	}
	return members, index
}

// FuzzMergePatchReference checks MergePatch against refMergePatch byte for
// byte: same result (order, verbatim numbers and strings, re-encoded names),
// same refusals.
func FuzzMergePatchReference(f *testing.F) {
	f.Add([]byte(`{"a":"b","c":{"d":1}}`), []byte(`{"a":null,"b":{"c":[1]},"c":{"e":2}}`))
	f.Add([]byte(`{"a":1,"a":{"b":2}}`), []byte(`{"a":{"c":3},"a":{"b":null}}`))
	f.Add([]byte(` { "k" : [ 1 , { "x" : 2 } ] , "\u00e9" : "\u2028" } `), []byte(`{"\u00e9":{"\t":"é"},"a\u2028":1}`))
	f.Add([]byte(`{"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":9,"1":10}`), []byte(`{"9":null,"10":10,"3":{"x":null}}`))
	f.Add([]byte(`{"a":{"a":{"a":{}}}}`), []byte(`{"a":{"a":{"a":{"pad":"x"}}}}`))
	f.Add([]byte("{\"\xff\":1}"), []byte("{\"\xff\":2}"))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		got, err := MergePatch(target, patch)
		want, ok := refMergePatch(target, patch)
		if (err == nil) != ok {
			t.Fatalf("MergePatch(%q, %q) error %v; the reference accepts: %v", target, patch, err, ok)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("MergePatch(%q, %q)\n = %q\nwant %q", target, patch, got, want)
		}
	})
}

// refDepth is the nesting depth of the valid JSON text b, as encoding/json's
// tokens show it (decoding into any would lose a repeated name's value).
func refDepth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

func TestJSONDepth(t *testing.T) {
	for in, want := range map[string]int{
		``: 0, `1`: 0, `"[{"`: 0, `{}`: 1, `[1,2]`: 1, `{"a":[]}`: 2, `[[[]],[]]`: 3,
		`{"a\"[":["\\",{"b":"]]\\\"{"}]}`: 3, `["\u005b"]`: 1,
	} {
		if got := jsonDepth([]byte(in), 100); got != want {
			t.Errorf("jsonDepth(%s) = %d; want %d", in, got, want)
		}
	}
	deep := []byte(strings.Repeat("[", 1000) + strings.Repeat("]", 1000))
	if got := jsonDepth(deep, 256); got != 257 {
		t.Errorf("jsonDepth(1000 deep, 256) = %d; want 257 (it stops past the limit)", got)
	}
}

// FuzzJSONDepth checks jsonDepth against encoding/json's tokens, on valid
// JSON.
func FuzzJSONDepth(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"}]\"["}],"c":{}}`))
	f.Add([]byte(`[[["\\"]],"\\\""]`))
	f.Add([]byte(`"x"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		want := refDepth(b)
		if got := jsonDepth(b, 1<<30); got != want {
			t.Fatalf("jsonDepth(%q) = %d; want %d", b, got, want)
		}
		if want > 0 {
			if got := jsonDepth(b, want-1); got != want {
				t.Fatalf("jsonDepth(%q, %d) = %d; want %d", b, want-1, got, want)
			}
		}
	})
}

// deepPatch returns {"a":{"a":…{"pad":"xxx…"}}} nested depth objects deep
// and about size bytes long: the shape of issue 9's deep PATCH.
func deepPatch(depth, size int) []byte {
	open := strings.Repeat(`{"a":`, depth-1) + `{"pad":"`
	closing := `"}` + strings.Repeat("}", depth-1)
	pad := max(size-len(open)-len(closing), 0)
	return []byte(open + strings.Repeat("x", pad) + closing)
}

// BenchmarkMergePatchDeep merges the deep patch of deepPatch into an empty
// object and into itself, over body sizes and depths: ns/op grows with the
// size (MB/s stays put), not with size × depth.
func BenchmarkMergePatchDeep(b *testing.B) {
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
		for _, depth := range []int{1, 256, 3000, 9000} {
			p := deepPatch(depth, size)
			for _, into := range []string{"empty", "self"} {
				target := []byte(`{}`)
				if into == "self" {
					target = p
				}
				b.Run(fmt.Sprintf("size=%dK/depth=%d/into=%s", size>>10, depth, into), func(b *testing.B) {
					b.SetBytes(int64(len(p) + len(target)))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := MergePatch(target, p); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
