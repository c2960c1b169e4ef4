package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/feedstatus"
)

// feedBatch is how many stream entries one XREAD returns at most.
const feedBatch = 512

// errSilent is why a feed that got no answer for two probe intervals is
// dropped.
var errSilent = errors.New("redisstore: change feed silent: a read got no answer in time")

// errRedialed is why a feed whose connection was replaced between two reads
// (its client's pool redials a connection that died while idle) is dropped:
// nothing was lost, the stream being read by id, but the connection was,
// and the feed says so as for any other loss.
var errRedialed = errors.New("redisstore: change feed connection lost between reads and redialed")

// cursor is where the feed is in the stream, and what it knows.
type cursor struct {
	id    string // the id of the last entry read ("0-0": none)
	seq   uint64 // the sequence number of the last write read
	epoch string // the epoch last seen; "" when unknown
}

// connectFeed (re)connects the feed's connection and reads where the
// stream ends now and the epoch, so that no write committed after it
// returns can be missed. ctx bounds it, and so does connectTimeout.
func (s *Store) connectFeed(ctx context.Context) (cursor, error) {
	ctx, cancel := context.WithTimeout(ctx, s.connectTimeout())
	defer cancel()
	res, err := cursorScript.Run(ctx, s.feedc, []string{s.k.stream, s.k.seq, s.k.epoch}, statesync.NewEpoch()).Slice()
	if err != nil {
		return cursor{}, err
	}
	if len(res) != 4 {
		return cursor{}, fmt.Errorf("unexpected reply %v", res)
	}
	id, _ := res[0].(string)
	seqS, _ := res[1].(string)
	seq, err := strconv.ParseUint(seqS, 10, 64)
	if err != nil {
		return cursor{}, fmt.Errorf("bad sequence number %q", seqS)
	}
	return cursor{id: id, seq: seq, epoch: epochOfReply(res[2], res[3])}, nil
}

// connectTimeout bounds a feed (re)connection and its first commands.
func (s *Store) connectTimeout() time.Duration { return max(10*time.Second, 2*s.probe) }

// run is the feed goroutine: it reads the stream, and when the connection
// fails or falls silent, reconnects with backoff and sends a Resync.
func (s *Store) run(ctx context.Context, cur cursor) {
	delay := feedstatus.MinBackoff
	for {
		err := s.follow(ctx, &cur)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("redisstore: change feed lost; reconnecting", "prefix", s.k.prefix, "err", err)
		s.status.Down(err)
		for {
			var wait time.Duration
			wait, delay = feedstatus.Backoff(delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			c, err := s.connectFeed(ctx)
			if err == nil {
				cur = c
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.status.Down(err)
		}
		delay = feedstatus.MinBackoff
		s.status.Reconnected()
		s.log.Info("redisstore: change feed reconnected", "prefix", s.k.prefix)
		s.status.Resync(&s.feed)
	}
}

// setEpoch records the epoch the feed sees now, and sends a Resync if it
// changed from a known one.
func (s *Store) setEpoch(cur *cursor, epoch string) {
	if epoch == cur.epoch {
		return
	}
	was := cur.epoch
	cur.epoch = epoch
	if was != "" {
		s.log.Warn("redisstore: the store's epoch changed (it lost history); resyncing", "prefix", s.k.prefix, "epoch", epoch)
		s.status.Resync(&s.feed)
	}
}

// follow delivers the stream's entries after cur until the connection
// fails (or was redialed between two reads), falls silent for two probe
// intervals, or ctx ends. Each XREAD
// blocks at most one probe interval, so a live server answers at least
// that often; every interval the feed also rereads the replication id and
// the epoch id.
func (s *Store) follow(ctx context.Context, cur *cursor) error {
	nextProbe := time.Now().Add(s.probe)
	conns := s.feedConns.Load()
	for {
		// What was read on a redialed connection was read by id, so it
		// is delivered before the feed reports the loss.
		if s.feedConns.Load() != conns {
			return errRedialed
		}
		if now := time.Now(); !now.Before(nextProbe) {
			nextProbe = now.Add(s.probe)
			pctx, cancel := context.WithTimeout(ctx, 2*s.probe)
			c, err := s.connectFeed(pctx)
			silent := pctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)
			cancel()
			switch {
			case err != nil && ctx.Err() != nil:
				return ctx.Err()
			case err != nil && silent:
				return errSilent
			case err != nil:
				return err
			}
			s.setEpoch(cur, c.epoch)
		}
		rctx, cancel := context.WithTimeout(ctx, 2*s.probe)
		res, err := s.feedc.XRead(rctx, &redis.XReadArgs{Streams: []string{s.k.stream, cur.id}, Count: feedBatch, Block: s.probe}).Result()
		silent := rctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)
		cancel()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && silent:
			return errSilent
		case err != nil:
			return err
		}
		for _, st := range res {
			for _, m := range st.Messages {
				s.handle(cur, m)
			}
		}
	}
}

// handle delivers one stream entry.
func (s *Store) handle(cur *cursor, m redis.XMessage) {
	cur.id = m.ID
	e, err := decodeEntry(m.Values)
	if err != nil {
		s.log.Warn("redisstore: ignoring a stream entry that is not the store's", "prefix", s.k.prefix, "id", m.ID, "err", err)
		return
	}
	epoch := epochOf(e.epochID, e.replid)
	s.setEpoch(cur, epoch)
	if e.seq != cur.seq+1 {
		s.log.Warn("redisstore: the change stream skipped writes (trimmed past what the feed read, or reset); resyncing",
			"prefix", s.k.prefix, "after", cur.seq, "next", e.seq)
		s.status.Resync(&s.feed)
	}
	cur.seq = e.seq
	s.feed.Publish(statesync.Record{Topic: e.topic, Revision: e.rev, Epoch: epoch, SourceID: e.src,
		Time: time.UnixMicro(e.micros), DataOmitted: true})
}

// entry is a decoded stream entry.
type entry struct {
	topic   string
	rev     statesync.Revision
	epochID string
	replid  string
	micros  int64
	seq     uint64
	src     string
}

// decodeEntry decodes the fields of a stream entry, as the write script
// appends them: topic, rev (decimal, > 0), epoch (the epoch id), repl (the
// replication id, maybe empty), us (commit time, µs since 1970), seq
// (decimal, > 0) and src (the source id, maybe empty). Anything else is an error; decodeEntry never panics.
func decodeEntry(v map[string]any) (entry, error) {
	str := func(k string) (string, bool) { s, ok := v[k].(string); return s, ok }
	bad := func(why string) (entry, error) { return entry{}, fmt.Errorf("redisstore: bad stream entry (%s)", why) }
	var e entry
	var ok bool
	if e.topic, ok = str("topic"); !ok || statesync.CheckTopic(e.topic) != nil {
		return bad("topic")
	}
	revS, _ := str("rev")
	rev, err := statesync.ParseRevision(revS)
	if err != nil || rev == 0 {
		return bad("revision")
	}
	e.rev = rev
	if e.epochID, ok = str("epoch"); !ok || e.epochID == "" {
		return bad("epoch")
	}
	if e.replid, ok = str("repl"); !ok {
		return bad("replication id")
	}
	us, _ := str("us")
	if e.micros, err = strconv.ParseInt(us, 10, 64); err != nil {
		return bad("time")
	}
	seq, _ := str("seq")
	if e.seq, err = strconv.ParseUint(seq, 10, 64); err != nil || e.seq == 0 {
		return bad("sequence number")
	}
	if e.src, ok = str("src"); !ok {
		return bad("source id")
	}
	return e, nil
}
