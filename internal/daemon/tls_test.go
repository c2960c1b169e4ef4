package daemon_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/testcert"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost
// with serial, and its key, to cert.pem and key.pem in dir (the key
// first), and returns the certificate.
func writeCert(t testing.TB, dir string, serial int64) *x509.Certificate {
	t.Helper()
	p, err := testcert.New(serial)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return p.Cert
}

// startTLSDaemon starts a daemon with cfg over TLS with the certificate in
// dir; its client speaks HTTP/2, or HTTP/1.1 only if h1, and trusts any
// certificate (the test checks which one it was served).
func startTLSDaemon(t testing.TB, cfg daemon.Config, h1 bool) *testDaemon {
	t.Helper()
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true, DisableCompression: true}
	if h1 {
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	d := &testDaemon{s: s, url: "https://" + s.Addr().String(), hc: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		if !d.down {
			if err := d.shutdown(); err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		}
		d.hc.CloseIdleConnections()
	})
	return d
}

func tlsConfig(t testing.TB) (daemon.Config, string) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.Data, cfg.Memory = "", true
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	return cfg, dir
}

func TestTLSConfig(t *testing.T) {
	for _, args := range [][]string{{"--tls-cert", "c.pem"}, {"--tls-key", "k.pem"}} {
		_, err := daemon.ParseFlags(append(args, "--memory"), func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--tls-cert and --tls-key together") {
			t.Errorf("ParseFlags(%q) = %v; want an error asking for both", args, err)
		}
	}
	cfg, err := daemon.ParseFlags([]string{"--memory"}, func(k string) string {
		return map[string]string{"STATESYNC_TLS_CERT": "c.pem", "STATESYNC_TLS_KEY": "k.pem"}[k]
	}, io.Discard)
	if err != nil || cfg.TLSCert != "c.pem" || cfg.TLSKey != "k.pem" {
		t.Errorf("STATESYNC_TLS_CERT, STATESYNC_TLS_KEY: ParseFlags = %q %q, %v; want c.pem k.pem, nil", cfg.TLSCert, cfg.TLSKey, err)
	}

	cfg, dir := tlsConfig(t)
	if _, err := daemon.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("Start with missing certificate files = %v; want a tls error", err)
	}
	writeCert(t, dir, 1)
	other := t.TempDir()
	writeCert(t, other, 2)
	cfg.TLSKey = filepath.Join(other, "key.pem") // not the certificate's key
	if s, err := daemon.Start(cfg, nil); err == nil {
		_ = s.Shutdown(t.Context())
		t.Errorf("Start with a key that does not match the certificate: no error")
	}
}

// TestTLS: over TLS the daemon speaks HTTP/2 (ALPN) and HTTP/1.1; event
// streams work on both (on HTTP/1.1 they are hijacked, and their frames
// must go through TLS) and outlive --read-timeout; a certificate renewed in place is served to new
// connections without a restart, and a broken renewal keeps the old one.
func TestTLS(t *testing.T) {
	cfg, dir := tlsConfig(t)
	// Streams outlive the read deadlines, on HTTP/2 too.
	cfg.ReadTimeout = 200 * time.Millisecond
	first := writeCert(t, dir, 1)
	for _, h1 := range []bool{false, true} {
		name := map[bool]string{false: "HTTP/2", true: "HTTP/1.1"}[h1]
		t.Run(name, func(t *testing.T) {
			d := startTLSDaemon(t, cfg, h1)
			resp, _ := d.do(t, "GET", "/healthz", "")
			if want := map[bool]int{false: 2, true: 1}[h1]; resp.ProtoMajor != want || resp.TLS == nil {
				t.Fatalf("GET /healthz over TLS: %s, TLS %v; want HTTP/%d over TLS", resp.Proto, resp.TLS != nil, want)
			}
			if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(first.SerialNumber) != 0 {
				t.Errorf("served certificate serial %v; want %v", got, first.SerialNumber)
			}
			streams := []*sseStream{d.openStream(t, "/v1/events?topic=a"), d.openStream(t, "/v1/events?topic=a")}
			for _, s := range streams {
				if got := s.next(t).inv(t); got.Topic != "a" || got.Revision != 0 {
					t.Fatalf("first frame %+v; want topic a at revision 0", got)
				}
			}
			time.Sleep(5 * cfg.ReadTimeout) // past the read deadlines of the requests
			put := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/a", `{"x":1}`, "Content-Type", "application/json"))
			for _, s := range streams {
				if got := s.next(t).inv(t); got.Topic != "a" || got.Revision != put.Revision {
					t.Errorf("frame after the PUT %+v; want topic a at %v", got, put.Revision)
				}
			}
		})
	}

	t.Run("Reload", func(t *testing.T) {
		// Each poll below makes a new handshake; the short read deadline
		// of the streams' subtests could cut one on a loaded machine.
		cfg := cfg
		cfg.ReadTimeout = 10 * time.Second
		d := startTLSDaemon(t, cfg, false)
		serial := func() *big.Int {
			d.hc.CloseIdleConnections() // a new connection, a new handshake
			resp, _ := d.do(t, "GET", "/healthz", "")
			return resp.TLS.PeerCertificates[0].SerialNumber
		}
		second := writeCert(t, dir, 2)
		// A later modification time, whatever the file system's resolution.
		later := time.Now().Add(time.Minute)
		for _, f := range []string{cfg.TLSCert, cfg.TLSKey} {
			if err := os.Chtimes(f, later, later); err != nil {
				t.Fatal(err)
			}
		}
		poll.UntilState(t, "the renewed certificate is served", func() (bool, string) {
			s := serial()
			return s.Cmp(second.SerialNumber) == 0, "serial " + s.String()
		})

		// A broken renewal: the old certificate stays, Reload says why.
		if err := os.WriteFile(cfg.TLSCert, []byte("not PEM"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.s.ReloadTLS(); err == nil {
			t.Errorf("ReloadTLS of a broken certificate file: no error")
		}
		if s := serial(); s.Cmp(second.SerialNumber) != 0 {
			t.Errorf("after a broken renewal the daemon serves serial %v; want the previous %v", s, second.SerialNumber)
		}
		third := writeCert(t, dir, 3)
		if err := d.s.ReloadTLS(); err != nil {
			t.Fatalf("ReloadTLS (as on SIGHUP) = %v", err)
		}
		if s := serial(); s.Cmp(third.SerialNumber) != 0 {
			t.Errorf("after ReloadTLS the daemon serves serial %v; want %v", s, third.SerialNumber)
		}
	})
}
