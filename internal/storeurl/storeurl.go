// Package storeurl reads the parts that the network stores' URLs have in
// common: pgstore, redisstore and natsstore each take a URL that may hold a
// password, and query options of their own, each given once with a value,
// some of them durations with a floor.
//
// What it does for them:
//
//   - [Parse] parses a URL and its query without ever repeating the URL in
//     an error: a [*url.Error] carries the whole URL, password included, and
//     a careless password (one holding an unescaped / ? # or %) can make
//     url.Parse quote a piece of it; such a message is replaced by a hint.
//     [ParseQuery] parses a query alone.
//   - The methods of [Query] take the store's options out of the query one
//     by one and leave the rest, for the driver or for an unknown-option
//     check.
//
// Every error wraps the sentinel the store passes in (its own errBadURL),
// so callers see the store's error, as before this package. Each store keeps
// its own options, their checks and the messages for its integer options.
// Nothing here panics, whatever the input.
package storeurl

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Parse parses raw, a URL that may hold a user name and password, and its
// query. Its errors, and those of the [Query], wrap bad; they never hold the
// URL nor, as far as can be told, any part of the user information.
func Parse(raw string, bad error) (*url.URL, *Query, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue.URL is the whole URL, password included
		}
		if quotesUserinfo(raw, err.Error()) {
			return nil, nil, fmt.Errorf("%w: cannot parse it (details hidden: they would quote the user name or password; percent-encode any of %% / ? # @ : in those)", bad)
		}
		return nil, nil, fmt.Errorf("%w: %w", bad, err)
	}
	q, err := ParseQuery(u.RawQuery, bad)
	if err != nil {
		return nil, nil, err
	}
	return u, q, nil
}

// quotesUserinfo reports whether msg, the message of url.Parse's error on
// raw, quotes text that may come from raw's user name or password. Those
// are before raw's last @; url's messages quote pieces of the URL with %q
// (a port, with its colon, a host, an escape). A message it cannot read is
// taken as quoting them.
func quotesUserinfo(raw, msg string) bool {
	before := raw[:max(strings.LastIndexByte(raw, '@'), 0)] // "" without an @
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			return false
		}
		q, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			return true
		}
		s, _ := strconv.Unquote(q) // cannot fail on a QuotedPrefix
		if s = strings.TrimPrefix(s, ":"); s != "" && strings.Contains(before, s) {
			return true
		}
		msg = msg[i+len(q):]
	}
}

// Query is the query of a store URL, from which a store takes its options.
// It is not safe for concurrent use.
type Query struct {
	rest url.Values // the options not taken yet
	bad  error      // wrapped by every error
}

// ParseQuery parses the query of a store URL (without its "?"). Its errors
// and those of the [Query] wrap bad.
func ParseQuery(rawQuery string, bad error) (*Query, error) {
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		if errors.As(err, new(url.EscapeError)) {
			// Not quoted: the escape may be a piece of a password= or
			// token= option.
			return nil, fmt.Errorf("%w: query: a %% not followed by two hex digits (write a %% in a value as %%25)", bad)
		}
		return nil, fmt.Errorf("%w: query: %w", bad, err)
	}
	return &Query{rest: v, bad: bad}, nil
}

// Take removes the option key from the query and returns its value, or ""
// if the query has no such option. An option given more than once, or
// without a value, is an error.
func (q *Query) Take(key string) (string, error) {
	vs, ok := q.rest[key]
	if !ok {
		return "", nil
	}
	delete(q.rest, key)
	if len(vs) != 1 || vs[0] == "" {
		return "", fmt.Errorf("%w: option %s must be given once, with a value", q.bad, key)
	}
	return vs[0], nil
}

// Duration takes the option key as [Take] does and parses it as a duration
// (such as 5s) of at least least. It returns 0 if the query has no such
// option.
func (q *Query) Duration(key string, least time.Duration) (time.Duration, error) {
	v, err := q.Take(key)
	if err != nil || v == "" {
		return 0, err
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < least {
		return 0, fmt.Errorf("%w: %s=%q: want a duration of at least %v, such as 5s", q.bad, key, v, least)
	}
	return d, nil
}

// Rest returns the options not taken yet. The result is the Query's own:
// taking an option later removes it from the result too.
func (q *Query) Rest() url.Values {
	return q.rest
}
