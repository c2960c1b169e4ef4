package testcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/testcert"
)

func TestNew(t *testing.T) {
	p, err := testcert.New(7)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Cert.SerialNumber.Int64(); got != 7 {
		t.Errorf("serial = %d; want 7", got)
	}
	if now := time.Now(); !p.Cert.NotBefore.Before(now) || !p.Cert.NotAfter.After(now.Add(23*time.Hour)) {
		t.Errorf("valid %v to %v; want from before now to a day from now", p.Cert.NotBefore, p.Cert.NotAfter)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.Cert)
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := p.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("Verify(%s): %v", name, err)
		}
	}
	if err := p.Cert.VerifyHostname("example.com"); err == nil {
		t.Error("the certificate is valid for example.com")
	}
	q, err := testcert.New(7)
	if err != nil {
		t.Fatal(err)
	}
	if string(q.KeyPEM) == string(p.KeyPEM) {
		t.Error("two certificates share a key")
	}
}

// The files load as a key pair, the key is 0600, and a client that trusts
// the certificate alone reaches a server that serves it; one that does
// not trust it is refused.
func TestWriteFilesAndClientConfig(t *testing.T) {
	p, err := testcert.New(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := p.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, "cert.pem") || keyFile != filepath.Join(dir, "key.pem") {
		t.Errorf("WriteFiles = %s, %s", certFile, keyFile)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi, err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	get := func(cfg *tls.Config) error {
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	cfg, err := testcert.ClientConfig(p.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(cfg); err != nil {
		t.Errorf("a client trusting the certificate: %v", err)
	}
	other, err := testcert.New(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, err := testcert.ClientConfig(other.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(cfg2); err == nil {
		t.Error("a client trusting another certificate was served")
	}
	if _, err := testcert.ClientConfig([]byte("not pem")); err == nil {
		t.Error("ClientConfig(not PEM) succeeded")
	}
	// p.TLS serves too, without files.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{p.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("Dial with Pair.TLS: %v", err)
	}
	c.Close()
}
