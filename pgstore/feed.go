package pgstore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/internal/feedstatus"
)

// errSilent is why a feed that heard nothing for two probe intervals is
// dropped.
var errSilent = errors.New("pgstore: change feed silent: no notification (not even a probe) for two probe intervals")

// feedState is the feed goroutine's own state.
type feedState struct {
	known   string // the epoch last seen; "" when unknown
	probing bool   // a probe is in flight
	probes  chan probeResult
}

type probeResult struct {
	epoch string
	err   error
}

// connectFeed opens the feed's connection, LISTENs and then reads the
// server's ident and the epoch, so that no change committed after it
// returns can be missed. It stores the ident for the epochs of records.
func (s *Store) connectFeed(ctx context.Context) (*pgx.Conn, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.connectTimeout())
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.feedCfg)
	if err != nil {
		return nil, "", err
	}
	epoch, err := func() (string, error) {
		for _, ch := range []string{s.n.channel, s.probeCh} {
			if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
				return "", err
			}
		}
		id, err := readIdent(ctx, conn)
		if err != nil {
			return "", err
		}
		s.ident.Store(&id)
		metaID, oid, err := s.ensureMeta(ctx, conn)
		if err != nil {
			return "", err
		}
		return epochOf(metaID, oid, id), nil
	}()
	if err != nil {
		closeConn(conn)
		return nil, "", err
	}
	return conn, epoch, nil
}

// connectTimeout bounds a feed (re)connection, LISTEN and first queries
// included.
func (s *Store) connectTimeout() time.Duration { return max(10*time.Second, 2*s.probe) }

// closeConn closes a feed connection without waiting long for a server
// that may not answer.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// run is the feed goroutine: it listens on conn, and when the connection
// fails or falls silent, reconnects with backoff and sends a Resync.
func (s *Store) run(ctx context.Context, conn *pgx.Conn, st *feedState) {
	defer s.wg.Done()
	delay := feedstatus.MinBackoff
	lastErr := "" // the last reconnection error logged
	for {
		if conn != nil {
			err := s.listen(ctx, conn, st)
			closeConn(conn)
			conn = nil
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("pgstore: change feed lost; reconnecting", "schema", s.n.schema, "err", err)
			s.status.Down(err)
		}
		var wait time.Duration
		wait, delay = feedstatus.Backoff(delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		c, epoch, err := s.connectFeed(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if lastErr == "" || err.Error() != lastErr { // once per distinct error, not per attempt
				s.log.Warn("pgstore: change feed cannot reconnect; retrying", "schema", s.n.schema, "err", err)
			}
			lastErr = err.Error()
			s.status.Down(err)
			continue
		}
		lastErr = ""
		conn, delay = c, feedstatus.MinBackoff
		st.known = epoch
		s.status.Reconnected()
		s.log.Info("pgstore: change feed reconnected", "schema", s.n.schema)
		s.status.Resync(&s.feed)
	}
}

// setEpoch records the epoch the feed sees now, and sends a Resync if it
// changed from a known one.
func (s *Store) setEpoch(st *feedState, epoch string) {
	if epoch == st.known {
		return
	}
	was := st.known
	st.known = epoch
	if was != "" {
		s.log.Warn("pgstore: the store's epoch changed (it lost history); resyncing", "schema", s.n.schema, "epoch", epoch)
		s.status.Resync(&s.feed)
	}
}

// listen delivers the notifications of conn until it fails, falls silent
// for two probe intervals, or ctx ends. Every probe interval it starts a
// probe: a notification sent from the pool, which keeps a live feed from
// ever being silent and rechecks the epoch.
func (s *Store) listen(ctx context.Context, conn *pgx.Conn, st *feedState) error {
	lastHeard := time.Now()
	nextProbe := lastHeard.Add(s.probe)
	for {
		select {
		case r := <-st.probes:
			s.probed(ctx, st, r)
		default:
		}
		now := time.Now()
		if now.Sub(lastHeard) >= 2*s.probe {
			return errSilent
		}
		if !now.Before(nextProbe) {
			nextProbe = now.Add(s.probe)
			if !st.probing {
				st.probing = true
				s.wg.Go(func() { st.probes <- s.sendProbe(ctx) })
			}
		}
		wctx, cancel := context.WithDeadline(ctx, earliest(nextProbe, lastHeard.Add(2*s.probe)))
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if wctx.Err() != nil && !conn.IsClosed() {
				continue // time to probe, or to give up
			}
			return err
		}
		lastHeard = time.Now()
		s.handle(ctx, st, n.Payload)
	}
}

// probed takes the result of the probe in flight.
func (s *Store) probed(ctx context.Context, st *feedState, r probeResult) {
	st.probing = false
	if r.err == nil {
		s.setEpoch(st, r.epoch)
	} else if ctx.Err() == nil {
		s.log.Warn("pgstore: probe failed", "schema", s.n.schema, "err", r.err)
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// sendProbe sends a probe notification from a pool connection and reads
// the epoch. Any notification proves the feed alive; the probe makes sure
// there is one every interval.
func (s *Store) sendProbe(ctx context.Context) probeResult {
	ctx, cancel := context.WithTimeout(ctx, s.probe)
	defer cancel()
	var (
		metaID *string
		oid    uint32
	)
	if err := s.pool.QueryRow(ctx, s.sql.probe, s.probeCh, "p|").Scan(nil, &metaID, &oid); err != nil {
		return probeResult{err: err}
	}
	id, err := readIdent(ctx, s.pool)
	if err != nil {
		return probeResult{err: err}
	}
	s.ident.Store(&id)
	e, err := s.epoch(ctx, metaID, oid)
	return probeResult{epoch: e, err: err}
}

// probeChannel returns a new channel name for one store's probes:
// "statesync_probe_" and 16 random hex digits. Each store probes on a
// channel of its own, so that its probes cost no other store anything and
// no other store's probes can keep its feed looking alive.
func probeChannel() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return "statesync_probe_" + hex.EncodeToString(b[:])
}

// handle delivers one notification.
func (s *Store) handle(ctx context.Context, st *feedState, payload string) {
	p, err := decodePayload(payload)
	if err != nil {
		s.log.Warn("pgstore: ignoring a notification that is not the store's", "schema", s.n.schema, "channel", s.n.channel, "err", err)
		return
	}
	switch p.kind {
	case kindProbe:
		// The probe's notification is here: its epoch follows at once
		// (the probe's query returns), and a changed epoch (a restored
		// store) is acted on now, not at the next wake of the feed.
		if st.probing {
			t := time.NewTimer(s.probe)
			select {
			case r := <-st.probes:
				s.probed(ctx, st, r)
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	case kindLostHistory:
		st.known = ""
		s.log.Warn("pgstore: the topics table was emptied; resyncing", "schema", s.n.schema)
		s.status.Resync(&s.feed)
	case kindWrite:
		rec := statesync.Record{Topic: p.topic, Revision: p.revision, Epoch: epochOf(p.metaID, p.oid, *s.ident.Load()),
			SourceID: p.sourceID, Time: time.UnixMicro(p.micros), DataOmitted: true}
		if p.longSource {
			rec.SourceID = s.lookupSource(ctx, p.topic, p.revision)
		}
		s.setEpoch(st, rec.Epoch)
		s.feed.Publish(rec)
	}
}

// lookupSource reads the source id of a write whose notification could not
// carry it; "" if the revision was overwritten meanwhile.
func (s *Store) lookupSource(ctx context.Context, topic string, rev statesync.Revision) string {
	ctx, cancel := context.WithTimeout(ctx, s.probe)
	defer cancel()
	var id string
	if err := s.pool.QueryRow(ctx, s.sql.lookupSource, topic, int64(rev)).Scan(&id); err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			s.log.Warn("pgstore: reading a long source id", "topic", topic, "err", err)
		}
		return ""
	}
	return id
}

// The kinds of notification.
const (
	kindWrite       = 'w'
	kindProbe       = 'p'
	kindLostHistory = 'e'
)

// payload is a decoded notification.
type payload struct {
	kind       byte
	revision   statesync.Revision
	micros     int64
	metaID     string
	oid        uint32
	topic      string
	sourceID   string
	longSource bool
}

// decodePayload decodes a notification of the store's channel. There are
// four kinds, fields separated by '|':
//
//	w|<revision>|<commit time, µs since 1970>|<meta id>|<topics table oid>|<topic>|=<source id>
//	w|...|<topic>|+       (the source id was too long: read it from the table)
//	t|<revision>|<time>|<meta id>|<oid>|<topic length in bytes>|<topic>|=<source id> (or +)
//	p|                    (a probe, on the probing store's own channel)
//	e                     (the topics table was emptied: the epoch changed)
//
// A write of a topic holding '|' is sent as kind t, its topic preceded by
// its length; others as kind w, which is what versions before topics could
// hold '|' send and read. The source id comes last and may hold '|'.
// Anything else is an error; decodePayload never panics.
func decodePayload(s string) (payload, error) {
	bad := func(why string) (payload, error) {
		return payload{}, fmt.Errorf("pgstore: bad notification payload (%s): %.80q", why, s)
	}
	switch {
	case s == "e":
		return payload{kind: kindLostHistory}, nil
	case strings.HasPrefix(s, "p|"):
		return payload{kind: kindProbe}, nil
	case !strings.HasPrefix(s, "w|") && !strings.HasPrefix(s, "t|"):
		return bad("unknown kind")
	}
	f := strings.SplitN(s[2:], "|", 6)
	if len(f) != 6 {
		return bad("too few fields")
	}
	if s[0] == 't' { // f[4] is the topic's length, f[5] the topic, '|' and the source
		n, err := strconv.Atoi(f[4])
		if err != nil || n < 1 || n >= len(f[5]) || f[5][n] != '|' || strconv.Itoa(n) != f[4] {
			return bad("topic length")
		}
		f[4], f[5] = f[5][:n], f[5][n+1:]
		if !strings.Contains(f[4], "|") {
			return bad("kind t of a topic without '|'")
		}
	}
	var p payload
	p.kind = kindWrite
	rev, err := statesync.ParseRevision(f[0])
	if err != nil || rev == 0 {
		return bad("revision")
	}
	p.revision = rev
	if p.micros, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return bad("time")
	}
	p.metaID = f[2]
	oid, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return bad("table oid")
	}
	p.oid = uint32(oid)
	if statesync.CheckTopic(f[4]) != nil {
		return bad("topic")
	}
	p.topic = f[4]
	switch src := f[5]; {
	case src == "+":
		p.longSource = true
	case strings.HasPrefix(src, "="):
		p.sourceID = src[1:]
	default:
		return bad("source id")
	}
	return p, nil
}
