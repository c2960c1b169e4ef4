//go:build unix

package daemon_test

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/statesync-go/statesync/internal/daemon"
	"github.com/statesync-go/statesync/internal/poll"
)

// TestSIGHUP: Run reloads the TLS certificate and the token file on
// SIGHUP, sent to the test process as an operator's kill -HUP (or
// systemd's ExecReload) would; an HTTP/2 stream of a removed token is
// closed, the others stay.
func TestSIGHUP(t *testing.T) {
	// SIGHUP is caught by this test as well as by Run, so that a signal
	// sent before Run listens never kills the test process.
	caught := make(chan os.Signal, 8)
	signal.Notify(caught, syscall.SIGHUP)
	defer signal.Stop(caught)

	cfg, dir := tlsConfig(t)
	first := writeCert(t, dir, 1)
	cfg.Tokens = filepath.Join(dir, "tokens.json")
	writeTokens(t, cfg.Tokens, `{"tokens":[{"name":"a","token":"a-secret","read":["*"],"write":["*"]},{"name":"b","token":"b-secret","read":["*"]}]}`)
	cfg.AccessLog = filepath.Join(dir, "access.log")
	cfg.LogFormat = "json"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true, DisableCompression: true}
	d := &testDaemon{url: "https://" + cfg.Addr, hc: &http.Client{Transport: tr}}
	serial := func() *big.Int {
		// A new connection, a new handshake: not d's, which HTTP/2 keeps
		// for its streams.
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
		resp, err := hc.Get(d.url + "/livez")
		if err != nil {
			return big.NewInt(-1)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber
	}
	poll.Until(t, "Run serves", func() bool { return serial().Cmp(first.SerialNumber) == 0 })
	kept := d.openStream(t, "/v1/events?topic=x", "Authorization", "Bearer a-secret")
	dropped := d.openStream(t, "/v1/events?topic=x", "Authorization", "Bearer b-secret")
	kept.next(t)
	dropped.next(t)

	// Same size and modification time as before: only SIGHUP reloads it
	// (the handshake's own check sees no change).
	st, _ := os.Stat(cfg.TLSCert)
	second := writeCert(t, dir, 2)
	for _, f := range []string{cfg.TLSCert, cfg.TLSKey} {
		_ = os.Chtimes(f, st.ModTime(), st.ModTime())
	}
	writeTokens(t, cfg.Tokens, `{"tokens":[{"name":"a","token":"a-secret","read":["*"],"write":["*"]}]}`)
	// logrotate moves the access log away, then sends SIGHUP.
	if err := os.Rename(cfg.AccessLog, cfg.AccessLog+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	<-caught
	dropped.ended(t, waitFor) // fails the test if the stream stays open
	poll.UntilState(t, "the certificate reloaded on SIGHUP is served", func() (bool, string) {
		s := serial()
		return s.Cmp(second.SerialNumber) == 0, "serial " + s.String()
	})
	w := decodeSnapshot(t, d.expect(t, http.StatusOK, "PUT", "/v1/topics/x", `1`, "Authorization", "Bearer a-secret"))
	if inv := kept.next(t).inv(t); inv.Revision != w.Revision {
		t.Errorf("kept HTTP/2 stream after SIGHUP got %+v; want x at %v", inv, w.Revision)
	}
	d.expect(t, http.StatusUnauthorized, "GET", "/v1/topics/x", "", "Authorization", "Bearer b-secret")
	poll.Until(t, "the access log reopened on SIGHUP gets the new lines", func() bool {
		_, err := os.Stat(cfg.AccessLog)
		return err == nil && len(readAccessLog(t, cfg.AccessLog)) > 0
	})
	if !slices.ContainsFunc(readAccessLog(t, cfg.AccessLog), func(r accessRecord) bool {
		return r.Path == "/v1/topics/x" && r.Method == "PUT" && r.Token == "a"
	}) {
		t.Errorf("the reopened access log lacks the PUT after SIGHUP: %+v", readAccessLog(t, cfg.AccessLog))
	}
	kept.close()
	d.hc.CloseIdleConnections()
}
