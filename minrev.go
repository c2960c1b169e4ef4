package statesync

import (
	"context"
	"fmt"
)

type minRevisionKey struct{}

type minRevision struct {
	epoch string
	rev   Revision
}

// WithMinRevision returns a context that asks the [Provider] it is given
// to for a snapshot of at least revision rev in epoch (empty: any epoch):
// the revision of the invalidation a consumer acts on, or of a write it
// made. A [Source] whose memory is older reads through to its store, so a
// client that learned of rev from one daemon and reads from another behind
// a load balancer never gets an older snapshot; httpsync.Client sends it to
// the daemon. The engine sets it on each fetch that an invalidation
// caused. It is a hint: a provider that cannot honour it answers with the
// latest it has.
func WithMinRevision(ctx context.Context, epoch string, rev Revision) context.Context {
	return &minRevisionCtx{ctx, minRevision{epoch, rev}}
}

// minRevisionCtx is what context.WithValue(ctx, minRevisionKey{}, m) would
// be in one allocation instead of two (the value's boxing is the other):
// the engine makes one per refresh.
type minRevisionCtx struct {
	context.Context
	m minRevision
}

// Value returns c itself for minRevisionKey, the rest from its parent.
func (c *minRevisionCtx) Value(key any) any {
	if _, ok := key.(minRevisionKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// String describes c as context.WithValue's contexts describe themselves.
func (c *minRevisionCtx) String() string {
	return fmt.Sprintf("%v.WithMinRevision(%q, %d)", c.Context, c.m.epoch, c.m.rev)
}

// MinRevision returns what [WithMinRevision] put in ctx; ok is false if
// nothing was, or rev was 0.
func MinRevision(ctx context.Context) (epoch string, rev Revision, ok bool) {
	m := minRevisionOf(ctx)
	return m.epoch, m.rev, m.rev > 0
}

// minRevisionOf returns what WithMinRevision put in ctx, or the zero
// minRevision.
func minRevisionOf(ctx context.Context) minRevision {
	if c, _ := ctx.Value(minRevisionKey{}).(*minRevisionCtx); c != nil {
		return c.m
	}
	return minRevision{}
}
