package httpsync

import (
	"crypto/sha256"
	"maps"
	"slices"
)

// Regrant applies new grants to the open event streams, as a daemon does
// when it loads its token file again. fn returns the Grants that now hold
// for a stream authenticated with g, or nil if its token no longer exists
// ([Tokens.Regrant] is such a function for a new [Tokens]). A stream whose
// token is gone, or whose new grants no longer let it read every topic it
// follows, is closed: its client reconnects and is then refused (401, or
// refused frames for the topics it lost) like any new request. The other
// streams stay open under their new grants.
//
// Call Regrant once the Authenticator returns the new grants, so that no
// request is authenticated with the old ones after a stream was closed:
// the closed stream's client, reconnecting at once, is refused. fn stays
// in force for every stream that registers later, so a stream
// authenticated with the old grants while the change is under way is
// mapped too (one that cannot be is refused with 503, before any frame).
// fn must therefore accept the grants it returns and return them
// unchanged, as [Tokens.Regrant] does. Calls may overlap; a stream keeps
// the grants of the latest.
//
// Regrant returns the number of streams it closed. Requests other than
// streams are not affected: each one is authenticated anew.
func (h *Handler) Regrant(fn func(g Grants) Grants) (closed int) {
	h.mu.Lock()
	h.regrant = fn
	h.regrantGen++
	gen := h.regrantGen
	streams := slices.Collect(maps.Keys(h.streams))
	h.mu.Unlock()
	for _, st := range streams {
		if !h.regrantStream(st, fn, gen) {
			closed++
		}
	}
	return closed
}

// regrantStream gives st the grants fn maps its grants to, or revokes st
// if they do not cover its topics. It reports whether st stays open.
//
// gen is the Regrant's generation: a stream already given the grants of a
// later Regrant (two that overlap, or one and a stream's registration)
// keeps them.
func (h *Handler) regrantStream(st *stream, fn func(Grants) Grants, gen uint64) bool {
	st.grantMu.Lock()
	defer st.grantMu.Unlock()
	if st.grants == nil { // a stream of a handler without Auth
		return true
	}
	if gen <= st.grantGen {
		return !st.isRevoked()
	}
	st.grantGen = gen
	g := fn(st.grants)
	ok := g != nil
	st.mu.Lock()
	for name := range st.topics {
		if !ok {
			break
		}
		ok = g.CanRead(name)
	}
	st.mu.Unlock()
	if !ok {
		st.revoke()
		return false
	}
	st.grants = g
	// The stream now counts against its token's new grants.
	if owner, isToken := g.(*TokenGrants); isToken && st.owner != nil && owner != st.owner {
		h.tokenStreams.move(st.owner, owner)
		st.owner = owner
	}
	return true
}

// currentGrants returns the stream's grants: the request's, or those of
// the latest Regrant; nil without Auth.
func (st *stream) currentGrants() Grants {
	st.grantMu.Lock()
	defer st.grantMu.Unlock()
	return st.grants
}

// revoke ends the stream: its goroutine writes a comment saying why and
// returns. It is idempotent.
func (st *stream) revoke() { st.signal(signalRevoked) }

// isRevoked reports whether revoke was called.
func (st *stream) isRevoked() bool { return st.signals.Load()&signalRevoked != 0 }

// revokedComment ends a revoked stream: a comment, which clients ignore,
// for people reading the stream with curl.
const revokedComment = ": the token's grants changed: reconnect\n\n"

// move moves the count of one stream from one token to another, without
// a cap: the stream is already open.
func (ts *tokenStreams) move(from, to *TokenGrants) {
	ts.release(from)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.n == nil {
		ts.n = map[*TokenGrants]int{}
	}
	ts.n[to]++
}

// Regrant returns the grants in t of the token whose grants in another
// Tokens are old (a [*TokenGrants]), or nil if t does not hold that token
// or old is not a *TokenGrants. With it, [Handler.Regrant] moves the
// streams open with the tokens of an old token file onto a new one.
func (t *Tokens) Regrant(old Grants) Grants {
	tg, ok := old.(*TokenGrants)
	if !ok || tg == nil {
		return nil
	}
	for i := range t.entries {
		if t.entries[i].sum == tg.sum && tg.sum != ([sha256.Size]byte{}) {
			return t.entries[i].grants
		}
	}
	return nil
}
