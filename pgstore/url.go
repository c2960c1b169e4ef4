package pgstore

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/statesync-go/statesync/internal/storeurl"
)

// The query options of a store URL that are this package's, removed before
// the URL is handed to pgx (see the package documentation).
const (
	optSchema  = "schema"
	optProbe   = "feed_probe"
	optFeedURL = "feed_url"
)

// urlOptions are the statesync options read from a store URL; zero fields
// were absent.
type urlOptions struct {
	schema  string
	probe   time.Duration
	feedURL string
}

// errBadURL is wrapped by the errors of parseURL.
var errBadURL = errors.New("pgstore: invalid store URL")

// parseURL splits a store URL into what pgx reads (the URL without this
// package's options) and this package's options. A URL that is not of the
// postgres:// or postgresql:// form (a keyword/value DSN such as
// "host=db user=app") is passed to pgx unchanged and carries no options.
// It never panics; errors do not repeat the URL, which may hold a password.
func parseURL(raw string) (pgxURL string, o urlOptions, err error) {
	lower := strings.ToLower(raw)
	if !strings.HasPrefix(lower, "postgres://") && !strings.HasPrefix(lower, "postgresql://") {
		return raw, o, nil
	}
	u, q, err := storeurl.Parse(raw, errBadURL)
	if err != nil {
		return "", o, err
	}
	if o.schema, err = q.Take(optSchema); err != nil {
		return "", o, err
	}
	if o.schema != "" {
		if err := checkSchema(o.schema); err != nil {
			return "", o, err
		}
	}
	if o.probe, err = q.Duration(optProbe, minProbeInterval); err != nil {
		return "", o, err
	}
	if o.feedURL, err = q.Take(optFeedURL); err != nil {
		return "", o, err
	}
	u.RawQuery = q.Rest().Encode()
	return u.String(), o, nil
}

// checkSchema accepts the schema names this package uses: 1 to 63 bytes of
// lower-case ASCII letters, digits and underscores, starting with a letter
// or an underscore, and not starting with "pg_" (reserved by PostgreSQL).
// Such names need no quoting; they are quoted anyway.
func checkSchema(s string) error {
	ok := len(s) >= 1 && len(s) <= 63 && !strings.HasPrefix(s, "pg_") && (s[0] == '_' || s[0] >= 'a' && s[0] <= 'z')
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
	}
	if !ok {
		return fmt.Errorf("pgstore: invalid schema name %q: use 1-63 characters a-z 0-9 _, starting with a letter or _, not pg_", s)
	}
	return nil
}
