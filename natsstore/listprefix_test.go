package natsstore_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/natstest"
	"github.com/statesync-go/statesync/internal/storetest"
)

// ListPrefix returns the records of List whose topics start with the
// prefix, in order, whatever the key encoding does to their bytes.
func TestListPrefix(t *testing.T) {
	s := open(t, natstest.NewServer(t), nil)
	for _, topic := range []string{"a", "a.b", "a.c", "ab", "b", "a-", "a:b"} {
		storetest.MustWrite(t, s, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)})
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "a-", "a.b", "a.c", "a:b", "ab", "b"}},
		{"a", []string{"a", "a-", "a.b", "a.c", "a:b", "ab"}},
		{"a.", []string{"a.b", "a.c"}},
		{"a:", []string{"a:b"}},
		{"a.c", []string{"a.c"}},
		{"c", nil},
		{"=2E", nil}, // the key of "." is not a prefix of topics
	} {
		list, err := s.ListPrefix(storetest.OpContext(t), tt.prefix)
		if err != nil {
			t.Fatalf("ListPrefix(%q): %v", tt.prefix, err)
		}
		var got []string
		for _, r := range list {
			got = append(got, r.Topic)
			if r.Revision == 0 || r.Epoch == "" || r.Data != nil {
				t.Errorf("ListPrefix(%q) record %+v; want a revision, an epoch and no data", tt.prefix, r)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ListPrefix(%q) = %q; want %q", tt.prefix, got, tt.want)
		}
	}
}
