package httpsync

import (
	"errors"
	"strconv"
	"strings"

	"github.com/statesync-go/statesync"
)

// etag returns the entity tag of a snapshot: "<epoch>.<rev>", or "<rev>"
// for a source without epochs.
func etag(epoch string, rev statesync.Revision) string {
	b := make([]byte, 0, len(epoch)+24)
	b = append(b, '"')
	if epoch != "" {
		b = append(b, epoch...)
		b = append(b, '.')
	}
	b, _ = rev.AppendText(b)
	return string(append(b, '"'))
}

// A precondition is a parsed If-Match header.
type precondition struct {
	any      bool // "*": whatever the current revision
	rev      statesync.Revision
	epoch    string
	hasEpoch bool
}

var errIfMatch = errors.New(`If-Match must be "*" or one entity tag "<revision>" or "<epoch>.<revision>"`)

// parseIfMatch parses an If-Match header value: "*", or exactly one strong
// entity tag holding a canonical revision, optionally preceded by an epoch
// and a dot (the ETag form). Lists, weak tags and unquoted values are
// errors: a compare-and-set names exactly one revision.
func parseIfMatch(v string) (precondition, error) {
	v = strings.TrimSpace(v)
	if v == "*" {
		return precondition{any: true}, nil
	}
	if len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
		return precondition{}, errIfMatch
	}
	inner := v[1 : len(v)-1]
	if strings.ContainsAny(inner, "\" \t,") {
		return precondition{}, errIfMatch
	}
	var p precondition
	revText := inner
	if i := strings.LastIndexByte(inner, '.'); i >= 0 {
		p.epoch, p.hasEpoch, revText = inner[:i], true, inner[i+1:]
		if p.epoch == "" {
			return precondition{}, errIfMatch
		}
	}
	r, err := statesync.ParseRevision(revText)
	if err != nil {
		return precondition{}, errIfMatch
	}
	p.rev = r
	return p, nil
}

// noneMatch reports whether an If-None-Match header value matches the
// entity tag tag (weak comparison, as RFC 9110 §13.1.2 asks): "*" or a
// list holding tag, with or without W/.
func noneMatch(header, tag string) bool {
	for header != "" {
		header = strings.TrimLeft(header, " \t,")
		if header == "" {
			return false
		}
		if header[0] == '*' {
			return true
		}
		header = strings.TrimPrefix(header, "W/")
		if header == "" || header[0] != '"' {
			return false // malformed: ignore the header
		}
		end := strings.IndexByte(header[1:], '"')
		if end < 0 {
			return false
		}
		if header[:end+2] == tag {
			return true
		}
		header = header[end+2:]
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header value accepts gzip
// with a non-zero quality (explicitly, as x-gzip, or through "*").
func acceptsGzip(header string) bool {
	star := false
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					f = 0
				}
				q = f
			}
		}
		switch name {
		case "gzip", "x-gzip":
			return q > 0
		case "*":
			star = q > 0
		}
	}
	return star
}
