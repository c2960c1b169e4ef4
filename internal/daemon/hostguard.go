package daemon

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// allowedHosts returns the names of c.AllowedHosts, lower-cased, and nil
// if the Host header is not checked: with tokens, or with Insecure and no
// AllowedHosts.
func (c Config) allowedHosts() (map[string]bool, error) {
	names := map[string]bool{}
	for _, n := range strings.Split(c.AllowedHosts, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if strings.ContainsAny(n, " \t/:@*") && !strings.HasPrefix(n, "[") {
			return nil, fmt.Errorf("serve: allowed-hosts: %q is not a host name (give names without port, separated by commas)", n)
		}
		names[normalHost(n)] = true
	}
	if c.Tokens != "" || c.Insecure && len(names) == 0 {
		return nil, nil
	}
	return names, nil
}

// normalHost returns the host name of a Host header: without its port and
// the brackets of an IPv6 address, lower-cased, without a final dot.
func normalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// hostGuard answers 403 to a request whose Host header names neither a
// loopback name nor one of allowed, the daemon's defence against DNS
// rebinding when it has no tokens: a web page that rebinds its own name to
// 127.0.0.1 sends that name, not localhost. A nil allowed lets every
// request through. The health endpoints are not checked: they tell
// nothing, and load balancers and probes ask for them by IP address.
func hostGuard(next http.Handler, allowed map[string]bool) http.Handler {
	if allowed == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := normalHost(r.Host)
		if r.Host == "" || isLoopback(host) || allowed[host] || healthPaths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		msg := fmt.Sprintf("this daemon runs without tokens, so it answers only requests addressed to localhost, 127.0.0.1 or [::1], not to %q: "+
			"a web page whose name points to 127.0.0.1 could otherwise read and write every topic (DNS rebinding). "+
			"Use http://localhost:PORT/, or start the daemon with --tokens, or add the name to --allowed-hosts", host)
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "forbidden", "message": msg}})
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		if r.ContentLength != 0 { // do not read the body of a refused request
			h.Set("Connection", "close")
			_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write(append(b, '\n'))
	})
}

// healthPaths are the health endpoints.
var healthPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true}

// connCaps returns the caps of the connection limiter: total and per
// client address, 0 meaning none.
func (c Config) connCaps() (total, perIP int) {
	switch {
	case c.MaxConns < 0:
		total = 0
	case c.MaxConns > 0:
		total = c.MaxConns
	default:
		total = defaultMaxConns(openFileLimit())
	}
	return total, c.MaxConnsPerIP
}

// defaultMaxConns is the connection cap for a process allowed limit open
// files (0: unknown): the limit less 128 files for the store, the log and
// the rest, so that the daemon refuses connections before accept fails
// with "too many open files".
func defaultMaxConns(limit int) int {
	if limit <= 0 {
		return 10000
	}
	return max(limit-128, 64)
}
