package daemon_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/internal/daemon"
)

func TestCORSOriginsConfig(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string // "" means accepted
	}{
		{[]string{"--cors-origins", "https://app.example.com, http://localhost:3000"}, ""},
		{[]string{"--cors-origins", "https://APP.example.com:443"}, ""},
		{[]string{"--cors-origins", "http://[::1]:3000"}, ""},
		{[]string{"--cors-origins", "*", "--insecure"}, ""},
		{[]string{"--cors-origins", "*"}, "without --tokens"},
		{[]string{"--cors-origins", "*,https://a.example", "--insecure"}, "* alone"},
		{[]string{"--cors-origins", "app.example.com"}, "not an origin"},
		{[]string{"--cors-origins", "https://app.example.com/"}, "a path"},
		{[]string{"--cors-origins", "https://app.example.com/x"}, "a path"},
		{[]string{"--cors-origins", "ftp://app.example.com"}, "http or https"},
		{[]string{"--cors-origins", "https://*.example.com"}, "wildcards"},
		{[]string{"--cors-origins", "https://u@app.example.com"}, "a user name"},
		{[]string{"--cors-origins", "null"}, "not an origin"},
	} {
		_, err := daemon.ParseFlags(append(tc.args, "--memory"), func(string) string { return "" }, io.Discard)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ParseFlags(%q) = %v; want no error", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseFlags(%q) = %v; want an error saying %q", tc.args, err, tc.wantErr)
		}
	}
	cfg, err := daemon.ParseFlags([]string{"--memory"}, func(k string) string {
		if k == "STATESYNC_CORS_ORIGINS" {
			return "https://app.example.com"
		}
		return ""
	}, io.Discard)
	if err != nil || cfg.CORSOrigins != "https://app.example.com" {
		t.Errorf("STATESYNC_CORS_ORIGINS: ParseFlags = %q, %v; want https://app.example.com, nil", cfg.CORSOrigins, err)
	}
}

// header returns resp's header values of name joined by ", ".
func header(resp *http.Response, name string) string {
	return strings.Join(resp.Header.Values(name), ", ")
}

func TestCORS(t *testing.T) {
	const app = "http://app.localhost:3000"
	cfg := testConfig(t)
	cfg.Data = ""
	cfg.Memory = true
	cfg.CORSOrigins = app + ", https://other.example"
	d := startDaemon(t, cfg)
	d.expect(t, http.StatusOK, "PUT", "/v1/topics/t", `{"a":1}`, "Content-Type", "application/json")

	t.Run("Preflight", func(t *testing.T) {
		resp, _ := d.do(t, "OPTIONS", "/v1/topics/t", "", "Origin", app,
			"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "authorization,if-match,content-type")
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight = %d; want 204", resp.StatusCode)
		}
		for name, want := range map[string]string{
			"Access-Control-Allow-Origin":      app,
			"Access-Control-Allow-Methods":     "GET, HEAD, PUT, PATCH, DELETE",
			"Access-Control-Allow-Headers":     "Authorization, Content-Type, If-Match, If-None-Match, X-Source-Id",
			"Access-Control-Max-Age":           "600",
			"Access-Control-Allow-Credentials": "",
			"Vary":                             "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
		} {
			if got := header(resp, name); got != want {
				t.Errorf("preflight %s = %q; want %q", name, got, want)
			}
		}
	})
	t.Run("PrivateNetwork", func(t *testing.T) {
		resp, _ := d.do(t, "OPTIONS", "/v1/events", "", "Origin", app,
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Private-Network", "true")
		if got := header(resp, "Access-Control-Allow-Private-Network"); resp.StatusCode != http.StatusNoContent || got != "true" {
			t.Errorf("private-network preflight = %d, Allow-Private-Network %q; want 204, true", resp.StatusCode, got)
		}
		resp, _ = d.do(t, "OPTIONS", "/v1/events", "", "Origin", "https://evil.example",
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Private-Network", "true")
		if got := header(resp, "Access-Control-Allow-Private-Network"); got != "" {
			t.Errorf("private-network preflight of a refused origin: Allow-Private-Network %q; want none", got)
		}
	})
	t.Run("Allowed", func(t *testing.T) {
		for _, path := range []string{"/v1/topics/t", "/statesync.js"} {
			resp, _ := d.do(t, "GET", path, "", "Origin", app)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d; want 200", path, resp.StatusCode)
			}
			if got := header(resp, "Access-Control-Allow-Origin"); got != app {
				t.Errorf("GET %s: Access-Control-Allow-Origin = %q; want %q", path, got, app)
			}
			if got := header(resp, "Access-Control-Expose-Headers"); !strings.Contains(got, "ETag") {
				t.Errorf("GET %s: Access-Control-Expose-Headers = %q; want ETag among them", path, got)
			}
			if got := header(resp, "Vary"); !strings.Contains(got, "Origin") {
				t.Errorf("GET %s: Vary = %q; want Origin among them", path, got)
			}
			if got := header(resp, "Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("GET %s: Access-Control-Allow-Credentials = %q; want none", path, got)
			}
		}
		// The same origin written differently (default port, upper case).
		resp, _ := d.do(t, "GET", "/v1/topics/t", "", "Origin", "HTTPS://Other.Example:443")
		if got := header(resp, "Access-Control-Allow-Origin"); got != "HTTPS://Other.Example:443" {
			t.Errorf("Origin HTTPS://Other.Example:443: Access-Control-Allow-Origin = %q; want the origin sent", got)
		}
	})
	t.Run("SameOriginRoutes", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/healthz", "/"} {
			resp, _ := d.do(t, "GET", path, "", "Origin", app)
			if got := header(resp, "Access-Control-Allow-Origin"); got != "" {
				t.Errorf("GET %s from %s: Access-Control-Allow-Origin %q; want none (only the API and the module are shared)", path, app, got)
			}
		}
	})
	t.Run("Refused", func(t *testing.T) {
		for _, origin := range []string{"http://evil.localhost:3000", "http://app.localhost:3001", "https://app.localhost:3000",
			"null", "http://app.localhost:3000.evil.example", "http://app.localhost:3000/"} {
			resp, _ := d.do(t, "OPTIONS", "/v1/topics/t", "", "Origin", origin, "Access-Control-Request-Method", "PUT")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("preflight from %s = %d; want 403", origin, resp.StatusCode)
			}
			resp2, _ := d.do(t, "GET", "/v1/topics/t", "", "Origin", origin)
			for _, r := range []*http.Response{resp, resp2} {
				for name := range r.Header {
					if strings.HasPrefix(name, "Access-Control-") {
						t.Errorf("%s from %s: header %s: %q; want no CORS header", r.Request.Method, origin, name, header(r, name))
					}
				}
			}
		}
	})
	t.Run("NoCORS", func(t *testing.T) {
		cfg := testConfig(t)
		d := startDaemon(t, cfg)
		resp, _ := d.do(t, "OPTIONS", "/v1/topics/t", "", "Origin", app, "Access-Control-Request-Method", "PUT")
		if resp.StatusCode != http.StatusMethodNotAllowed || header(resp, "Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight without --cors-origins = %d, Allow-Origin %q; want 405 and none",
				resp.StatusCode, header(resp, "Access-Control-Allow-Origin"))
		}
	})
	t.Run("Any", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.CORSOrigins, cfg.Insecure = "*", true
		d := startDaemon(t, cfg)
		resp, _ := d.do(t, "OPTIONS", "/v1/topics/t", "", "Origin", "https://anyone.example", "Access-Control-Request-Method", "DELETE")
		if resp.StatusCode != http.StatusNoContent || header(resp, "Access-Control-Allow-Origin") != "*" ||
			header(resp, "Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight with * = %d, Allow-Origin %q, Allow-Credentials %q; want 204, * and none", resp.StatusCode,
				header(resp, "Access-Control-Allow-Origin"), header(resp, "Access-Control-Allow-Credentials"))
		}
	})
}
