package daemon

import "testing"

func TestConnCaps(t *testing.T) {
	for _, tc := range []struct{ limit, want int }{{0, 10000}, {-1, 10000}, {20000, 19872}, {1024, 896}, {100, 64}} {
		if got := defaultMaxConns(tc.limit); got != tc.want {
			t.Errorf("defaultMaxConns(%d) = %d; want %d", tc.limit, got, tc.want)
		}
	}
	c := DefaultConfig()
	if total, perIP := c.connCaps(); total != defaultMaxConns(openFileLimit()) || perIP != 1000 {
		t.Errorf("default connCaps = %d, %d; want %d, 1000", total, perIP, defaultMaxConns(openFileLimit()))
	}
	c.MaxConns, c.MaxConnsPerIP = 42, 0
	if total, perIP := c.connCaps(); total != 42 || perIP != 0 {
		t.Errorf("connCaps with 42, 0 = %d, %d; want 42, 0", total, perIP)
	}
	c.MaxConns = -1
	if total, _ := c.connCaps(); total != 0 {
		t.Errorf("connCaps with --max-conns -1 = %d; want 0 (no cap)", total)
	}
}

func TestNormalHost(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:8765": "localhost", "LocalHost.": "localhost", "[::1]:80": "::1", "[::1]": "::1",
		"127.0.0.1": "127.0.0.1", "Evil.Example:1": "evil.example", "": "",
	} {
		if got := normalHost(in); got != want {
			t.Errorf("normalHost(%q) = %q; want %q", in, got, want)
		}
	}
}
