package daemon

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CORS: which headers a cross-origin page may send and read.
const (
	corsAllowMethods = "GET, HEAD, PUT, PATCH, DELETE"
	// What statesync.js and other clients send on writes and reads.
	corsAllowHeaders = "Authorization, Content-Type, If-Match, If-None-Match, X-Source-Id"
	// What a client reads besides the CORS-safelisted response headers:
	// the revision (ETag), the reason of a 401 and the wait of a 429 or 503.
	corsExposeHeaders = "ETag, WWW-Authenticate, Retry-After"
	corsMaxAge        = "600"
)

// corsOrigins returns the origins of c.CORSOrigins: nil if CORS is off, a
// map holding only "*" for any origin. Origins are scheme://host[:port],
// lower-cased, without a path; "*" must stand alone, and needs tokens or
// Insecure: without tokens it would let every web page the user opens read
// and write every topic of a daemon on localhost.
func (c Config) corsOrigins() (map[string]bool, error) {
	origins := map[string]bool{}
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" {
			origins[o] = true
			continue
		}
		n, err := normalOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("serve: cors-origins: %w", err)
		}
		origins[n] = true
	}
	if origins["*"] {
		if len(origins) > 1 {
			return nil, fmt.Errorf("serve: cors-origins: give * alone or a list of origins, not both")
		}
		if c.Tokens == "" && !c.Insecure {
			return nil, fmt.Errorf("serve: cors-origins *: without --tokens every web page could read and write every topic; give --tokens, the exact origins of your app, or --insecure")
		}
	}
	if len(origins) == 0 {
		return nil, nil
	}
	return origins, nil
}

// normalOrigin checks that o is an origin as browsers send it in the
// Origin header (http or https, a host, an optional port, nothing else)
// and returns it lower-cased, without the default port.
func normalOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%q is not an origin (%s): give scheme://host[:port], like https://app.example.com, separated by commas", o, why)
	}
	switch {
	case err != nil:
		return bad(err.Error())
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("the scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return bad("no host")
	case u.User != nil:
		return bad("a user name")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#"):
		return bad("a path, query or fragment")
	case strings.Contains(u.Hostname(), "*"):
		return bad("wildcards are not accepted in host names")
	}
	scheme, host, port := u.Scheme, strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		return scheme + "://" + host, nil
	}
	return scheme + "://" + host + ":" + port, nil
}

// cors answers the preflight requests of the origins allowed and adds the
// CORS headers to their responses, on the API (/v1/) and /statesync.js
// only; a request from another origin gets no
// CORS header, so that the browser keeps its response from the page. nil
// origins means CORS is off. No Access-Control-Allow-Credentials is ever
// sent: clients authenticate with a bearer token in Authorization (or
// access_token on event streams), which a page sends explicitly, so no
// cookie of the daemon's host ever needs to be sent by another origin.
func cors(next http.Handler, origins map[string]bool) http.Handler {
	if origins == nil {
		return next
	}
	anyOrigin := origins["*"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/statesync.js" {
			// The dashboard, /healthz and /metrics stay same-origin.
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		if !anyOrigin {
			h.Add("Vary", "Origin")
		}
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (anyOrigin || originAllowed(origins, origin))
		preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !allowed {
				// No CORS header: the browser refuses the request.
				h.Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusForbidden)
				return
			}
			if anyOrigin {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
				// Chromium's Private Network Access: a page of a public
				// origin asks before it reaches a daemon on a private or
				// loopback address. The origin is one the operator listed.
				h.Set("Access-Control-Allow-Private-Network", "true")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			if anyOrigin {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed reports whether the Origin header o names one of origins.
func originAllowed(origins map[string]bool, o string) bool {
	if o == "null" { // sandboxed frames, file: pages: never a configured origin
		return false
	}
	n, err := normalOrigin(o)
	return err == nil && origins[n]
}
