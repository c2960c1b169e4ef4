package procsync

import (
	"errors"
	"testing"
)

// B-XTAB-01, B-XTAB-14: messages are validated.
func TestDecodeMessage(t *testing.T) {
	good := []string{
		`{"type":"snapshot","tabId":"t","payload":{"revision":"5","epoch":"e"}}`,
		`{"type":"request-sync","tabId":"t"}`,
		`{"type":"clear","tabId":"t"}`,
	}
	for _, g := range good {
		if _, err := decodeMessage([]byte(g)); err != nil {
			t.Errorf("decodeMessage(%s) = %v; want nil", g, err)
		}
	}
	bad := []string{
		`{"type":"snapshot","tabId":"t","payload":{"revision":"05"}}`,
		`{"type":"snapshot","tabId":"t","payload":{"revision":5}}`,
		`{"type":"snapshot","tabId":"t"}`,
		`{"type":"snapshot","payload":{"revision":"5"}}`,
		`{"type":"hello","tabId":"t"}`,
		`not json`,
	}
	for _, b := range bad {
		if _, err := decodeMessage([]byte(b)); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("decodeMessage(%s) = %v; want ErrInvalidMessage", b, err)
		}
	}
}

// B-XTAB-02: ids are random UUIDv4.
func TestNewID(t *testing.T) {
	a, b := newID(), newID()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Errorf("newID() = %q, %q; want two distinct UUIDv4", a, b)
	}
}
