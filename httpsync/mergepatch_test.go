package httpsync_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// The test cases of RFC 7396 Appendix A, and the example of its section 3.
func TestMergePatchRFC7396(t *testing.T) {
	cases := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a": {"b": "c"}}`, `{"a": {"b": "d", "c": null}}`, `{"a":{"b":"d"}}`},
		{`{"a": [{"b":"c"}]}`, `{"a": [1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// Section 3.
		{
			`{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}`,
			`{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}`,
			`{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}`,
		},
		// Beyond the RFC: absent target, verbatim numbers, order, repeated names, escapes.
		{``, `{"a":{"b":null}}`, `{"a":{}}`},
		{`null`, `{"a":1}`, `{"a":1}`},
		{`{"n":1.50e3,"z":1}`, `{"m":12345678901234567890}`, `{"n":1.50e3,"z":1,"m":12345678901234567890}`},
		{`{"a":1,"a":2}`, `{"b":3}`, `{"a":2,"b":3}`},
		{`{"a":1}`, `{"b":1,"b":null}`, `{"a":1}`},
		{`{"<&>":"\u00e9"}`, `{"x\"y":"\n"}`, `{"<&>":"\u00e9","x\"y":"\n"}`},
		{` { "a" : [ 1 , 2 ] } `, ` { "b" : { "c" : [ 3 ] } } `, `{"a":[1,2],"b":{"c":[3]}}`},
	}
	for _, tc := range cases {
		got, err := httpsync.MergePatch([]byte(tc.target), []byte(tc.patch))
		if err != nil || string(got) != tc.want {
			t.Errorf("MergePatch(%s, %s) = %s, %v; want %s", tc.target, tc.patch, got, err, tc.want)
		}
	}
}

func TestMergePatchInvalid(t *testing.T) {
	for _, tc := range []struct{ target, patch string }{
		{`{}`, `{`}, {`{`, `{}`}, {`{}`, ``}, {`{}`, `{"a":1} x`},
	} {
		if _, err := httpsync.MergePatch([]byte(tc.target), []byte(tc.patch)); !errors.Is(err, statesync.ErrInvalidPayload) {
			t.Errorf("MergePatch(%q, %q) = %v; want ErrInvalidPayload", tc.target, tc.patch, err)
		}
	}
}

// mergePatchModel is RFC 7396's pseudo-code over decoded values.
func mergePatchModel(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatchModel(t[k], v)
		}
	}
	return t
}

// FuzzMergePatch checks MergePatch against the RFC's pseudo-code on
// decoded values, and that it never fails on valid JSON.
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":"b"}`), []byte(`{"a":null,"b":{"c":[1]}}`))
	f.Add([]byte(`[1,2]`), []byte(`{"a":"b","c":null}`))
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":null,"c":{"d":null}}}`))
	f.Add([]byte(`null`), []byte(`"x"`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		got, err := httpsync.MergePatch(target, patch)
		blank := len(bytes.TrimSpace(target)) == 0 // stands for null
		tv, pv := json.Valid(target) || blank, json.Valid(patch)
		if !tv || !pv {
			if err == nil {
				t.Fatalf("MergePatch(%q, %q) accepted invalid JSON", target, patch)
			}
			return
		}
		if err != nil {
			t.Fatalf("MergePatch(%q, %q) = %v on valid JSON", target, patch, err)
		}
		if !json.Valid(got) {
			t.Fatalf("MergePatch(%q, %q) = %q, not JSON", target, patch, got)
		}
		var tAny, pAny, gotAny any
		if !blank {
			_ = json.Unmarshal(target, &tAny)
		}
		_ = json.Unmarshal(patch, &pAny)
		_ = json.Unmarshal(got, &gotAny)
		if want := mergePatchModel(tAny, pAny); !reflect.DeepEqual(gotAny, want) {
			t.Fatalf("MergePatch(%s, %s) = %s; the RFC gives %v", target, patch, got, want)
		}
	})
}
