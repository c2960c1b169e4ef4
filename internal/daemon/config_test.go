package daemon_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
)

// env returns a getenv func over vars (name, value pairs).
func env(vars ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return func(name string) string { return m[name] }
}

// wantDefaults is the configuration of DESIGN §5 and the README's flag
// table, written out here rather than read from DefaultConfig.
var wantDefaults = daemon.Config{
	Addr:               "127.0.0.1:8765",
	Data:               "./statesync-data",
	Heartbeat:          15 * time.Second,
	MaxBody:            1 << 20,
	ReadTimeout:        10 * time.Second,
	MaxConnsPerIP:      1000,
	MaxStreamsPerToken: 1000,
	MaxStreamTopics:    1024,
	MaxPrefixTopics:    10000,
	ReconnectRate:      5000,
	ShutdownTimeout:    10 * time.Second,
	LogLevel:           "info",
	LogFormat:          "text",
}

// TestParseFlagsDefaults pins `statesync serve` with no flags: it would
// bind 127.0.0.1:8765 and keep its bbolt file under ./statesync-data
// (DESIGN §5).
func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := daemon.ParseFlags(nil, env(), io.Discard)
	if err != nil || cfg != wantDefaults {
		t.Errorf("ParseFlags(nil) = %+v, %v; want %+v, nil", cfg, err, wantDefaults)
	}
	if got := daemon.DefaultConfig(); got != wantDefaults {
		t.Errorf("DefaultConfig() = %+v; want %+v", got, wantDefaults)
	}
}

// TestParseFlagsDefaultsOSEnv: with a nil getenv, ParseFlags reads the
// process environment; with every STATESYNC_* variable empty, the defaults
// hold.
func TestParseFlagsDefaultsOSEnv(t *testing.T) {
	for _, name := range []string{"ADDR", "DATA", "MEMORY", "TOKENS", "INSECURE", "HEARTBEAT", "MAX_BODY",
		"SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LOG_FORMAT", "ALLOWED_HOSTS", "READ_TIMEOUT", "MAX_CONNS", "MAX_CONNS_PER_IP",
		"MAX_STREAMS_PER_TOKEN", "STORE", "CORS_ORIGINS", "TLS_CERT", "TLS_KEY", "METRICS_TOKEN", "METRICS_TOKEN_FILE",
		"ACCESS_LOG", "PPROF", "MAX_STREAM_TOPICS", "MAX_PREFIX_TOPICS", "RECONNECT_RATE"} {
		t.Setenv("STATESYNC_"+name, "")
	}
	cfg, err := daemon.ParseFlags(nil, nil, io.Discard)
	if err != nil || cfg != wantDefaults {
		t.Errorf("ParseFlags(nil, nil) = %+v, %v; want %+v, nil", cfg, err, wantDefaults)
	}
	t.Setenv("STATESYNC_DATA", "/from/os/env")
	cfg, err = daemon.ParseFlags(nil, nil, io.Discard)
	if err != nil || cfg.Data != "/from/os/env" {
		t.Errorf("ParseFlags(nil, nil) with STATESYNC_DATA set = Data %q, %v; want /from/os/env", cfg.Data, err)
	}
}

// TestParseFlagsEnvAndFlags: every field has a flag and a STATESYNC_*
// variable, and the flag wins over the variable.
func TestParseFlagsEnvAndFlags(t *testing.T) {
	tests := []struct {
		name     string
		envVar   string
		envValue string
		flag     []string
		field    func(daemon.Config) any
		fromEnv  any
		fromFlag any
	}{
		{"addr", "STATESYNC_ADDR", "127.0.0.2:9000", []string{"--addr", "[::1]:9001"},
			func(c daemon.Config) any { return c.Addr }, "127.0.0.2:9000", "[::1]:9001"},
		{"store", "STATESYNC_STORE", "memory:", []string{"--store", "bbolt:/var/lib/statesync"},
			func(c daemon.Config) any { return c.Store }, "memory:", "bbolt:/var/lib/statesync"},
		{"data", "STATESYNC_DATA", "/var/lib/statesync", []string{"--data", "here"},
			func(c daemon.Config) any { return c.Data }, "/var/lib/statesync", "here"},
		{"memory", "STATESYNC_MEMORY", "true", []string{"--memory=false"},
			func(c daemon.Config) any { return c.Memory }, true, false},
		{"tokens", "STATESYNC_TOKENS", "/etc/tokens.json", []string{"--tokens", "t.json"},
			func(c daemon.Config) any { return c.Tokens }, "/etc/tokens.json", "t.json"},
		{"insecure", "STATESYNC_INSECURE", "1", []string{"--insecure=false"},
			func(c daemon.Config) any { return c.Insecure }, true, false},
		{"heartbeat", "STATESYNC_HEARTBEAT", "3s", []string{"--heartbeat", "250ms"},
			func(c daemon.Config) any { return c.Heartbeat }, 3 * time.Second, 250 * time.Millisecond},
		{"max-body", "STATESYNC_MAX_BODY", "2048", []string{"--max-body", "4096"},
			func(c daemon.Config) any { return c.MaxBody }, int64(2048), int64(4096)},
		{"shutdown-timeout", "STATESYNC_SHUTDOWN_TIMEOUT", "1m", []string{"--shutdown-timeout", "2s"},
			func(c daemon.Config) any { return c.ShutdownTimeout }, time.Minute, 2 * time.Second},
		{"log-level", "STATESYNC_LOG_LEVEL", "debug", []string{"--log-level", "warn"},
			func(c daemon.Config) any { return c.LogLevel }, "debug", "warn"},
		{"log-format", "STATESYNC_LOG_FORMAT", "json", []string{"--log-format", "text"},
			func(c daemon.Config) any { return c.LogFormat }, "json", "text"},
		{"allowed-hosts", "STATESYNC_ALLOWED_HOSTS", "a.example,b.example", []string{"--allowed-hosts", "c.example"},
			func(c daemon.Config) any { return c.AllowedHosts }, "a.example,b.example", "c.example"},
		{"read-timeout", "STATESYNC_READ_TIMEOUT", "30s", []string{"--read-timeout", "2s"},
			func(c daemon.Config) any { return c.ReadTimeout }, 30 * time.Second, 2 * time.Second},
		{"max-conns", "STATESYNC_MAX_CONNS", "500", []string{"--max-conns", "-1"},
			func(c daemon.Config) any { return c.MaxConns }, 500, -1},
		{"max-conns-per-ip", "STATESYNC_MAX_CONNS_PER_IP", "20", []string{"--max-conns-per-ip", "0"},
			func(c daemon.Config) any { return c.MaxConnsPerIP }, 20, 0},
		{"max-streams-per-token", "STATESYNC_MAX_STREAMS_PER_TOKEN", "7", []string{"--max-streams-per-token", "-1"},
			func(c daemon.Config) any { return c.MaxStreamsPerToken }, 7, -1},
		{"max-stream-topics", "STATESYNC_MAX_STREAM_TOPICS", "64", []string{"--max-stream-topics", "5"},
			func(c daemon.Config) any { return c.MaxStreamTopics }, 64, 5},
		{"max-prefix-topics", "STATESYNC_MAX_PREFIX_TOPICS", "100", []string{"--max-prefix-topics", "50000"},
			func(c daemon.Config) any { return c.MaxPrefixTopics }, 100, 50000},
		{"reconnect-rate", "STATESYNC_RECONNECT_RATE", "100", []string{"--reconnect-rate", "-1"},
			func(c daemon.Config) any { return c.ReconnectRate }, 100, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := env(tt.envVar, tt.envValue)
			cfg, err := daemon.ParseFlags(nil, getenv, io.Discard)
			if err != nil || tt.field(cfg) != tt.fromEnv {
				t.Errorf("ParseFlags(nil) with %s=%s = %v, %v; want %v", tt.envVar, tt.envValue, tt.field(cfg), err, tt.fromEnv)
			}
			cfg, err = daemon.ParseFlags(tt.flag, getenv, io.Discard)
			if err != nil || tt.field(cfg) != tt.fromFlag {
				t.Errorf("ParseFlags(%q) with %s=%s = %v, %v; want %v (the flag wins)", tt.flag, tt.envVar, tt.envValue, tt.field(cfg), err, tt.fromFlag)
			}
			cfg, err = daemon.ParseFlags(tt.flag, env(), io.Discard)
			if err != nil || tt.field(cfg) != tt.fromFlag {
				t.Errorf("ParseFlags(%q) = %v, %v; want %v", tt.flag, tt.field(cfg), err, tt.fromFlag)
			}
		})
	}
}

// TestParseFlagsBadValues: a bad flag or variable is an error that names
// it; flag syntax errors are FlagErrors (printed with the usage), and
// values that parse but make no sense are plain errors.
func TestParseFlagsBadValues(t *testing.T) {
	tests := []struct {
		args      []string
		env       []string
		flagError bool
		want      []string // substrings of the error
	}{
		{[]string{"--bogus"}, nil, true, []string{"bogus"}},
		{[]string{"--heartbeat", "soon"}, nil, true, []string{"heartbeat"}},
		{[]string{"--max-body", "1MB"}, nil, true, []string{"max-body"}},
		{[]string{"--memory=maybe"}, nil, true, []string{"memory"}},
		{[]string{"--shutdown-timeout", "x"}, nil, true, []string{"shutdown-timeout"}},
		{[]string{"extra"}, nil, true, []string{`unexpected argument "extra"`}},
		{[]string{"--addr", "8765"}, nil, false, []string{"bad address", `"8765"`}},
		{[]string{"--addr", "localhost"}, nil, false, []string{"bad address"}},
		{[]string{"--heartbeat", "0s"}, nil, false, []string{"heartbeat must be positive"}},
		{[]string{"--heartbeat", "-1s"}, nil, false, []string{"heartbeat must be positive"}},
		{[]string{"--max-body", "0"}, nil, false, []string{"max-body must be positive"}},
		{[]string{"--max-body", "-5"}, nil, false, []string{"max-body must be positive"}},
		{[]string{"--shutdown-timeout", "0s"}, nil, false, []string{"shutdown-timeout must be positive"}},
		{[]string{"--data", ""}, nil, false, []string{"data directory", "--memory"}},
		{[]string{"--log-level", "loud"}, nil, false, []string{"log-level", `"loud"`}},
		{[]string{"--log-format", "xml"}, nil, false, []string{"log-format", `"xml"`}},
		{nil, []string{"STATESYNC_MEMORY", "maybe"}, false, []string{"STATESYNC_MEMORY", "not a boolean"}},
		{nil, []string{"STATESYNC_INSECURE", "yes please"}, false, []string{"STATESYNC_INSECURE", "not a boolean"}},
		{nil, []string{"STATESYNC_HEARTBEAT", "15"}, false, []string{"STATESYNC_HEARTBEAT", "not a duration"}},
		{nil, []string{"STATESYNC_SHUTDOWN_TIMEOUT", "later"}, false, []string{"STATESYNC_SHUTDOWN_TIMEOUT", "not a duration"}},
		{nil, []string{"STATESYNC_MAX_BODY", "1MiB"}, false, []string{"STATESYNC_MAX_BODY", "not a whole number"}},
		{nil, []string{"STATESYNC_LOG_FORMAT", "yaml"}, false, []string{"log-format", `"yaml"`}},
		{[]string{"--read-timeout", "0s"}, nil, false, []string{"read-timeout must be positive"}},
		{[]string{"--max-conns-per-ip", "-1"}, nil, false, []string{"max-conns-per-ip"}},
		{[]string{"--max-streams-per-token", "0"}, nil, false, []string{"max-streams-per-token"}},
		{[]string{"--max-stream-topics", "0"}, nil, false, []string{"max-stream-topics must be positive"}},
		{[]string{"--max-prefix-topics", "-1"}, nil, false, []string{"max-prefix-topics must be positive"}},
		{nil, []string{"STATESYNC_MAX_PREFIX_TOPICS", "lots"}, false, []string{"STATESYNC_MAX_PREFIX_TOPICS", "not a whole number"}},
		{[]string{"--reconnect-rate", "0"}, nil, false, []string{"reconnect-rate must be positive"}},
		{[]string{"--allowed-hosts", "a.example:8765"}, nil, false, []string{"allowed-hosts", `"a.example:8765"`}},
		{[]string{"--max-conns", "many"}, nil, true, []string{"max-conns"}},
		{nil, []string{"STATESYNC_MAX_CONNS", "lots"}, false, []string{"STATESYNC_MAX_CONNS", "not a whole number"}},
		{nil, []string{"STATESYNC_READ_TIMEOUT", "10"}, false, []string{"STATESYNC_READ_TIMEOUT", "not a duration"}},
		// Every bad variable is reported at once.
		{nil, []string{"STATESYNC_HEARTBEAT", "x", "STATESYNC_MAX_BODY", "y"}, false, []string{"STATESYNC_HEARTBEAT", "STATESYNC_MAX_BODY"}},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		_, err := daemon.ParseFlags(tt.args, env(tt.env...), &out)
		if err == nil {
			t.Errorf("ParseFlags(%q) with env %q = nil error; want an error naming %q", tt.args, tt.env, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseFlags(%q) with env %q = %v; want an error containing %q", tt.args, tt.env, err, w)
			}
		}
		var fe daemon.FlagError
		if got := errors.As(err, &fe); got != tt.flagError {
			t.Errorf("ParseFlags(%q) = %v: errors.As(FlagError) = %v; want %v", tt.args, err, got, tt.flagError)
		}
		// A FlagError has been printed with the usage; other errors have
		// not (the caller reports them once).
		if printed := strings.Contains(out.String(), "usage: statesync serve"); printed != tt.flagError {
			t.Errorf("ParseFlags(%q) printed the usage: %v; want %v (output %q)", tt.args, printed, tt.flagError, out.String())
		}
		if errors.Is(err, flag.ErrHelp) {
			t.Errorf("ParseFlags(%q) = %v; want an error other than flag.ErrHelp", tt.args, err)
		}
	}
}

// TestParseFlagsLoopbackRule: without tokens, only a loopback address is
// accepted unless --insecure says otherwise (DESIGN §4, Auth).
func TestParseFlagsLoopbackRule(t *testing.T) {
	loopback := []string{"127.0.0.1:0", "127.0.0.1:8765", "127.1.2.3:80", "[::1]:0", "localhost:0", "app.localhost:8080"}
	for _, addr := range loopback {
		if _, err := daemon.ParseFlags([]string{"--addr", addr}, env(), io.Discard); err != nil {
			t.Errorf("ParseFlags(--addr %s) = %v; want nil (a loopback address)", addr, err)
		}
	}
	public := []string{"0.0.0.0:0", ":8765", "[::]:0", "192.0.2.1:80", "example.com:8765", "[2001:db8::1]:80", "localhostx:0"}
	for _, addr := range public {
		_, err := daemon.ParseFlags([]string{"--addr", addr}, env(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "refusing") || !strings.Contains(err.Error(), "--tokens") ||
			!strings.Contains(err.Error(), "--insecure") || !strings.Contains(err.Error(), addr) {
			t.Errorf("ParseFlags(--addr %s) = %v; want a refusal naming the address, --tokens and --insecure", addr, err)
		}
		for _, ok := range [][]string{
			{"--addr", addr, "--insecure"},
			{"--addr", addr, "--tokens", "tokens.json"},
		} {
			if _, err := daemon.ParseFlags(ok, env(), io.Discard); err != nil {
				t.Errorf("ParseFlags(%q) = %v; want nil", ok, err)
			}
		}
		if _, err := daemon.ParseFlags(nil, env("STATESYNC_ADDR", addr, "STATESYNC_INSECURE", "true"), io.Discard); err != nil {
			t.Errorf("ParseFlags with STATESYNC_ADDR=%s STATESYNC_INSECURE=true = %v; want nil", addr, err)
		}
		if _, err := daemon.ParseFlags(nil, env("STATESYNC_ADDR", addr), io.Discard); err == nil {
			t.Errorf("ParseFlags with STATESYNC_ADDR=%s = nil; want a refusal", addr)
		}
	}
	// Validate applies the same rule to a Config built in code.
	cfg := daemon.DefaultConfig()
	cfg.Addr = "0.0.0.0:0"
	if err := cfg.Validate(); err == nil {
		t.Errorf("Config{Addr: %q}.Validate() = nil; want a refusal", cfg.Addr)
	}
}

// TestParseFlagsHelp: -h prints every flag with its variable and returns
// flag.ErrHelp (exit 0 in the CLI).
func TestParseFlagsHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := daemon.ParseFlags([]string{"-h"}, env(), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("ParseFlags(-h) = %v; want flag.ErrHelp", err)
	}
	// Even with a bad variable, which would otherwise be the error.
	out.Reset()
	if _, err := daemon.ParseFlags([]string{"-h"}, env("STATESYNC_MAX_BODY", "lots"), &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "usage: statesync serve") {
		t.Errorf("ParseFlags(-h) with STATESYNC_MAX_BODY=lots = %v, output %q; want flag.ErrHelp and the usage", err, out.String())
	}
	for _, w := range []string{"usage: statesync serve", "-addr", "STATESYNC_ADDR", "-data", "STATESYNC_DATA", "-memory", "-tokens",
		"-insecure", "-heartbeat", "-max-body", "-shutdown-timeout", "-log-level", "-log-format", "STATESYNC_LOG_FORMAT", "127.0.0.1:8765",
		"-allowed-hosts", "STATESYNC_ALLOWED_HOSTS", "-read-timeout", "-max-conns", "STATESYNC_MAX_CONNS", "-max-conns-per-ip",
		"-max-streams-per-token", "STATESYNC_MAX_STREAMS_PER_TOKEN", "-max-stream-topics", "STATESYNC_MAX_STREAM_TOPICS",
		"-max-prefix-topics", "STATESYNC_MAX_PREFIX_TOPICS", "-reconnect-rate", "STATESYNC_RECONNECT_RATE"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("ParseFlags(-h) output lacks %q:\n%s", w, out.String())
		}
	}
}

// TestNewLogger: the logger honours the level and the format.
func TestNewLogger(t *testing.T) {
	cfg := daemon.DefaultConfig()
	cfg.LogLevel, cfg.LogFormat = "warn", "json"
	var out bytes.Buffer
	log := cfg.NewLogger(&out)
	log.Info("hidden")
	log.Warn("shown", slog.Int("n", 1))
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil || rec["msg"] != "shown" || rec["level"] != "WARN" {
		t.Errorf("json logger at warn wrote %q (%v); want one JSON record of the warning", out.String(), err)
	}

	cfg.LogLevel, cfg.LogFormat = "debug", "text"
	out.Reset()
	cfg.NewLogger(&out).Debug("detail")
	if !strings.Contains(out.String(), "level=DEBUG msg=detail") {
		t.Errorf("text logger at debug wrote %q; want a text record of the debug message", out.String())
	}
}
