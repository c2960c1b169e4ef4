package statesync

import "context"

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
	return context.WithValue(ctx, minRevisionKey{}, minRevision{epoch, rev})
}

// MinRevision returns what [WithMinRevision] put in ctx; ok is false if
// nothing was, or rev was 0.
func MinRevision(ctx context.Context) (epoch string, rev Revision, ok bool) {
	m, _ := ctx.Value(minRevisionKey{}).(minRevision)
	return m.epoch, m.rev, m.rev > 0
}
