package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"time"
)

// sse_fanout runs once more in pull mode over HTTP/2 (TLS with ALPN, as
// browsers and the Go client speak it to a daemon with --tls-cert): each
// consumer's snapshot GETs then travel on its event stream's connection,
// multiplexed, instead of needing a connection of their own (a TCP
// handshake, an accept, and a descriptor on both sides per consumer). The
// server process makes a self-signed certificate for 127.0.0.1 and gives
// it to the parent in its hello line; the parent and the writer trust it
// alone.

// benchCert returns a self-signed ECDSA P-256 certificate for 127.0.0.1,
// valid for a day, and its PEM encoding.
func benchCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "statesync bench"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// clientTLS returns the TLS configuration of a client that trusts the
// certificate certPEM only.
func clientTLS(certPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		return nil, errors.New("the server's certificate is not PEM")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// transportFor returns a transport for a server whose certificate is
// certPEM (nil: plain HTTP), HTTP/2 over TLS.
func transportFor(certPEM []byte) (*http.Transport, error) {
	tr := &http.Transport{}
	if certPEM != nil {
		cfg, err := clientTLS(certPEM)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig, tr.ForceAttemptHTTP2 = cfg, true
	}
	return tr, nil
}
