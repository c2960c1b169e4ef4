package httpsync

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/statesync-go/statesync"
)

// An Authenticator decides who makes a request. The [Handler] calls it once
// per request, before anything else; an error means 401 Unauthorized, its
// message going into the response. A nil Authenticator in
// [HandlerOptions] lets every request read and write every topic.
//
// Authenticate is called concurrently and must be safe for that.
type Authenticator interface {
	Authenticate(r *http.Request) (Grants, error)
}

// Grants say which topics a caller may read (GET a snapshot, list, stream)
// and write (PUT, PATCH, DELETE). A request for a topic outside them is
// refused with 403 Forbidden; lists and streams never carry such a topic.
// Methods are called concurrently.
type Grants interface {
	CanRead(topic string) bool
	CanWrite(topic string) bool
}

// allGrants is the Grants of an open handler.
type allGrants struct{}

func (allGrants) CanRead(string) bool  { return true }
func (allGrants) CanWrite(string) bool { return true }

// Errors returned by [Tokens.Authenticate].
var (
	// ErrNoToken is returned when a request carries no bearer token.
	ErrNoToken = errors.New("httpsync: no bearer token")
	// ErrBadToken is returned when a request's token is not one of the
	// configured tokens.
	ErrBadToken = errors.New("httpsync: unknown token")
)

// Tokens is an [Authenticator] of bearer tokens, each with read and write
// grants on topic patterns. Load it with [LoadTokens] or [ParseTokens]. A
// request gives its token in the Authorization header ("Bearer <token>")
// or, on the event stream only (GET /v1/events: browsers' EventSource
// cannot set headers), in the access_token query parameter; elsewhere the
// query parameter is refused, since URLs end up in proxy and server logs.
// Tokens are compared in constant time, all of them on every request, so
// that timing tells nothing about which one nearly matched.
//
// A Tokens is immutable and safe for concurrent use.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	sum    [sha256.Size]byte
	grants *TokenGrants // the same for every request of the token
}

// TokenFile is the JSON form of a token file:
//
//	{
//	  "tokens": [
//	    {"name": "dashboard", "token": "s3cr3t-1", "read": ["*"]},
//	    {"name": "worker", "token": "s3cr3t-2", "read": ["settings", "cache:*"], "write": ["settings"]}
//	  ]
//	}
//
// Each token reads the topics matching one of its read patterns and writes
// those matching one of its write patterns (writing does not imply reading:
// the response to a write-only token's PATCH carries no data).
// A pattern is a topic name, or a prefix followed by "*" that matches every
// topic starting with it; "*" alone matches every topic. Unknown fields,
// empty or repeated tokens and malformed patterns are errors, so that a
// typo never silently widens or narrows access.
type TokenFile struct {
	Tokens []TokenSpec `json:"tokens"`
}

// A TokenSpec is one entry of a [TokenFile].
type TokenSpec struct {
	// Name labels the token in logs; optional. It is also the writer
	// name of the token's writes: an X-Source-Id it sends must be the name
	// or start with the name followed by "/" ("worker", "worker/1"), and a
	// token without a name may send none (see [NamedGrants]). Tokens that
	// share a name may use each other's source ids.
	Name string `json:"name,omitempty"`
	// Token is the secret the client sends.
	Token string `json:"token"`
	// Read and Write are topic patterns.
	Read  []string `json:"read,omitempty"`
	Write []string `json:"write,omitempty"`
}

// LoadTokens reads a token file (see [TokenFile]).
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("httpsync: token file: %w", err)
	}
	defer f.Close()
	t, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return t, nil
}

// maxTokenFile bounds the size of a token file.
const maxTokenFile = 16 << 20

// ParseTokens reads the JSON form of a token file (see [TokenFile]).
func ParseTokens(r io.Reader) (*Tokens, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFile+1))
	if err != nil {
		return nil, fmt.Errorf("httpsync: token file: %w", err)
	}
	if len(b) > maxTokenFile {
		return nil, fmt.Errorf("httpsync: token file: larger than %d bytes", maxTokenFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var tf TokenFile
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("httpsync: token file: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("httpsync: token file: data after the JSON object")
	}
	return NewTokens(tf.Tokens)
}

// NewTokens returns the Tokens of specs, checked as [ParseTokens] does.
func NewTokens(specs []TokenSpec) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]bool{}
	for i, s := range specs {
		label := fmt.Sprintf("token %d", i+1)
		if s.Name != "" {
			label = fmt.Sprintf("token %d (%q)", i+1, s.Name)
		}
		if s.Token == "" {
			return nil, fmt.Errorf("httpsync: token file: %s: empty token", label)
		}
		if strings.ContainsAny(s.Token, " \t\r\n") {
			return nil, fmt.Errorf("httpsync: token file: %s: token contains white space", label)
		}
		sum := sha256.Sum256([]byte(s.Token))
		if seen[sum] {
			return nil, fmt.Errorf("httpsync: token file: %s: token repeated", label)
		}
		seen[sum] = true
		read, err := parsePatterns(s.Read)
		if err != nil {
			return nil, fmt.Errorf("httpsync: token file: %s: read: %w", label, err)
		}
		write, err := parsePatterns(s.Write)
		if err != nil {
			return nil, fmt.Errorf("httpsync: token file: %s: write: %w", label, err)
		}
		t.entries = append(t.entries, tokenEntry{sum: sum, grants: &TokenGrants{Name: s.Name, sum: sum, read: read, write: write}})
	}
	return t, nil
}

// Len returns the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

// Authenticate implements [Authenticator]. It returns [ErrNoToken] (also
// for an access_token query parameter outside the event stream) or
// [ErrBadToken] for a request it refuses; the Grants it returns are a
// [*TokenGrants], the same one for every request of a token.
func (t *Tokens) Authenticate(r *http.Request) (Grants, error) {
	tok, ok := requestToken(r)
	if !ok {
		if r.URL.Path != eventsPath && r.URL.Query().Has("access_token") {
			return nil, errQueryToken
		}
		return nil, ErrNoToken
	}
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i := range t.entries { // no early exit: every request costs the same
		if subtle.ConstantTimeCompare(sum[:], t.entries[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, ErrBadToken
	}
	return t.entries[found].grants, nil
}

// eventsPath is the path of the event stream, the only route that takes
// the access_token query parameter.
const eventsPath = "/v1/events"

// errQueryToken refuses a token given in the URL of a route other than the
// event stream.
var errQueryToken = fmt.Errorf("%w in the Authorization header: the access_token query parameter is accepted only on the event stream (GET %s); elsewhere send \"Authorization: Bearer <token>\"", ErrNoToken, eventsPath)

// requestToken returns the bearer token of r: from the Authorization header,
// else, on the event stream, from the access_token query parameter.
func requestToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			tok = strings.TrimSpace(tok)
			return tok, tok != ""
		}
		return "", false
	}
	if r.URL.Path != eventsPath {
		return "", false
	}
	tok := r.URL.Query().Get("access_token")
	return tok, tok != ""
}

// TokenGrants are the [Grants] of one token of a [Tokens]. A Tokens returns
// the same *TokenGrants for every request of a token, which is how a
// [Handler] counts the event streams of each token
// ([HandlerOptions.MaxStreamsPerToken]); it is shared, so do not modify
// it.
type TokenGrants struct {
	// Name is the token's name in the token file.
	Name  string
	sum   [sha256.Size]byte // of the token: Tokens.Regrant finds it again by it
	read  patterns
	write patterns
}

// WriterName returns the token's name; it implements [NamedGrants], so
// that the token's writes may carry only an X-Source-Id of that name.
func (g *TokenGrants) WriterName() string { return g.Name }

// CanRead reports whether the token may read topic.
func (g *TokenGrants) CanRead(topic string) bool { return g.read.match(topic) }

// CanWrite reports whether the token may write topic.
func (g *TokenGrants) CanWrite(topic string) bool { return g.write.match(topic) }

// patterns is a set of topic patterns: exact names and prefixes.
type patterns struct {
	all      bool
	exact    map[string]bool
	prefixes []string
}

func parsePatterns(list []string) (patterns, error) {
	p := patterns{exact: map[string]bool{}}
	for _, s := range list {
		switch {
		case s == "*":
			p.all = true
		case strings.HasSuffix(s, "*"):
			prefix := s[:len(s)-1]
			if strings.Contains(prefix, "*") || statesync.CheckTopic(prefix) != nil {
				return patterns{}, fmt.Errorf("bad pattern %q: use a topic name, a topic prefix followed by *, or *", s)
			}
			p.prefixes = append(p.prefixes, prefix)
		default:
			if statesync.CheckTopic(s) != nil {
				return patterns{}, fmt.Errorf("bad pattern %q: use a topic name, a topic prefix followed by *, or *", s)
			}
			p.exact[s] = true
		}
	}
	return p, nil
}

func (p patterns) match(topic string) bool {
	return p.all || p.exact[topic] || p.matchesPrefix(topic)
}

// matchesPrefix reports whether topic starts with one of the prefixes.
func (p patterns) matchesPrefix(topic string) bool {
	for _, pre := range p.prefixes {
		if strings.HasPrefix(topic, pre) {
			return true
		}
	}
	return false
}
