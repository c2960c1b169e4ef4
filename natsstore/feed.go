package natsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/feedstatus"
)

// Why a feed is dropped and made again.
var (
	errSilent = errors.New("natsstore: change feed silent: it delivered nothing of what the stream held one probe interval ago")
	errLost   = errors.New("natsstore: the bucket lost its history (a new stream)")
)

// connectTimeout bounds the making of a feed (its connection, the
// stream's state, its consumer) with the given probe interval.
func connectTimeout(probe time.Duration) time.Duration { return max(10*time.Second, 2*probe) }

// A feedConn is the feed's connection and the ordered consumer on it.
type feedConn struct {
	nc   *nats.Conn
	cc   jetstream.ConsumeContext
	down chan error // the connection's end (closed or lost), at most one
}

// close closes the connection, then stops the consumer on a goroutine of
// wg: stopping an ordered consumer waits for a reset in progress (its
// requests time out after 10 s on a stalled connection, and it retries
// with backoff), which must not hold up the feed.
func (f *feedConn) close(wg *sync.WaitGroup) {
	f.nc.Close()
	if f.cc != nil {
		wg.Go(f.cc.Stop)
	}
}

// startFeed connects the feed's connection and starts an ordered consumer
// of the bucket's stream on it, headers only, from the sequence after the
// last one delivered; from the stream's end if none was, or if the bucket
// is not the one of history known (nil at the start).
// Once it returns, every write acknowledged afterwards will be delivered.
func (s *Store) startFeed(ctx context.Context, known *history) (*feedConn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout(s.probe))
	defer cancel()
	f := &feedConn{down: make(chan error, 1)}
	opts := append([]nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			select {
			case f.down <- fmt.Errorf("disconnected (%v)", err):
			default:
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			select {
			case f.down <- errors.New("connection closed"):
			default:
			}
		}),
	}, s.feedOpt...)
	nc, err := connect(ctx, s.feedURL, opts)
	if err != nil {
		return nil, err
	}
	f.nc = nc
	if err := s.consume(ctx, f, known); err != nil {
		nc.Close()
		return nil, err
	}
	return f, nil
}

// consume reads the stream's state through the store's connection and
// starts the ordered consumer on f's connection.
func (s *Store) consume(ctx context.Context, f *feedConn, known *history) error {
	st, err := s.js.Stream(ctx, s.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err = s.ensureBucket(ctx); err == nil {
			st, err = s.js.Stream(ctx, s.stream)
		}
	}
	if err != nil {
		return err
	}
	info := st.CachedInfo()
	h := s.setHistory(info)
	s.fmu.Lock()
	s.gen++
	gen := s.gen
	start := s.lastSeen + 1
	if known == nil || h.epoch != known.epoch || s.lastSeen == 0 {
		start = info.State.LastSeq + 1
	}
	s.lastSeen = start - 1
	s.fmu.Unlock()
	js, err := jetstream.New(f.nc)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, s.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.prefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		HeadersOnly:    true,
	})
	if err != nil {
		return err
	}
	f.cc, err = cons.Consume(func(m jetstream.Msg) { s.deliver(gen, m) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.log.Debug("natsstore: change feed consumer", "bucket", s.bucket, "err", err)
		}))
	return err
}

// deliver hands a message of the consumer of generation gen to the
// watchers, unless the consumer was replaced meanwhile or the message was
// delivered before.
func (s *Store) deliver(gen uint64, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil || s.mute.Load() {
		return
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if gen != s.gen || md.Sequence.Stream <= s.lastSeen {
		return
	}
	s.lastSeen = md.Sequence.Stream
	rec, ok := s.record(m.Subject(), m.Headers(), md.Sequence.Stream, md.Timestamp)
	if ok {
		s.feed.Publish(rec)
	}
}

// record is the feed record of a message, false if the message is not of
// a topic (a key written by something else).
func (s *Store) record(subject string, h nats.Header, seq uint64, ts time.Time) (statesync.Record, bool) {
	if len(subject) <= len(s.prefix) || subject[:len(s.prefix)] != s.prefix {
		return statesync.Record{}, false
	}
	topic, ok := decodeKey(subject[len(s.prefix):])
	if !ok || seq == 0 {
		return statesync.Record{}, false
	}
	return statesync.Record{Topic: topic, Revision: statesync.Revision(seq), Epoch: s.Epoch(),
		SourceID: decodeSource(h.Get(SourceHeader)), Time: ts, DataOmitted: true}, true
}

// run is the feed goroutine: it watches f until it dies, falls silent or
// the bucket loses its history, then makes a new one (with backoff) and
// sends a Resync.
func (s *Store) run(ctx context.Context, f *feedConn) {
	defer s.wg.Done()
	delay := feedstatus.MinBackoff
	known := s.hist.Load()
	for {
		if f != nil {
			err := s.watch(ctx, f, known)
			f.close(&s.wg)
			f = nil
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("natsstore: change feed lost; making a new one", "bucket", s.bucket, "err", err)
			s.status.Down(err)
			var wait time.Duration
			wait, delay = feedstatus.Backoff(delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		nf, err := s.startFeed(ctx, known)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.status.Down(err)
			var wait time.Duration
			wait, delay = feedstatus.Backoff(delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		f, delay, known = nf, feedstatus.MinBackoff, s.hist.Load()
		s.status.Reconnected()
		s.log.Info("natsstore: change feed made again", "bucket", s.bucket)
		s.status.Resync(&s.feed)
	}
}

// watch returns when f's connection ends, when a probe finds the feed
// silent or the bucket's history changed, or when ctx ends. Every probe
// interval it reads the stream's state through the store's connection,
// and round-trips a PING on the feed's connection: the feed is silent if
// the ping gets no answer within the interval, or if the consumer
// delivered nothing during an interval that began with the stream holding
// messages it had not delivered.
func (s *Store) watch(ctx context.Context, f *feedConn, known *history) error {
	tick := time.NewTicker(s.probe)
	defer tick.Stop()
	var held, was uint64 // the stream's last sequence and the last delivered at the previous probe
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-f.down:
			return err
		case <-tick.C:
		}
		if err := f.nc.FlushTimeout(s.probe); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w (ping: %w)", errSilent, err)
		}
		pctx, cancel := context.WithTimeout(ctx, s.probe)
		st, err := s.js.Stream(pctx, s.stream)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("%w: %w", errLost, err)
			}
			s.log.Warn("natsstore: probe could not read the stream's state", "bucket", s.bucket, "err", err)
			continue
		}
		info := st.CachedInfo()
		if h := s.setHistory(info); h.epoch != known.epoch {
			return errLost
		}
		s.fmu.Lock()
		seen := s.lastSeen
		s.fmu.Unlock()
		if held > was && seen == was {
			return errSilent
		}
		held, was = info.State.LastSeq, seen
		s.probes.Add(1)
	}
}
