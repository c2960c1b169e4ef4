// Package daemon wires the statesync daemon: a durable Source behind the
// httpsync API, the web dashboard, health and Prometheus metrics, auth,
// logging and graceful shutdown. cmd/statesync's serve subcommand is a thin
// front for [Run].
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
	// Data is the directory of the durable store (STATESYNC_DATA).
	Data string
	// Memory keeps state in memory only: nothing survives a restart
	// (STATESYNC_MEMORY).
	Memory bool
	// Tokens is the path of the token file; empty means no auth
	// (STATESYNC_TOKENS).
	Tokens string
	// Insecure allows listening on a non-loopback address without tokens
	// (STATESYNC_INSECURE).
	Insecure bool
	// Heartbeat is the interval of SSE heartbeat comments
	// (STATESYNC_HEARTBEAT).
	Heartbeat time.Duration
	// MaxBody is the largest accepted request body in bytes
	// (STATESYNC_MAX_BODY).
	MaxBody int64
	// ShutdownTimeout bounds graceful shutdown (STATESYNC_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error (STATESYNC_LOG_LEVEL).
	LogLevel string
	// LogFormat is text or json (STATESYNC_LOG_FORMAT).
	LogFormat string
}

// DefaultConfig returns the defaults of DESIGN §5.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8765",
		Data:            "./statesync-data",
		Heartbeat:       15 * time.Second,
		MaxBody:         1 << 20,
		ShutdownTimeout: 10 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
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
	fs.StringVar(&cfg.Data, "data", cfg.Data, "data directory of the durable store (STATESYNC_DATA)")
	fs.BoolVar(&cfg.Memory, "memory", cfg.Memory, "keep state in memory only; nothing survives a restart (STATESYNC_MEMORY)")
	fs.StringVar(&cfg.Tokens, "tokens", cfg.Tokens, "token file enabling bearer-token auth, see README (STATESYNC_TOKENS)")
	fs.BoolVar(&cfg.Insecure, "insecure", cfg.Insecure, "allow a non-loopback address without tokens (STATESYNC_INSECURE)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", cfg.Heartbeat, "SSE heartbeat interval (STATESYNC_HEARTBEAT)")
	fs.Int64Var(&cfg.MaxBody, "max-body", cfg.MaxBody, "largest request body in bytes (STATESYNC_MAX_BODY)")
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
	return cfg, cfg.Validate()
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
	str("STATESYNC_DATA", &c.Data)
	boolean("STATESYNC_MEMORY", &c.Memory)
	str("STATESYNC_TOKENS", &c.Tokens)
	boolean("STATESYNC_INSECURE", &c.Insecure)
	dur("STATESYNC_HEARTBEAT", &c.Heartbeat)
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
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("serve: shutdown-timeout must be positive, not %v", c.ShutdownTimeout)
	case !c.Memory && c.Data == "":
		return errors.New("serve: give a data directory, or --memory")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
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
