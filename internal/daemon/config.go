// Package daemon wires the statesync daemon: a durable Source behind the
// httpsync API, the web dashboard, health and Prometheus metrics, auth,
// logging and graceful shutdown. cmd/statesync's serve subcommand is a thin
// front for [Run].
//
// Without tokens the daemon answers only requests whose Host header names
// a loopback host (localhost, *.localhost, 127.0.0.1, [::1]) or one of
// [Config.AllowedHosts], and 403 to others except /healthz: a defence
// against DNS rebinding, where a web page rebinds its own name to
// 127.0.0.1. With tokens, and with [Config.Insecure] without AllowedHosts,
// every name is accepted.
//
// Against hostile clients, a request's header and body must arrive within
// [Config.ReadTimeout] (408 for a body; event streams are exempt),
// connections are capped in total and per client address
// ([Config.MaxConns], [Config.MaxConnsPerIP]; see internal/netlimit) and
// event streams per token ([Config.MaxStreamsPerToken]).
//
// Web pages of the origins in [Config.CORSOrigins] may use the API and
// statesync.js across origins; others get no CORS header. With
// [Config.TLSCert] and [Config.TLSKey] the daemon serves HTTPS and HTTP/2,
// and loads the pair again when the files change or on SIGHUP.
//
// SIGHUP also loads the token file again: new requests use the new
// tokens, and event streams whose token was removed or lost a grant on one
// of their topics are closed ([Server.ReloadTokens]). /livez tells that the
// process answers, /readyz that its store answers and its change feed is
// up, /healthz (kept as it was) that the feed is up; /metrics may require
// [Config.MetricsToken]; [Config.AccessLog] logs every request.
package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the daemon's configuration. Every field has a flag of
// `statesync serve` and a STATESYNC_* environment variable; flags win.
type Config struct {
	// Addr is the TCP address to listen on (STATESYNC_ADDR).
	Addr string
	// Store is the URL of the store (STATESYNC_STORE): postgres://… or
	// postgresql://… (a PostgreSQL database, which several daemons can
	// share), redis://… or rediss://… (a Redis, likewise), bbolt:DIR (the bbolt file in DIR, as Data) or memory: (as
	// Memory). Empty means Data, or Memory if set. Store with Memory is
	// an error, and so is Store with an explicit --data
	// (ParseFlags); Data is then ignored.
	Store string
	// Data is the directory of the durable store (STATESYNC_DATA).
	Data string
	// Memory keeps state in memory only: nothing survives a restart
	// (STATESYNC_MEMORY).
	Memory bool
	// Tokens is the path of the token file; empty means no auth
	// (STATESYNC_TOKENS).
	Tokens string
	// Insecure allows listening on a non-loopback address without tokens,
	// and then answers requests for any host name unless AllowedHosts is
	// set (STATESYNC_INSECURE).
	Insecure bool
	// AllowedHosts is a comma-separated list of host names (without port)
	// that requests may name in their Host header when the daemon runs
	// without tokens, besides the loopback names localhost, *.localhost,
	// 127.0.0.1 and [::1] (STATESYNC_ALLOWED_HOSTS). Without tokens, a
	// request for any other name is refused with 403: a web page whose
	// name is rebound to 127.0.0.1 (DNS rebinding) cannot reach the
	// daemon. With tokens any name is accepted; with Insecure and no
	// AllowedHosts too.
	AllowedHosts string
	// CORSOrigins is a comma-separated list of the origins
	// (scheme://host[:port]) whose web pages may use the API, the event
	// stream and statesync.js from another origin, or "*" for any origin,
	// which needs Tokens or Insecure (STATESYNC_CORS_ORIGINS). Empty means
	// same-origin only. No credentials (cookies) are ever allowed: clients
	// send their bearer token themselves.
	CORSOrigins string
	// TLSCert and TLSKey are the PEM files of the certificate (with its
	// chain) and key to serve HTTPS and HTTP/2 with (STATESYNC_TLS_CERT,
	// STATESYNC_TLS_KEY): both or neither. They are loaded again when
	// either file changes and on SIGHUP.
	TLSCert, TLSKey string
	// MetricsToken, if set, is the bearer token /metrics requires
	// (STATESYNC_METRICS_TOKEN); MetricsTokenFile names a file whose first
	// line is that token, which keeps it out of the process list
	// (STATESYNC_METRICS_TOKEN_FILE). Give one or neither; with neither,
	// /metrics answers anyone who may reach the daemon.
	MetricsToken, MetricsTokenFile string
	// AccessLog turns on the access log, one line per request (an event
	// stream's when it ends): "-" for the daemon's own log (stderr), or
	// the path of a file to append to, opened again on SIGHUP; empty means
	// off (STATESYNC_ACCESS_LOG).
	AccessLog string
	// Pprof is a loopback address (127.0.0.1, [::1] or localhost, with a
	// port) on which to serve net/http/pprof, on a listener of its own;
	// empty means off (STATESYNC_PPROF).
	Pprof string
	// Heartbeat is the interval of SSE heartbeat comments
	// (STATESYNC_HEARTBEAT).
	Heartbeat time.Duration
	// MaxBody is the largest accepted request body in bytes
	// (STATESYNC_MAX_BODY).
	MaxBody int64
	// ReadTimeout bounds reading a request's header and body; a body
	// slower than that is refused with 408 and its connection closed.
	// Event streams are not affected (STATESYNC_READ_TIMEOUT).
	ReadTimeout time.Duration
	// MaxConns caps the connections open at once; one more is closed as
	// soon as it is accepted. 0 derives the cap from the open-file limit
	// of the process (its soft RLIMIT_NOFILE, which Go raises to the hard
	// limit at start, minus 128 for the store and the rest); negative
	// means no cap (STATESYNC_MAX_CONNS).
	MaxConns int
	// MaxConnsPerIP caps the connections open at once from one client
	// address; 0 means no cap. Behind a reverse proxy, and on a loopback
	// address, every client has the proxy's or the loopback address, so
	// this is a second total cap there (STATESYNC_MAX_CONNS_PER_IP).
	MaxConnsPerIP int
	// MaxStreamsPerToken caps the event streams open at once with one
	// token; one more is refused with 429. Negative means no cap
	// (STATESYNC_MAX_STREAMS_PER_TOKEN).
	MaxStreamsPerToken int
	// MaxStreamTopics is the most topics one event stream may name
	// (topic=); more are refused with 400 (STATESYNC_MAX_STREAM_TOPICS).
	MaxStreamTopics int
	// MaxPrefixTopics is the most topics one event stream with prefixes
	// (prefix=) may follow: a stream whose prefixes match more when it
	// opens is refused with 400 too_many_topics, and one whose prefixes
	// come to match more ends with a refused frame
	// (STATESYNC_MAX_PREFIX_TOPICS).
	MaxPrefixTopics int
	// ReconnectRate spreads the clients' return when the daemon shuts
	// down: each event stream ends with a retry field of its own, the i-th
	// asking its client to come back after 500 ms plus i/ReconnectRate
	// seconds. Negative: no such field (STATESYNC_RECONNECT_RATE).
	ReconnectRate int
	// ShutdownTimeout bounds graceful shutdown (STATESYNC_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error (STATESYNC_LOG_LEVEL).
	LogLevel string
	// LogFormat is text or json (STATESYNC_LOG_FORMAT).
	LogFormat string
}

// DefaultConfig returns the daemon's default configuration.
func DefaultConfig() Config {
	return Config{
		Addr:          "127.0.0.1:8765",
		Data:          "./statesync-data",
		Heartbeat:     15 * time.Second,
		MaxBody:       1 << 20,
		ReadTimeout:   10 * time.Second,
		MaxConnsPerIP: 1000,
		// Enough for every tab of a team's dashboard on one shared token.
		MaxStreamsPerToken: 1000,
		MaxStreamTopics:    1024,
		MaxPrefixTopics:    10000,
		ReconnectRate:      5000,
		ShutdownTimeout:    10 * time.Second,
		LogLevel:           "info",
		LogFormat:          "text",
	}
}

// ParseFlags parses the serve flags in args over the defaults and the
// STATESYNC_* variables read with getenv (os.Getenv if nil).
func ParseFlags(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := DefaultConfig()
	// A bad variable is reported after the flags are parsed, so that -h
	// and flag errors still print the usage.
	envErr := cfg.fromEnv(getenv)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if out != nil {
		fs.SetOutput(out)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: statesync serve [flags]\n\nRuns the statesync daemon: the HTTP API (/v1/...), the dashboard (/), /healthz and /metrics.\nEvery flag can also be set with the STATESYNC_* variable named in its help.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (STATESYNC_ADDR)")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "store URL: postgres://user:pass@host/db?sslmode=…&schema=…&pool_max_conns=… (a PostgreSQL database several daemons can share), redis://:pass@host:6379/0?prefix=… (a Redis, likewise), bbolt:DIR or memory:; default: --data (STATESYNC_STORE)")
	fs.StringVar(&cfg.Data, "data", cfg.Data, "data directory of the durable store (STATESYNC_DATA)")
	fs.BoolVar(&cfg.Memory, "memory", cfg.Memory, "keep state in memory only; nothing survives a restart (STATESYNC_MEMORY)")
	fs.StringVar(&cfg.Tokens, "tokens", cfg.Tokens, "token file enabling bearer-token auth, see README (STATESYNC_TOKENS)")
	fs.BoolVar(&cfg.Insecure, "insecure", cfg.Insecure, "allow a non-loopback address without tokens, and any Host header unless --allowed-hosts is given (STATESYNC_INSECURE)")
	fs.StringVar(&cfg.AllowedHosts, "allowed-hosts", cfg.AllowedHosts, "without tokens, comma-separated host names accepted in the Host header besides localhost, *.localhost, 127.0.0.1 and [::1]; others get 403 (a defence against DNS rebinding) (STATESYNC_ALLOWED_HOSTS)")
	fs.StringVar(&cfg.CORSOrigins, "cors-origins", cfg.CORSOrigins, "comma-separated origins (scheme://host[:port]) whose pages may use the API and statesync.js cross-origin, or * for any (needs --tokens or --insecure); never with cookies (STATESYNC_CORS_ORIGINS)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate (and chain) to serve HTTPS and HTTP/2 with, with --tls-key; reloaded when it changes and on SIGHUP (STATESYNC_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key of --tls-cert (STATESYNC_TLS_KEY)")
	fs.StringVar(&cfg.MetricsToken, "metrics-token", cfg.MetricsToken, "bearer token that /metrics requires; prefer the variable or --metrics-token-file, which stay out of the process list (STATESYNC_METRICS_TOKEN)")
	fs.StringVar(&cfg.MetricsTokenFile, "metrics-token-file", cfg.MetricsTokenFile, "file whose first line is the token /metrics requires (STATESYNC_METRICS_TOKEN_FILE)")
	fs.StringVar(&cfg.AccessLog, "access-log", cfg.AccessLog, "log one line per request (method, path, status, bytes, duration, remote, token name): - for the daemon's log on stderr, or a file to append to; off if empty (STATESYNC_ACCESS_LOG)")
	fs.StringVar(&cfg.Pprof, "pprof", cfg.Pprof, "loopback address (host:port) to serve net/http/pprof on, apart from --addr; off by default (STATESYNC_PPROF)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", cfg.Heartbeat, "SSE heartbeat interval (STATESYNC_HEARTBEAT)")
	fs.Int64Var(&cfg.MaxBody, "max-body", cfg.MaxBody, "largest request body in bytes (STATESYNC_MAX_BODY)")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", cfg.ReadTimeout, "time to read a request's header and body; a slower body gets 408 (STATESYNC_READ_TIMEOUT)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most connections open at once, more are closed at once; 0: the open-file limit minus 128, negative: no cap (STATESYNC_MAX_CONNS)")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "most connections open at once from one client address (behind a proxy all clients share one); 0: no cap (STATESYNC_MAX_CONNS_PER_IP)")
	fs.IntVar(&cfg.MaxStreamsPerToken, "max-streams-per-token", cfg.MaxStreamsPerToken, "most event streams open at once with one token, more get 429; negative: no cap (STATESYNC_MAX_STREAMS_PER_TOKEN)")
	fs.IntVar(&cfg.MaxStreamTopics, "max-stream-topics", cfg.MaxStreamTopics, "most topics one event stream may name, more get 400 (STATESYNC_MAX_STREAM_TOPICS)")
	fs.IntVar(&cfg.MaxPrefixTopics, "max-prefix-topics", cfg.MaxPrefixTopics, "most topics one event stream's prefixes may match, more get 400 too_many_topics (STATESYNC_MAX_PREFIX_TOPICS)")
	fs.IntVar(&cfg.ReconnectRate, "reconnect-rate", cfg.ReconnectRate, "at shutdown, event streams are told to come back at about this many a second, from 0.5 s on; negative: no such hint (STATESYNC_RECONNECT_RATE)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "graceful shutdown limit (STATESYNC_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error (STATESYNC_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json (STATESYNC_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, FlagError{err}
	}
	if fs.NArg() > 0 {
		// A usage error like a bad flag: printed with the usage, so that
		// the CLI exits 2 as for its other subcommands.
		err := fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return cfg, FlagError{err}
	}
	if envErr != nil {
		return cfg, envErr
	}
	// Flags that contradict each other are usage errors (exit 2 in the
	// CLI), printed without the usage, which would bury them.
	dataSet := getenv("STATESYNC_DATA") != ""
	fs.Visit(func(f *flag.Flag) { dataSet = dataSet || f.Name == "data" })
	if err := cfg.conflicts(dataSet); err != nil {
		fmt.Fprintln(fs.Output(), "statesync:", err)
		return cfg, FlagError{err}
	}
	return cfg, cfg.Validate()
}

// conflicts returns the error of flags given together that exclude each
// other; dataSet tells whether Data was given (not its default).
func (c Config) conflicts(dataSet bool) error {
	switch {
	case dataSet && c.Store != "":
		return errors.New("serve: give --store or --data, not both (--data DIR is --store bbolt:DIR)")
	case dataSet && c.Memory:
		return errors.New("serve: give --memory or --data, not both (--memory keeps nothing on disk)")
	case c.Store != "" && c.Memory:
		return errors.New("serve: give --store or --memory, not both (--memory is --store memory:)")
	case c.MetricsToken != "" && c.MetricsTokenFile != "":
		return errors.New("serve: give --metrics-token or --metrics-token-file, not both")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("serve: give --tls-cert and --tls-key together, or neither")
	}
	return nil
}

// A FlagError is a command-line error that ParseFlags has already printed
// with the usage text.
type FlagError struct{ Err error }

func (e FlagError) Error() string { return e.Err.Error() }

// Unwrap returns e.Err.
func (e FlagError) Unwrap() error { return e.Err }

func (c *Config) fromEnv(getenv func(string) string) error {
	var errs []error
	str := func(name string, p *string) {
		if v := getenv(name); v != "" {
			*p = v
		}
	}
	boolean := func(name string, p *bool) {
		if v := getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a boolean", name, v))
				return
			}
			*p = b
		}
	}
	dur := func(name string, p *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration (like 15s)", name, v))
				return
			}
			*p = d
		}
	}
	str("STATESYNC_ADDR", &c.Addr)
	str("STATESYNC_STORE", &c.Store)
	str("STATESYNC_DATA", &c.Data)
	boolean("STATESYNC_MEMORY", &c.Memory)
	str("STATESYNC_TOKENS", &c.Tokens)
	boolean("STATESYNC_INSECURE", &c.Insecure)
	dur("STATESYNC_HEARTBEAT", &c.Heartbeat)
	str("STATESYNC_ALLOWED_HOSTS", &c.AllowedHosts)
	str("STATESYNC_CORS_ORIGINS", &c.CORSOrigins)
	str("STATESYNC_TLS_CERT", &c.TLSCert)
	str("STATESYNC_TLS_KEY", &c.TLSKey)
	str("STATESYNC_METRICS_TOKEN", &c.MetricsToken)
	str("STATESYNC_METRICS_TOKEN_FILE", &c.MetricsTokenFile)
	str("STATESYNC_ACCESS_LOG", &c.AccessLog)
	str("STATESYNC_PPROF", &c.Pprof)
	integer := func(name string, p *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a whole number", name, v))
				return
			}
			*p = n
		}
	}
	dur("STATESYNC_READ_TIMEOUT", &c.ReadTimeout)
	integer("STATESYNC_MAX_CONNS", &c.MaxConns)
	integer("STATESYNC_MAX_CONNS_PER_IP", &c.MaxConnsPerIP)
	integer("STATESYNC_MAX_STREAMS_PER_TOKEN", &c.MaxStreamsPerToken)
	integer("STATESYNC_MAX_STREAM_TOPICS", &c.MaxStreamTopics)
	integer("STATESYNC_MAX_PREFIX_TOPICS", &c.MaxPrefixTopics)
	integer("STATESYNC_RECONNECT_RATE", &c.ReconnectRate)
	if v := getenv("STATESYNC_MAX_BODY"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("STATESYNC_MAX_BODY=%q: not a whole number of bytes", v))
		} else {
			c.MaxBody = n
		}
	}
	dur("STATESYNC_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	str("STATESYNC_LOG_LEVEL", &c.LogLevel)
	str("STATESYNC_LOG_FORMAT", &c.LogFormat)
	return errors.Join(errs...)
}

// Validate checks the configuration, including the rule that a
// non-loopback address needs tokens unless Insecure is set.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("serve: bad address %q: %v", c.Addr, err)
	}
	if c.Tokens == "" && !c.Insecure && !isLoopback(host) {
		return fmt.Errorf("serve: refusing to listen on %s without auth: give --tokens FILE, or --insecure to serve every topic to anyone who can reach it", c.Addr)
	}
	switch {
	case c.Heartbeat <= 0:
		return fmt.Errorf("serve: heartbeat must be positive, not %v", c.Heartbeat)
	case c.MaxBody <= 0:
		return fmt.Errorf("serve: max-body must be positive, not %d", c.MaxBody)
	case c.ReadTimeout <= 0:
		return fmt.Errorf("serve: read-timeout must be positive, not %v", c.ReadTimeout)
	case c.MaxConnsPerIP < 0:
		return fmt.Errorf("serve: max-conns-per-ip must be 0 (no cap) or positive, not %d", c.MaxConnsPerIP)
	case c.MaxStreamsPerToken == 0:
		return errors.New("serve: max-streams-per-token must be positive, or negative for no cap")
	case c.MaxStreamTopics <= 0:
		return fmt.Errorf("serve: max-stream-topics must be positive, not %d", c.MaxStreamTopics)
	case c.MaxPrefixTopics <= 0:
		return fmt.Errorf("serve: max-prefix-topics must be positive, not %d", c.MaxPrefixTopics)
	case c.ReconnectRate == 0:
		return errors.New("serve: reconnect-rate must be positive (streams a second), or negative for no hint")
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("serve: shutdown-timeout must be positive, not %v", c.ShutdownTimeout)
	case c.Store != "" && c.Memory, c.MetricsToken != "" && c.MetricsTokenFile != "", (c.TLSCert == "") != (c.TLSKey == ""):
		return c.conflicts(false)
	case strings.ContainsAny(c.MetricsToken, " \t\r\n"):
		return errors.New("serve: metrics-token contains white space")
	case c.Store == "" && !c.Memory && c.Data == "":
		return errors.New("serve: give a data directory, or --memory")
	}
	if c.Store != "" {
		if _, err := storeScheme(c.Store); err != nil {
			return err
		}
	}
	if err := c.checkPprof(); err != nil {
		return err
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if _, err := c.allowedHosts(); err != nil {
		return err
	}
	if _, err := c.corsOrigins(); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("serve: log-format must be text or json, not %q", c.LogFormat)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("serve: log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

// NewLogger returns the daemon's logger writing to w.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
