package daemon

import (
	"encoding/json"
	"net/http"
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
	b, _ := json.Marshal(body) // plain strings and a time: never fails
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

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
