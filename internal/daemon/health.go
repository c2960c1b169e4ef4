package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statesync-go/statesync"
)

// healthBody is the body of /healthz.
type healthBody struct {
	Status string      `json:"status"`
	Feed   *feedHealth `json:"feed,omitempty"`
}

// feedHealth describes a store's change feed that is down.
type feedHealth struct {
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"`
	Error     string    `json:"error"`
}

// serveHealth answers /healthz: 200 {"status":"ok"}, or 503 when the
// store's change feed is down (a [statesync.FeedReporter] not Connected):
// the daemon would serve what its memory holds without hearing of
// changes, so a load balancer should send its clients elsewhere.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	body, status := healthBody{Status: "ok"}, http.StatusOK
	if fr, ok := s.store.(statesync.FeedReporter); ok {
		if fs := fr.FeedStatus(); !fs.Connected {
			status = http.StatusServiceUnavailable
			body.Status = "feed_down"
			// The store's error is in the daemon's log, not here: /healthz
			// answers anyone, and a driver's error names hosts and users.
			body.Feed = &feedHealth{Since: fs.Since, Error: "the store's change feed is down (the daemon's log has why)"}
		}
	}
	writeHealth(w, status, body)
}

// writeHealth writes a health body.
func writeHealth(w http.ResponseWriter, status int, body healthBody) {
	b, _ := json.Marshal(body) // plain strings and a time: never fails
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// serveLive answers /livez: 200 {"status":"ok"} whenever the daemon
// answers at all. It never touches the store: a liveness probe that fails
// restarts the process, which cures nothing when the database is down.
func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	writeHealth(w, http.StatusOK, healthBody{Status: "ok"})
}

// readyTTL is how long a /readyz result is reused, so that a flood of
// probes makes at most one store read a second.
const readyTTL = time.Second

// readyTimeout bounds the store read of /readyz.
const readyTimeout = 2 * time.Second

// readyCheck remembers the last store check of /readyz.
type readyCheck struct {
	mu sync.Mutex // protects at and ok, and serializes the checks
	at time.Time
	ok bool
}

// serveReady answers /readyz: 200 {"status":"ok"} when the store answers
// a read within 2 s and its change feed (if it has one) is up; 503
// {"status":"store_unreachable"} or {"status":"feed_down"} otherwise. The
// store's error goes to the log, never into the answer.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if !s.storeReachable(r.Context()) {
		writeHealth(w, http.StatusServiceUnavailable, healthBody{Status: "store_unreachable"})
		return
	}
	s.serveHealth(w, r)
}

// storeReachable reads a topic from the store, at most once per readyTTL
// whatever the number of callers.
func (s *Server) storeReachable(ctx context.Context) bool {
	s.ready.mu.Lock()
	defer s.ready.mu.Unlock()
	if time.Since(s.ready.at) < readyTTL {
		return s.ready.ok
	}
	// Not the request's context: a probe that gives up must not make the
	// next one see a failure.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	_, err := s.store.Get(ctx, readyTopic)
	if err != nil {
		s.log.Warn("/readyz: the store did not answer a read", slog.Any("error", err))
	}
	s.ready.at, s.ready.ok = time.Now(), err == nil
	return s.ready.ok
}

// readyTopic is the topic /readyz reads; it need not exist.
const readyTopic = "statesync:readyz"

// sourceCollector exports the Source's counters and, for a store that is
// a [statesync.FeedReporter], the state of its change feed.
type sourceCollector struct {
	src                                   *statesync.Source
	feed                                  statesync.FeedReporter // nil if the store is not one
	reads, resyncs, resyncChanged         *prometheus.Desc
	feedConnected, feedReconn, feedResync *prometheus.Desc
}

func newSourceCollector(src *statesync.Source, store statesync.Store) *sourceCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("statesync_"+name, help, nil, nil)
	}
	c := &sourceCollector{src: src,
		reads:         d("source_store_reads_total", "Store reads made to answer snapshot reads (at most one per topic and revision however many readers wait)."),
		resyncs:       d("source_resyncs_total", "Resyncs of the source: the store's feed said it may have missed changes and the source listed the store."),
		resyncChanged: d("source_resync_topics_changed_total", "Topics found changed by resyncs, each announced with an invalidation."),
		feedConnected: d("store_feed_connected", "1 if the store's change feed is up, 0 if it is down (then /healthz answers 503)."),
		feedReconn:    d("store_feed_reconnects_total", "Times the store's change feed was lost and made again."),
		feedResync:    d("store_feed_resyncs_total", "Resync records the store sent: after each feed reconnect, a silent feed or a lost history."),
	}
	c.feed, _ = store.(statesync.FeedReporter)
	return c
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reads
	ch <- c.resyncs
	ch <- c.resyncChanged
	if c.feed != nil {
		ch <- c.feedConnected
		ch <- c.feedReconn
		ch <- c.feedResync
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	st := c.src.Stats()
	counter(c.reads, st.StoreReads)
	counter(c.resyncs, st.Resyncs)
	counter(c.resyncChanged, st.ResyncChanged)
	if c.feed != nil {
		fs := c.feed.FeedStatus()
		up := 0.0
		if fs.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.feedConnected, prometheus.GaugeValue, up)
		counter(c.feedReconn, fs.Reconnects)
		counter(c.feedResync, fs.Resyncs)
	}
}
