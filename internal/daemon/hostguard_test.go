package daemon_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// hostRequest makes a request to d naming host in its Host header.
func hostRequest(t *testing.T, d *testDaemon, method, path, host, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, path, host, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHostCheck pins issue 9 item 5: without tokens the daemon answered a
// request naming any host, so a web page whose name is rebound to
// 127.0.0.1 (DNS rebinding) could read and write every topic. Now it
// answers only loopback names, and those of --allowed-hosts, on every
// route but /healthz; with tokens, or with --insecure and no
// --allowed-hosts, any name.
func TestHostCheck(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	port := d.s.Addr().String()[strings.LastIndex(d.s.Addr().String(), ":"):]
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/topics/a", ""},
		{"PUT", "/v1/topics/a", `{"v":1}`},
		{"GET", "/v1/topics", ""},
		{"GET", "/v1/events?topic=a", ""},
		{"GET", "/", ""},
		{"GET", "/statesync.js", ""},
		{"GET", "/metrics", ""},
	}
	for _, host := range []string{"evil.example" + port, "evil.example", "127.0.0.1.evil.example" + port, "localhost.evil.example", "192.0.2.1" + port} {
		for _, r := range routes {
			status, body := hostRequest(t, d, r.method, r.path, host, r.body)
			if status != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "DNS rebinding") ||
				!strings.Contains(body, "--allowed-hosts") || !strings.Contains(body, "--tokens") {
				t.Errorf("%s %s with Host %s = %d %s; want 403 explaining DNS rebinding, --tokens and --allowed-hosts", r.method, r.path, host, status, body)
			}
		}
	}
	if status, body := hostRequest(t, d, "GET", "/v1/topics/a", "localhost"+port, ""); status != 200 || !strings.Contains(body, `"data":null`) {
		t.Errorf("GET a after refused PUTs = %d %s; want 200 with nothing stored", status, body)
	}
	for _, host := range []string{"localhost" + port, "localhost", "LOCALHOST" + port, "localhost." + port, "127.0.0.1" + port, "127.0.0.1", "[::1]" + port, "[::1]", "app.localhost" + port, "127.0.0.2" + port} {
		for _, r := range routes {
			if status, body := hostRequest(t, d, r.method, r.path, host, r.body); status != 200 {
				t.Errorf("%s %s with Host %s = %d %s; want 200", r.method, r.path, host, status, body)
			}
		}
	}
	// Load balancers ask for /healthz by IP address.
	if status, _ := hostRequest(t, d, "GET", "/healthz", "10.0.0.5"+port, ""); status != 200 {
		t.Errorf("GET /healthz with Host 10.0.0.5 = %d; want 200", status)
	}

	// The names of --allowed-hosts are accepted too, and only they.
	cfg := testConfig(t)
	cfg.AllowedHosts = "MyApp.example, other.example"
	d = startDaemon(t, cfg)
	for host, want := range map[string]int{"myapp.example" + port: 200, "other.example": 200, "evil.example": 403, "localhost": 200} {
		if status, body := hostRequest(t, d, "GET", "/v1/topics/a", host, ""); status != want {
			t.Errorf("--allowed-hosts %s: GET with Host %s = %d %s; want %d", cfg.AllowedHosts, host, status, body, want)
		}
	}

	// With tokens the token is what counts, whatever the name.
	cfg = testConfig(t)
	cfg.Tokens = tokenFile(t, t.TempDir())
	d = startDaemon(t, cfg)
	if status, body := hostRequest(t, d, "GET", "/v1/topics/a", "evil.example", "", "Authorization", "Bearer admin-secret"); status != 200 {
		t.Errorf("with tokens: GET with Host evil.example = %d %s; want 200", status, body)
	}

	// --insecure serves every name, unless --allowed-hosts lists some.
	for allowed, want := range map[string]int{"": 200, "myapp.example": 403} {
		cfg = testConfig(t)
		cfg.Insecure, cfg.AllowedHosts = true, allowed
		d = startDaemon(t, cfg)
		if status, body := hostRequest(t, d, "GET", "/v1/topics/a", "evil.example", ""); status != want {
			t.Errorf("--insecure --allowed-hosts %q: GET with Host evil.example = %d %s; want %d", allowed, status, body, want)
		}
	}
}
