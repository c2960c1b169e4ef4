package redisstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/statesync-go/statesync/internal/storeurl"
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
	u, q, err := storeurl.Parse(raw, errBadURL)
	if err != nil {
		return "", o, err
	}
	if o.prefix, err = q.Take(optPrefix); err != nil {
		return "", o, err
	}
	if o.prefix != "" {
		if err := checkPrefix(o.prefix); err != nil {
			return "", o, err
		}
	}
	if o.probe, err = q.Duration(optProbe, minProbeInterval); err != nil {
		return "", o, err
	}
	if o.feedURL, err = q.Take(optFeedURL); err != nil {
		return "", o, err
	}
	if v, err := q.Take(optMaxLen); err != nil {
		return "", o, err
	} else if v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < minStreamMaxLen {
			return "", o, fmt.Errorf("%w: %s=%q: want an integer of at least %d", errBadURL, optMaxLen, v, minStreamMaxLen)
		}
		o.maxLen = n
	}
	if v, err := q.Take(optWait); err != nil {
		return "", o, err
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxWaitReplicas {
			return "", o, fmt.Errorf("%w: %s=%q: want a number of replicas from 1 to %d", errBadURL, optWait, v, maxWaitReplicas)
		}
		o.wait = n
	}
	if o.waitTimeout, err = q.Duration(optWaitTimeout, time.Millisecond); err != nil {
		return "", o, err
	}
	u.RawQuery = q.Rest().Encode()
	return u.String(), o, nil
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
