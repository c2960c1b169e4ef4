package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/netlimit"
	"github.com/statesync-go/statesync/web"
)

// A Server is a running daemon. Make one with [Start]; stop it with
// [Server.Shutdown].
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      *netlimit.Listener
	srv     *http.Server
	api     *httpsync.Handler
	src     *statesync.Source
	store   statesync.Store
	closeFn func() error // closes the store
	served  chan error
	certs   *certReloader // nil without TLS
	auth    *tokenAuth    // nil without tokens
	ready   readyCheck
	// Token file reloads: streams closed by them, and whether the last
	// one loaded (1) or failed (0).
	revoked  atomic.Uint64
	reloadOK atomic.Int32
	logFile  *reopenFile  // the access log's file, or nil
	pprof    *pprofServer // nil without --pprof

	stopLag func() // stops the Source.Watch measuring the feed lag
}

// Start opens the store, builds the HTTP API and starts serving on
// cfg.Addr. It returns once the listener is bound.
func Start(cfg Config, log *slog.Logger) (*Server, error) {
	return start(context.Background(), cfg, log)
}

// start is Start; ctx bounds opening the store (connecting to a
// database), not the server.
func start(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, served: make(chan error, 1)}

	var auth httpsync.Authenticator
	if cfg.Tokens != "" {
		tokens, err := loadTokens(cfg.Tokens)
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		s.auth = &tokenAuth{}
		s.auth.cur.Store(tokens)
		auth = s.auth
	}
	metricsToken, err := cfg.metricsToken()
	if err != nil {
		return nil, err
	}
	accessLogger, logFile, err := cfg.openAccessLog(log)
	if err != nil {
		return nil, err
	}
	s.logFile = logFile

	if cfg.TLSCert != "" {
		certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log)
		if err != nil {
			s.closeLog()
			return nil, err
		}
		s.certs = certs
	}

	store, closer, storeDesc, err := openStore(ctx, cfg, log)
	if err != nil {
		s.closeLog()
		return nil, err
	}
	s.store, s.closeFn = store, closer.Close
	src, err := statesync.NewSource(s.store, nil)
	if err != nil {
		_ = s.closeFn()
		s.closeLog()
		return nil, err
	}
	s.src = src
	s.api = httpsync.NewHandler(src, &httpsync.HandlerOptions{
		Auth:      auth,
		Heartbeat: cfg.Heartbeat,
		MaxBody:   cfg.MaxBody,
		Logger:    log,
		// The http.Server bounds the header and the body too, and covers
		// the routes outside the API.
		ReadTimeout:        cfg.ReadTimeout,
		MaxStreamsPerToken: cfg.MaxStreamsPerToken,
		MaxStreamTopics:    cfg.MaxStreamTopics,
		MaxPrefixTopics:    cfg.MaxPrefixTopics,
		ReconnectRate:      cfg.ReconnectRate,
		// Shutdown ends the streams with s.api.Shutdown, which s.srv.Shutdown
		// calls once its listeners are closed (RegisterOnShutdown).
		HijackStreams: true,
	})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(s.api), newSourceCollector(src, s.store))
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "statesync_feed_lag_seconds",
		Help:    "Time from a change's commit in the store to its invalidation in this daemon (the store's clock against this host's).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}})
	reg.MustRegister(lag)
	if s.auth != nil {
		s.reloadOK.Store(1)
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "statesync_streams_revoked_total",
				Help: "Event streams closed by token file reloads (SIGHUP) for a token removed or a grant lost."},
				func() float64 { return float64(s.revoked.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statesync_tokens_last_reload_successful",
				Help: "1 if the last load of the token file (at start or on SIGHUP) succeeded, 0 if it failed and the previous tokens stay in service."},
				func() float64 { return float64(s.reloadOK.Load()) }))
	}
	s.stopLag = func() {}
	if stop, err := src.Watch(context.Background(), func(inv statesync.Invalidation) {
		if inv.TimestampMs > 0 {
			lag.Observe(max(0, float64(time.Now().UnixMilli()-inv.TimestampMs)/1000))
		}
	}); err == nil {
		s.stopLag = stop
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", s.api)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /livez", s.serveLive)
	mux.HandleFunc("GET /readyz", s.serveReady)
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if metricsToken != "" {
		metrics = requireToken(metrics, metricsToken)
	}
	mux.Handle("GET /metrics", metrics)
	mux.Handle("/", web.Handler())

	inner, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = s.api.Close() // stops its fan-out goroutine
		s.closeStore()
		return nil, fmt.Errorf("serve: %w", err)
	}
	if cfg.Pprof != "" {
		if s.pprof, err = startPprof(cfg.Pprof, log); err != nil {
			_ = inner.Close()
			_ = s.api.Close()
			s.closeStore()
			return nil, err
		}
	}
	maxConns, perIP := cfg.connCaps()
	ln := netlimit.NewListener(inner, maxConns, perIP)
	s.ln = ln
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statesync_connections_open", Help: "Client connections open now."},
			func() float64 { return float64(ln.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "statesync_connections_refused_total",
			Help: "Connections closed on arrival for being over --max-conns or --max-conns-per-ip."},
			func() float64 { return float64(ln.Refused()) }))
	allowed, _ := cfg.allowedHosts() // checked by Validate
	origins, _ := cfg.corsOrigins()  // likewise
	handler := hostGuard(cors(mux, origins), allowed)
	if accessLogger != nil {
		handler = accessLog(handler, accessLogger)
	}
	s.srv = &http.Server{
		Handler: handler,
		// A header or body slower than this ends its request (a body with
		// 408, from the API); event streams clear the deadline.
		ReadHeaderTimeout: cfg.ReadTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if s.certs != nil {
		// ServeTLS offers HTTP/2 (ALPN h2) and HTTP/1.1. Event streams on
		// HTTP/2 are served without hijacking (a stream of a shared
		// connection cannot be taken over), the standard way.
		scheme = "https"
		s.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.GetCertificate}
		go func() { s.served <- s.srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { s.served <- s.srv.Serve(ln) }()
	}
	log.Info("statesync serving", slog.String("url", scheme+"://"+ln.Addr().String()+"/"),
		slog.String("store", storeDesc), slog.Bool("auth", auth != nil), slog.Int("maxConns", maxConns))
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// PprofAddr returns the address of the --pprof listener, or nil without
// one.
func (s *Server) PprofAddr() net.Addr {
	if s.pprof == nil {
		return nil
	}
	return s.pprof.Addr()
}

// ReloadTLS loads the certificate and key files again (Run calls it on
// SIGHUP); on error the previous certificate stays in service. Without
// TLS it does nothing.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// Done returns a channel that receives the error of the HTTP server if it
// stops on its own.
func (s *Server) Done() <-chan error { return s.served }

// Shutdown stops the daemon gracefully: new connections are refused, event
// streams are closed (clients reconnect elsewhere or later and miss
// nothing), requests in progress finish, then the store is closed. ctx
// bounds the wait; when it ends, connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	// The listeners close first, so that clients coming back meanwhile are
	// refused at once rather than answered 503; then the streams end, each
	// telling its client when to come back (httpsync's ReconnectRate), and
	// http.Server.Shutdown waits for the requests in flight, HTTP/2 streams
	// included.
	s.srv.RegisterOnShutdown(func() { _ = s.api.Shutdown(ctx) })
	if err := s.srv.Shutdown(ctx); err != nil {
		errs = append(errs, err)
		_ = s.srv.Close()
	}
	if err := s.api.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	s.pprof.stop()
	s.closeStore()
	s.log.Info("statesync stopped")
	return errors.Join(errs...)
}

func (s *Server) closeStore() {
	if s.stopLag != nil {
		s.stopLag()
	}
	if s.src != nil {
		_ = s.src.Close()
	}
	if err := s.closeFn(); err != nil {
		s.log.Error("closing store", slog.Any("error", err))
	}
	s.closeLog()
}

func (s *Server) closeLog() {
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
}

// Run starts the daemon and serves until ctx ends, then shuts down within
// cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	s, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			s.reload()
		case err := <-s.served:
			s.pprof.stop()
			s.closeStore()
			return fmt.Errorf("serve: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(sctx)
}

// collector exports the httpsync handler's counters to Prometheus.
type collector struct {
	h                                                               *httpsync.Handler
	streams, streamsTotal, sent, snaps, coalesced, heartbeats, gets *prometheus.Desc
	notModified, writes, conflicts, errors, gzip                    *prometheus.Desc
	slowDisconnects                                                 *prometheus.Desc
}

func newCollector(h *httpsync.Handler) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("statesync_"+name, help, labels, nil)
	}
	return &collector{h: h,
		streams:      d("streams_open", "Event streams open now."),
		streamsTotal: d("streams_total", "Event streams opened."),
		sent:         d("invalidations_sent_total", "Invalidation frames written to event streams."),
		snaps:        d("snapshots_sent_total", "Inline snapshot frames written to event streams."),
		coalesced:    d("invalidations_coalesced_total", "Invalidations replaced by a newer revision before a busy stream sent them."),
		heartbeats:   d("heartbeats_total", "Heartbeat comments written to event streams."),
		gets:         d("snapshot_gets_total", "Snapshot GETs answered 200."),
		notModified:  d("snapshot_not_modified_total", "Snapshot GETs answered 304."),
		writes:       d("writes_total", "Successful PUT, PATCH and DELETE requests."),
		conflicts:    d("conflicts_total", "Writes refused because If-Match named another revision."),
		errors:       d("http_errors_total", "Error responses by status code.", "code"),
		gzip:         d("gzip_encodes_total", "gzip encodings of snapshots (one per revision asked for)."),
		slowDisconnects: d("streams_slow_disconnects_total",
			"Event streams disconnected because they stayed over the buffer bound (a client that does not keep up)."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.streams, c.streamsTotal, c.sent, c.snaps, c.coalesced, c.heartbeats,
		c.gets, c.notModified, c.writes, c.conflicts, c.errors, c.gzip, c.slowDisconnects} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.h.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(st.StreamsOpen))
	counter(c.streamsTotal, st.StreamsTotal)
	counter(c.sent, st.InvalidationsSent)
	counter(c.snaps, st.SnapshotsSent)
	counter(c.coalesced, st.InvalidationsCoalesced)
	counter(c.heartbeats, st.Heartbeats)
	counter(c.gets, st.SnapshotGets)
	counter(c.notModified, st.NotModified)
	counter(c.writes, st.Writes)
	counter(c.conflicts, st.Conflicts)
	counter(c.gzip, st.GzipEncodes)
	counter(c.slowDisconnects, st.SlowDisconnects)
	for code, n := range st.Errors {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(n), strconv.Itoa(code))
	}
}
