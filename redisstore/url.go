package redisstore

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The query options of a store URL that are this package's, removed before
// the URL is handed to go-redis (see the package documentation).
const (
	optPrefix      = "prefix"
	optProbe       = "feed_probe"
	optFeedURL     = "feed_url"
	optMaxLen      = "stream_maxlen"
	optWait        = "wait"
	optWaitTimeout = "wait_timeout"
)

// urlOptions are the statesync options read from a store URL; zero fields
// were absent.
type urlOptions struct {
	prefix      string
	probe       time.Duration
	feedURL     string
	maxLen      int64
	wait        int
	waitTimeout time.Duration
}

// errBadURL is wrapped by the errors of parseURL.
var errBadURL = errors.New("redisstore: invalid store URL")

// parseURL splits a store URL (redis:// or rediss://) into what go-redis
// reads (the URL without this package's options) and this package's
// options. It never panics; errors do not repeat the URL, which may hold a
// password.
func parseURL(raw string) (redisURL string, o urlOptions, err error) {
	lower := strings.ToLower(raw)
	if !strings.HasPrefix(lower, "redis://") && !strings.HasPrefix(lower, "rediss://") {
		return "", o, fmt.Errorf("%w: want a redis:// or rediss:// URL", errBadURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue.URL is the whole URL, password included
		}
		return "", o, fmt.Errorf("%w: %w", errBadURL, err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", o, fmt.Errorf("%w: query: %w", errBadURL, err)
	}
	one := func(key string) (string, error) {
		vs, ok := q[key]
		if !ok {
			return "", nil
		}
		delete(q, key)
		if len(vs) != 1 || vs[0] == "" {
			return "", fmt.Errorf("%w: option %s must be given once, with a value", errBadURL, key)
		}
		return vs[0], nil
	}
	if o.prefix, err = one(optPrefix); err != nil {
		return "", o, err
	}
	if o.prefix != "" {
		if err := checkPrefix(o.prefix); err != nil {
			return "", o, err
		}
	}
	if o.probe, err = duration(one, optProbe, minProbeInterval); err != nil {
		return "", o, err
	}
	if o.feedURL, err = one(optFeedURL); err != nil {
		return "", o, err
	}
	if v, err := one(optMaxLen); err != nil {
		return "", o, err
	} else if v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < minStreamMaxLen {
			return "", o, fmt.Errorf("%w: %s=%q: want an integer of at least %d", errBadURL, optMaxLen, v, minStreamMaxLen)
		}
		o.maxLen = n
	}
	if v, err := one(optWait); err != nil {
		return "", o, err
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxWaitReplicas {
			return "", o, fmt.Errorf("%w: %s=%q: want a number of replicas from 1 to %d", errBadURL, optWait, v, maxWaitReplicas)
		}
		o.wait = n
	}
	if o.waitTimeout, err = duration(one, optWaitTimeout, time.Millisecond); err != nil {
		return "", o, err
	}
	u.RawQuery = q.Encode()
	return u.String(), o, nil
}

// duration reads the duration option key, of at least least.
func duration(one func(string) (string, error), key string, least time.Duration) (time.Duration, error) {
	v, err := one(key)
	if err != nil || v == "" {
		return 0, err
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < least {
		return 0, fmt.Errorf("%w: %s=%q: want a duration of at least %v, such as 5s", errBadURL, key, v, least)
	}
	return d, nil
}

// checkPrefix accepts the key prefixes this package uses: 1 to 64 bytes of
// A-Z a-z 0-9 . _ : -. They hold no brace, so the prefix is the hash tag of
// every key.
func checkPrefix(p string) error {
	ok := len(p) >= 1 && len(p) <= 64
	for i := 0; ok && i < len(p); i++ {
		c := p[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
	}
	if !ok {
		return fmt.Errorf("redisstore: invalid prefix %q: use 1-64 characters A-Z a-z 0-9 . _ : -", p)
	}
	return nil
}
