package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/apply"
)

// FuzzApply feeds arbitrary snapshot data to a Map and a Struct in both
// modes: Apply never panics; an error leaves the state and revision as they
// were; a success means the data was a JSON object, whose keys a Map
// without filter then holds (Replace) or includes (Patch).
func FuzzApply(f *testing.F) {
	for _, seed := range []string{`{"a":1,"b":{"c":[1,2]}}`, `{}`, `null`, `[1]`, `"s"`, `{"a":`, `{"count":"12"}`, `{"tags":{"x":"y"},"list":[1],"ptr":null}`, ` {"a":1} `, `{"a":1,"a":2}`, ``} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, replace bool) {
		mode := apply.Patch
		if replace {
			mode = apply.Replace
		}
		ctx := context.Background()
		m, _ := apply.NewMap(&apply.MapOptions[json.RawMessage]{Mode: mode, Initial: map[string]json.RawMessage{"init": json.RawMessage(`0`)}})
		before := m.Load()
		err := m.Apply(ctx, statesync.Snapshot{Revision: 1, Data: data})
		var want map[string]json.RawMessage
		objErr := json.Unmarshal(data, &want)
		switch {
		case err != nil:
			if !reflect.DeepEqual(m.Load(), before) || m.Revision() != 0 {
				t.Errorf("Map.Apply(%q) = %v but changed the state to %v", data, err, m.Load())
			}
			if objErr == nil && want != nil {
				t.Errorf("Map.Apply(%q) = %v; want nil for a JSON object", data, err)
			}
		case objErr != nil || want == nil:
			t.Errorf("Map.Apply(%q) = nil; want an error for data that is not a JSON object", data)
		default:
			got := m.Load()
			for k := range want {
				if _, ok := got[k]; !ok {
					t.Errorf("Map.Apply(%q): key %q missing from %v", data, k, got)
				}
			}
			if _, ok := got["init"]; !ok && mode == apply.Patch {
				t.Errorf("Map.Apply(%q) in patch mode removed key init", data)
			}
			if extra := len(got) - len(want); mode == apply.Replace && extra != 0 {
				t.Errorf("Map.Apply(%q) in replace mode = %v; want exactly the snapshot's keys", data, got)
			}
		}

		s, _ := apply.NewStruct(&apply.StructOptions[settings]{Mode: mode, Initial: settings{A: 1, Tags: map[string]string{"k": "v"}}})
		sBefore := s.Load()
		if err := s.Apply(ctx, statesync.Snapshot{Revision: 1, Data: data}); err != nil {
			if !reflect.DeepEqual(s.Load(), sBefore) || s.Revision() != 0 {
				t.Errorf("Struct.Apply(%q) = %v but changed the state to %+v", data, err, s.Load())
			}
			if errors.Is(err, apply.ErrNotObject) && objErr == nil && want != nil {
				t.Errorf("Struct.Apply(%q) = %v for a JSON object", data, err)
			}
		} else if objErr != nil || want == nil {
			t.Errorf("Struct.Apply(%q) = nil; want an error for data that is not a JSON object", data)
		}
		if got := sBefore.Tags; !reflect.DeepEqual(got, map[string]string{"k": "v"}) {
			t.Errorf("previous state's Tags = %v after Struct.Apply(%q); want unchanged", got, data)
		}
	})
}
