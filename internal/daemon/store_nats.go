package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/natsstore"
)

// openNATS opens the NATS JetStream key-value store of a nats:// or tls://
// URL: one or more servers separated by commas plus natsstore's bucket,
// replicas, feed_probe, timeout, feed_url, creds, token and tls_*
// parameters. ctx bounds the opening only.
func openNATS(ctx context.Context, rawURL string, log *slog.Logger) (statesync.Store, io.Closer, error) {
	st, err := natsstore.Open(ctx, rawURL, &natsstore.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return st, st, nil
}

// natsScheme returns the scheme of a NATS store URL (nats or tls), or "".
// Such URLs may list several servers, which url.Parse does not always
// take.
func natsScheme(raw string) string {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	switch s := strings.ToLower(scheme); s {
	case "nats", "tls":
		return s
	}
	return ""
}

// redactNATS returns a NATS store URL for logs: the password of each
// server's user information, a token given as a user name, and the token
// parameter replaced by xxxxx, and a URL in a feed_url parameter redacted
// the same way.
func redactNATS(raw string) string {
	servers, query, hasQuery := strings.Cut(raw, "?")
	var out []string
	for _, s := range strings.Split(servers, ",") {
		prefix, rest, ok := strings.Cut(s, "://")
		if !ok {
			prefix, rest = "", s
		} else {
			prefix += "://"
		}
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			user, _, hasPassword := strings.Cut(rest[:i], ":")
			if hasPassword {
				rest = user + ":xxxxx" + rest[i:]
			} else {
				rest = "xxxxx" + rest[i:]
			}
		}
		out = append(out, prefix+rest)
	}
	red := strings.Join(out, ",")
	if !hasQuery {
		return red
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return red + "?(a malformed query)"
	}
	for k, vs := range q {
		switch strings.ToLower(k) {
		case "token", "password":
			for i := range vs {
				vs[i] = "xxxxx"
			}
		case "feed_url":
			for i := range vs {
				vs[i] = redactNATS(vs[i])
			}
		}
	}
	return red + "?" + q.Encode()
}
