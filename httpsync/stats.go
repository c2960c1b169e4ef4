package httpsync

import "sync/atomic"

// Stats are the counters of a [Handler], for metrics. Counters only grow;
// StreamsOpen is a gauge.
type Stats struct {
	// StreamsOpen is the number of event streams open now.
	StreamsOpen int64
	// StreamsTotal counts the event streams opened.
	StreamsTotal uint64
	// InvalidationsSent counts the invalidation frames written to streams,
	// including the initial frame of each topic of each stream.
	InvalidationsSent uint64
	// SnapshotsSent counts the inline snapshot frames written to streams.
	SnapshotsSent uint64
	// InvalidationsCoalesced counts the invalidations that were never sent
	// because a newer revision of their topic replaced them while a stream
	// was busy (or had already been sent). With InvalidationsSent and
	// SnapshotsSent it accounts for every invalidation of every stream.
	InvalidationsCoalesced uint64
	// Heartbeats counts the heartbeat comments written to streams.
	Heartbeats uint64
	// SlowDisconnects counts the streams disconnected because they stayed
	// over HandlerOptions.MaxStreamBuffer.
	SlowDisconnects uint64
	// SnapshotGets counts the 200 responses to GET /v1/topics/{topic}.
	SnapshotGets uint64
	// NotModified counts the 304 responses to GET /v1/topics/{topic}.
	NotModified uint64
	// GzipEncodes counts the gzip encodings of snapshots (one per topic
	// revision asked for with gzip, however many readers ask).
	GzipEncodes uint64
	// Writes counts the successful PUT, PATCH and DELETE requests.
	Writes uint64
	// Conflicts counts the writes refused with 412 because If-Match named
	// another revision.
	Conflicts uint64
	// Errors counts the error responses (4xx and 5xx) by status code.
	Errors map[int]uint64
}

// counters are the live form of Stats.
type counters struct {
	streamsOpen            atomic.Int64
	streamsTotal           atomic.Uint64
	invalidationsSent      atomic.Uint64
	snapshotsSent          atomic.Uint64
	invalidationsCoalesced atomic.Uint64
	heartbeats             atomic.Uint64
	slowDisconnects        atomic.Uint64
	snapshotGets           atomic.Uint64
	notModified            atomic.Uint64
	gzipEncodes            atomic.Uint64
	writes                 atomic.Uint64
	conflicts              atomic.Uint64
	errors                 [200]atomic.Uint64 // status 400 + i
}

func (c *counters) countError(status int) {
	if status >= 400 && status < 600 {
		c.errors[status-400].Add(1)
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		StreamsOpen:            c.streamsOpen.Load(),
		StreamsTotal:           c.streamsTotal.Load(),
		InvalidationsSent:      c.invalidationsSent.Load(),
		SnapshotsSent:          c.snapshotsSent.Load(),
		InvalidationsCoalesced: c.invalidationsCoalesced.Load(),
		Heartbeats:             c.heartbeats.Load(),
		SlowDisconnects:        c.slowDisconnects.Load(),
		SnapshotGets:           c.snapshotGets.Load(),
		NotModified:            c.notModified.Load(),
		GzipEncodes:            c.gzipEncodes.Load(),
		Writes:                 c.writes.Load(),
		Conflicts:              c.conflicts.Load(),
		Errors:                 map[int]uint64{},
	}
	for i := range c.errors {
		if n := c.errors[i].Load(); n > 0 {
			s.Errors[400+i] = n
		}
	}
	return s
}
