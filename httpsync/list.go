package httpsync

import (
	"context"
	"slices"
	"strings"

	"github.com/statesync-go/statesync"
)

// readableTopics returns the written topics g may read, sorted by name,
// possibly with some it may not (the caller filters them). For a
// [*TokenGrants] that does not read every topic it reads only the topics
// the grants name and, where the store lists prefixes
// ([statesync.PrefixLister]), the ranges of its prefixes: a token that
// reads one topic lists it without a scan of every topic. Otherwise, or
// when that would take more than maxListings reads, it lists every topic.
func (h *Handler) readableTopics(ctx context.Context, g Grants) ([]statesync.TopicInfo, error) {
	tg, ok := g.(*TokenGrants)
	if !ok || tg == nil || tg.read.all {
		return h.src.List(ctx)
	}
	if _, ranges := h.src.Store().(statesync.PrefixLister); len(tg.read.prefixes) > 0 && !ranges ||
		len(tg.read.prefixes)+len(tg.read.exact) > maxListings {
		return h.src.List(ctx) // one listing, not one per grant (see maxListings)
	}
	var out []statesync.TopicInfo
	for _, pre := range tg.read.prefixes {
		infos, err := h.src.ListPrefix(ctx, pre)
		if err != nil {
			return nil, err
		}
		out = append(out, infos...)
	}
	for name := range tg.read.exact {
		if tg.read.matchesPrefix(name) {
			continue // listed above
		}
		snap, err := h.src.Snapshot(ctx, name)
		if err != nil {
			return nil, err
		}
		if snap.Revision != 0 { // the list holds written topics only
			out = append(out, statesync.TopicInfo{Topic: name, Revision: snap.Revision, Epoch: snap.Epoch})
		}
	}
	slices.SortFunc(out, func(a, b statesync.TopicInfo) int { return strings.Compare(a.Topic, b.Topic) })
	// Overlapping prefixes ("a*", "ab*") list a topic twice.
	return slices.CompactFunc(out, func(a, b statesync.TopicInfo) bool { return a.Topic == b.Topic }), nil
}
