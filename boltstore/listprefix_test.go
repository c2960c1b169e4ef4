package boltstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/statesync-go/statesync"
)

// TestListPrefix: ListPrefix returns the records of List whose topics
// start with the prefix, in order, deleted topics included.
func TestListPrefix(t *testing.T) {
	s, _ := newStore(t, nil)
	ctx := context.Background()
	for _, topic := range []string{"a", "ab", "abc", "abd", "ac", "b", "ab-z"} {
		if _, err := s.Write(ctx, statesync.Write{Topic: topic, Data: json.RawMessage(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Write(ctx, statesync.Write{Topic: "abd"}); err != nil { // deleted: still listed
		t.Fatal(err)
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "a", "ab", "abc", "abz", "b", "c", "ab-z"} {
		got, err := s.ListPrefix(ctx, prefix)
		if err != nil {
			t.Fatalf("ListPrefix(%q) = %v", prefix, err)
		}
		var want []statesync.Record
		for _, r := range all {
			if strings.HasPrefix(r.Topic, prefix) {
				want = append(want, r)
			}
		}
		if len(got) != len(want) {
			t.Errorf("ListPrefix(%q) = %v; want %v", prefix, got, want)
			continue
		}
		for i := range got {
			if got[i].Topic != want[i].Topic || got[i].Revision != want[i].Revision || got[i].Epoch != want[i].Epoch || got[i].Data != nil {
				t.Errorf("ListPrefix(%q)[%d] = %+v; want %+v", prefix, i, got[i], want[i])
			}
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.ListPrefix(cctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("ListPrefix with a cancelled context = %v; want context.Canceled", err)
	}
	_ = s.Close()
	if _, err := s.ListPrefix(ctx, "a"); !errors.Is(err, statesync.ErrClosed) {
		t.Errorf("ListPrefix after Close = %v; want ErrClosed", err)
	}
}
