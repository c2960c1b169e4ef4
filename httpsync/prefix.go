package httpsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/statesync-go/statesync"
)

// Watch by prefix: GET /v1/events?prefix=cart: follows every topic whose
// name starts with "cart:" that the token may read, those written after
// the stream opened included.
//
// A prefix stream is registered under its prefixes (Handler.byPrefix); its
// topics are not in Handler.byTopic (only those it names with topic= are).
// The fan-out goroutine looks each invalidation's topic up by each length
// of the registered prefixes (a map lookup per distinct length, none when
// no prefix stream is open), and hands it to the matching streams, which
// take the topic in on its first invalidation if the token may read it.
// A token that may not read a topic never learns of it: its stream skips
// the invalidation before recording anything.

// defaultMaxPrefixTopics is the default of HandlerOptions.MaxPrefixTopics.
const defaultMaxPrefixTopics = 10000

// maxStreamPrefixes bounds the distinct prefixes of one stream: each costs
// a map lookup per invalidation of a matching length, and a listing.
const maxStreamPrefixes = 64

// maxPrefixListings bounds the prefix listings that run at once: each
// holds a store listing in memory until the stream has taken it in.
const maxPrefixListings = 4

// errTooManyTopics is returned by prefixTopics for a listing over the cap.
var errTooManyTopics = errors.New("too many topics")

// prefixRefusal is the payload of the refused frame that ends a prefix
// stream whose prefixes came to match more topics than it may follow.
type prefixRefusal struct {
	Prefix  string `json:"prefix"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// checkPrefix reports whether p may be a prefix= parameter: "" (every
// topic), or a non-empty prefix of a valid topic name. Whatever the
// naming rule, that is p itself if it is a valid name, or p followed by a
// digit (a rule may refuse a name that longer names start with, such as
// ".", but not for a trailing digit).
func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	err := statesync.CheckTopic(p)
	if err == nil || statesync.CheckTopic(p+"0") == nil {
		return nil
	}
	return fmt.Errorf("invalid prefix: %w", err)
}

// matchPrefix returns the first of prefixes that topic starts with.
func matchPrefix(prefixes []string, topic string) (string, bool) {
	for _, p := range prefixes {
		if strings.HasPrefix(topic, p) {
			return p, true
		}
	}
	return "", false
}

// registerPrefixes adds st under its prefixes. h.mu is held.
func (h *Handler) registerPrefixes(st *stream) {
	for _, p := range st.prefixes {
		m := h.byPrefix[p]
		if m == nil {
			m = map[*stream]struct{}{}
			h.byPrefix[p] = m
			h.prefixLens[len(p)]++
		}
		m[st] = struct{}{}
	}
}

// unregisterPrefixes removes st from under its prefixes. h.mu is held.
func (h *Handler) unregisterPrefixes(st *stream) {
	for _, p := range st.prefixes {
		m := h.byPrefix[p]
		if m == nil {
			continue
		}
		delete(m, st)
		if len(m) == 0 {
			delete(h.byPrefix, p)
			if h.prefixLens[len(p)]--; h.prefixLens[len(p)] == 0 {
				delete(h.prefixLens, len(p))
			}
		}
	}
}

// prefixStreams appends to out the prefix streams of topic that do not
// name it (those are notified through Handler.byTopic). It is called by
// the fan-out goroutine only, with h.mu read-locked; h.fanSeen is its
// scratch set.
func (h *Handler) prefixStreams(topic string, out []*stream) []*stream {
	for n := range h.prefixLens {
		if n > len(topic) {
			continue
		}
		for st := range h.byPrefix[topic[:n]] {
			if slices.Contains(st.named, topic) {
				continue
			}
			if _, ok := h.fanSeen[st]; ok {
				continue // another of its prefixes matched too
			}
			h.fanSeen[st] = struct{}{}
			out = append(out, st)
		}
	}
	clear(h.fanSeen)
	return out
}

// notifyPrefixed is notifyTopic for a prefix stream: it takes the topic in
// first if the stream does not follow it yet and the token may read it.
// A topic beyond the stream's cap is not taken in: the stream is marked
// to end (overflow) and woken.
func (st *stream) notifyPrefixed(inv statesync.Invalidation, size int64, fr *fanFrame) (coalesced bool) {
	st.mu.Lock()
	_, known := st.topics[inv.Topic]
	st.mu.Unlock()
	if !known {
		// Under grantMu (then mu, in that order), so that Handler.Regrant,
		// which replaces the grants and then checks the stream's topics,
		// sees every topic taken in under the old grants. A topic the
		// token may not read is never recorded.
		st.grantMu.Lock()
		if st.grants != nil && !st.grants.CanRead(inv.Topic) {
			st.grantMu.Unlock()
			return false
		}
		st.mu.Lock()
		if st.topics[inv.Topic] == nil {
			if len(st.topics) >= st.maxTopics {
				if p, ok := matchPrefix(st.prefixes, inv.Topic); ok && st.overflow == "" {
					st.overflow = p
				}
				st.mu.Unlock()
				st.grantMu.Unlock()
				st.wakeUp()
				return false
			}
			st.topics[inv.Topic] = &streamTopic{name: inv.Topic, st: st}
		}
		st.mu.Unlock()
		st.grantMu.Unlock()
	}
	st.mu.Lock()
	t := st.topics[inv.Topic]
	if t == nil {
		st.mu.Unlock()
		return false
	}
	return st.notifyLocked(t, inv, size, fr)
}

// overflowed returns the prefix whose topics went over the stream's cap,
// or "".
func (st *stream) overflowed() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.overflow
}

// wakeUp wakes the stream's goroutine.
func (st *stream) wakeUp() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// appendOverflow appends the refused frame that ends a stream whose
// prefix p came to match more topics than max.
func appendOverflow(buf []byte, p string, max int) []byte {
	b, _ := json.Marshal(prefixRefusal{Prefix: p, Code: CodeTooManyTopics, Message: overflowMessage(max)})
	buf = append(buf, "event: refused\ndata: "...)
	buf = append(buf, b...)
	return append(buf, "\n\n"...)
}

func overflowMessage(max int) string {
	return "the prefixes of this event stream match more than " + strconv.Itoa(max) +
		" topics this token may read, the most one stream may follow: use longer prefixes"
}

// prefixTopics returns the written topics whose names start with prefix,
// sorted by name, possibly with some g may not read (the caller filters
// them). For a [*TokenGrants] that does not read every topic, on a store
// that lists prefixes, it lists only the ranges the grants and the prefix
// have in common, and reads the exact names the grants give under the
// prefix: a token that may read "cart:alice*" watching "cart:" never makes
// the daemon list every cart.
func (h *Handler) prefixTopics(ctx context.Context, g Grants, prefix string) ([]statesync.TopicInfo, error) {
	tg, ok := g.(*TokenGrants)
	_, ranges := h.src.Store().(statesync.PrefixLister)
	if !ok || tg == nil || tg.read.all || !ranges {
		return h.src.ListPrefix(ctx, prefix)
	}
	var out []statesync.TopicInfo
	lists, whole := prefixListings(tg, prefix)
	for _, p := range lists {
		infos, err := h.src.ListPrefix(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, infos...)
	}
	if !whole {
		for name := range tg.read.exact {
			if !strings.HasPrefix(name, prefix) || tg.read.matchesPrefix(name) {
				continue // not under prefix, or listed above
			}
			snap, err := h.src.Snapshot(ctx, name)
			if err != nil {
				return nil, err
			}
			if snap.Revision != 0 {
				out = append(out, statesync.TopicInfo{Topic: name, Revision: snap.Revision, Epoch: snap.Epoch})
			}
		}
	}
	slices.SortFunc(out, func(a, b statesync.TopicInfo) int { return strings.Compare(a.Topic, b.Topic) })
	return slices.CompactFunc(out, func(a, b statesync.TopicInfo) bool { return a.Topic == b.Topic }), nil
}

// prefixListings returns the prefixes that prefixTopics lists for prefix
// and tg: prefix alone if a grant covers the whole of it (whole true), else
// the grant prefixes under it.
func prefixListings(tg *TokenGrants, prefix string) (lists []string, whole bool) {
	for _, gp := range tg.read.prefixes {
		switch {
		case strings.HasPrefix(prefix, gp):
			return []string{prefix}, true
		case strings.HasPrefix(gp, prefix):
			lists = append(lists, gp)
		}
	}
	return lists, false
}

// maxListings is the most prefix listings (and exact-name reads) one
// request makes of the store. A request that would make more lists every
// topic once and filters: a store whose prefix listing is a scan
// (natsstore) then scans once, not once per prefix, whatever the number of
// prefixes a stream names or grants a token has.
const maxListings = 8

// listingCost returns the number of store listings and exact-name reads
// that listing the topics of prefixes for g takes, one by one.
func (h *Handler) listingCost(g Grants, prefixes []string) int {
	tg, ok := g.(*TokenGrants)
	_, ranges := h.src.Store().(statesync.PrefixLister)
	if !ok || tg == nil || tg.read.all || !ranges {
		return len(prefixes)
	}
	n := 0
	for _, p := range prefixes {
		lists, whole := prefixListings(tg, p)
		n += len(lists)
		if !whole {
			for name := range tg.read.exact {
				if strings.HasPrefix(name, p) {
					n++
				}
			}
		}
	}
	return n
}

// listPrefixes lists the topics of st's prefixes that its token may read
// and takes them in, those it already follows excepted (named, or taken
// in by an invalidation since the stream was registered). It returns the
// invalidations of the initial frames of the topics it took in, sorted by
// name. More than st.maxTopics topics in all is errTooManyTopics.
// Listings are bounded by h.listings, waited for until ctx ends or the
// handler closes.
func (h *Handler) listPrefixes(ctx context.Context, st *stream, g Grants) ([]statesync.Invalidation, error) {
	select {
	case h.listings <- struct{}{}:
		defer func() { <-h.listings }()
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.done:
		return nil, statesync.ErrClosed
	}
	var all []statesync.TopicInfo
	if h.listingCost(g, st.prefixes) > maxListings {
		infos, err := h.src.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			if underAny(in.Topic, st.prefixes) && g.CanRead(in.Topic) {
				all = append(all, in)
			}
		}
		if len(all) > st.maxTopics {
			return nil, errTooManyTopics
		}
	} else {
		var err error
		if all, err = h.listEach(ctx, st, g); err != nil {
			return nil, err
		}
	}
	if len(st.prefixes) > 1 {
		slices.SortFunc(all, func(a, b statesync.TopicInfo) int { return strings.Compare(a.Topic, b.Topic) })
		all = slices.CompactFunc(all, func(a, b statesync.TopicInfo) bool { return a.Topic == b.Topic })
	}
	out := make([]statesync.Invalidation, 0, len(all))
	// Taken in under grantMu, checked against the stream's grants of now
	// (a Regrant may have replaced g meanwhile): see notifyPrefixed.
	st.grantMu.Lock()
	defer st.grantMu.Unlock()
	cur := st.grants
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, in := range all {
		if st.topics[in.Topic] != nil {
			continue // named, or taken in by a write: its frame is on its way
		}
		if cur != nil && !cur.CanRead(in.Topic) {
			continue // no longer readable
		}
		if len(st.topics) >= st.maxTopics {
			return nil, errTooManyTopics
		}
		st.topics[in.Topic] = &streamTopic{name: in.Topic, st: st}
		out = append(out, statesync.Invalidation{Topic: in.Topic, Revision: in.Revision, Epoch: in.Epoch})
	}
	return out, nil
}

// listEach lists the topics of st's prefixes that g may read one prefix
// at a time (see prefixTopics), stopping at more than st.maxTopics.
func (h *Handler) listEach(ctx context.Context, st *stream, g Grants) ([]statesync.TopicInfo, error) {
	var all []statesync.TopicInfo
	for _, p := range st.prefixes {
		infos, err := h.prefixTopics(ctx, g, p)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			if strings.HasPrefix(in.Topic, p) && g.CanRead(in.Topic) {
				all = append(all, in)
			}
		}
		if len(all) > st.maxTopics {
			return nil, errTooManyTopics // before listing the other prefixes
		}
	}
	return all, nil
}

// underAny reports whether topic starts with one of prefixes.
func underAny(topic string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(topic, p) {
			return true
		}
	}
	return false
}
