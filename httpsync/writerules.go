package httpsync

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/statesync-go/statesync"
)

// NamedGrants are [Grants] that name their caller. Under an
// [Authenticator], the X-Source-Id of a write must be that name or start
// with it followed by "/" (the token "worker" may send "worker" or
// "worker/1", not "dashboard"); Grants without a name, or with an empty
// one, may send no X-Source-Id at all. So a writer cannot pose as another
// and make consumers skip its write as their own echo. [*TokenGrants] are
// NamedGrants; without an Authenticator any X-Source-Id is taken.
type NamedGrants interface {
	Grants
	// WriterName returns the caller's name.
	WriterName() string
}

var _ NamedGrants = (*TokenGrants)(nil)

// sourceIDAllowed reports whether the caller of grants g may send the
// X-Source-Id id, and if not, why.
func sourceIDAllowed(id string, g Grants) (string, bool) {
	if _, open := g.(allGrants); open {
		return "", true
	}
	name := ""
	if n, ok := g.(NamedGrants); ok {
		name = n.WriterName()
	}
	if name == "" {
		return "X-Source-Id must be the token's name or start with it followed by \"/\", and this token has no name", false
	}
	if id == name || strings.HasPrefix(id, name) && id[len(name)] == '/' {
		return "", true
	}
	return "X-Source-Id " + strconv.Quote(id) + " is not this token's: it must be " + strconv.Quote(name) +
		" or start with " + strconv.Quote(name+"/"), false
}

// unchangedError aborts the update of a PATCH whose result is the current
// data: nothing is written and the answer is the current snapshot.
type unchangedError struct{ cur statesync.Snapshot }

func (*unchangedError) Error() string { return "httpsync: the patch changes nothing" }

// sameJSON reports whether the valid JSON text cur (empty: null) compacts
// to the compact JSON text compact.
func sameJSON(cur, compact []byte) bool {
	cur = bytes.TrimSpace(cur)
	if len(cur) == 0 {
		cur = []byte("null")
	}
	if bytes.Equal(cur, compact) {
		return true
	}
	return len(cur) > len(compact) && bytes.Equal(appendCompact(make([]byte, 0, len(cur)), cur), compact)
}
