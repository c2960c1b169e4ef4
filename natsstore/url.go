package natsstore

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/statesync-go/statesync/internal/storeurl"
)

// The query options of a store URL (see the package documentation).
const (
	optBucket   = "bucket"
	optReplicas = "replicas"
	optProbe    = "feed_probe"
	optTimeout  = "timeout"
	optFeedURL  = "feed_url"
	optCreds    = "creds"
	optToken    = "token"
	optTLSCA    = "tls_ca"
	optTLSCert  = "tls_cert"
	optTLSKey   = "tls_key"
)

// maxReplicas is the largest replica count JetStream accepts.
const maxReplicas = 5

// urlOptions are what a store URL says; zero fields were absent.
type urlOptions struct {
	servers  string // the server URLs, comma-separated, without the query
	bucket   string
	replicas int
	probe    time.Duration
	timeout  time.Duration
	feedURL  string
	creds    string
	token    string
	tlsCA    string
	tlsCert  string
	tlsKey   string
}

// errBadURL is wrapped by the errors of parseURL.
var errBadURL = errors.New("natsstore: invalid store URL")

// parseURL reads a store URL: one or more server URLs separated by commas
// (nats://[user:password@]host[:port], or tls:// for TLS; a server URL
// without a scheme takes the first one's), then this package's query
// options. It never panics; errors do not repeat the URL, which may hold a
// password or a token.
func parseURL(raw string) (urlOptions, error) {
	var o urlOptions
	servers, query, _ := strings.Cut(raw, "?")
	if servers == "" {
		return o, fmt.Errorf("%w: no server", errBadURL)
	}
	var scheme string
	for i, s := range strings.Split(servers, ",") {
		sch, rest, ok := strings.Cut(s, "://")
		switch {
		case ok:
			sch = strings.ToLower(sch)
		case i == 0:
			return o, fmt.Errorf("%w: want nats://host:port or tls://host:port", errBadURL)
		default:
			sch, rest = scheme, s
		}
		if sch != "nats" && sch != "tls" {
			// Not quoted: a password holding "://" puts part of itself here.
			return o, fmt.Errorf("%w: server %d: want the scheme nats or tls", errBadURL, i+1)
		}
		if i == 0 {
			scheme = sch
		}
		u, err := url.Parse(sch + "://" + rest)
		if err != nil || u.Host == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
			return o, fmt.Errorf("%w: server %d: want %s://[user:password@]host[:port]", errBadURL, i+1, sch)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return o, fmt.Errorf("%w: server %d: bad port", errBadURL, i+1)
			}
		}
		if i > 0 {
			o.servers += ","
		}
		o.servers += u.String()
	}
	q, err := storeurl.ParseQuery(query, errBadURL)
	if err != nil {
		return o, err
	}
	if o.bucket, err = q.Take(optBucket); err != nil {
		return o, err
	}
	if o.bucket != "" {
		if err := checkBucket(o.bucket); err != nil {
			return o, fmt.Errorf("%w: %w", errBadURL, err)
		}
	}
	reps, err := q.Take(optReplicas)
	if err != nil {
		return o, err
	}
	if reps != "" {
		n, err := strconv.Atoi(reps)
		if err != nil || n < 1 || n > maxReplicas {
			return o, fmt.Errorf("%w: %s=%q: want 1 to %d", errBadURL, optReplicas, reps, maxReplicas)
		}
		o.replicas = n
	}
	if o.probe, err = q.Duration(optProbe, minProbeInterval); err != nil {
		return o, err
	}
	if o.timeout, err = q.Duration(optTimeout, minProbeInterval); err != nil {
		return o, err
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{optFeedURL, &o.feedURL}, {optCreds, &o.creds}, {optToken, &o.token}, {optTLSCA, &o.tlsCA}, {optTLSCert, &o.tlsCert}, {optTLSKey, &o.tlsKey}} {
		if *f.dst, err = q.Take(f.key); err != nil {
			return o, err
		}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, fmt.Errorf("%w: %s and %s go together", errBadURL, optTLSCert, optTLSKey)
	}
	if o.feedURL != "" {
		if _, err := parseURL(o.feedURL); err != nil {
			return o, fmt.Errorf("%w: %s: %w", errBadURL, optFeedURL, err)
		}
	}
	if rest := q.Rest(); len(rest) > 0 {
		keys := slices.Sorted(maps.Keys(rest))
		return o, fmt.Errorf("%w: unknown option %q", errBadURL, keys[0])
	}
	return o, nil
}

// checkBucket accepts the bucket names JetStream accepts: 1 to 64
// characters A-Z a-z 0-9 _ -.
func checkBucket(b string) error {
	ok := len(b) >= 1 && len(b) <= 64
	for i := 0; ok && i < len(b); i++ {
		c := b[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("natsstore: invalid bucket name %q: use 1-64 characters A-Z a-z 0-9 _ -", b)
	}
	return nil
}
