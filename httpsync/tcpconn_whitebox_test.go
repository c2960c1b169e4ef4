package httpsync

import (
	"crypto/tls"
	"net"
	"testing"
)

// wrapped is a connection wrapper with a NetConn method, as a listener's
// connection-counting wrapper is.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// TestTCPConn: the TCP connection under a hijacked stream's connection is
// found through wrappers, so that a slow stream's send buffer and reset
// apply behind a connection-capping listener (the daemon's) too.
func TestTCPConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	for _, tt := range []struct {
		name string
		c    net.Conn
		want *net.TCPConn
	}{
		{"itself", tc, tc},
		{"wrapped", wrapped{tc}, tc},
		{"wrapped twice", wrapped{wrapped{tc}}, tc},
		{"TLS", tls.Client(wrapped{tc}, &tls.Config{}), tc},
		{"a pipe", func() net.Conn { a, b := net.Pipe(); b.Close(); return a }(), nil},
		{"wrapped pipe", func() net.Conn { a, b := net.Pipe(); b.Close(); return wrapped{a} }(), nil},
	} {
		if got := tcpConn(tt.c); got != tt.want {
			t.Errorf("tcpConn(%s) = %p; want %p", tt.name, got, tt.want)
		}
		// A hijacked stream writes to the TCP connection only without TLS.
		if got, want := overTLS(tt.c), tt.name == "TLS"; got != want {
			t.Errorf("overTLS(%s) = %v; want %v", tt.name, got, want)
		}
	}
}
