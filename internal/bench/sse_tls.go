package bench

import (
	"net/http"

	"github.com/statesync-go/statesync/internal/testcert"
)

// sse_fanout runs once more in pull mode over HTTP/2 (TLS with ALPN, as
// browsers and the Go client speak it to a daemon with --tls-cert): each
// consumer's snapshot GETs then travel on its event stream's connection,
// multiplexed, instead of needing a connection of their own (a TCP
// handshake, an accept, and a descriptor on both sides per consumer). The
// server process makes a self-signed certificate for 127.0.0.1 and gives
// it to the parent in its hello line; the parent and the writer trust it
// alone.

// transportFor returns a transport for a server whose certificate is
// certPEM (nil: plain HTTP), HTTP/2 over TLS.
func transportFor(certPEM []byte) (*http.Transport, error) {
	tr := &http.Transport{}
	if certPEM != nil {
		cfg, err := testcert.ClientConfig(certPEM)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig, tr.ForceAttemptHTTP2 = cfg, true
	}
	return tr, nil
}
