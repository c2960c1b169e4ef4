package daemon

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync/httpsync"
)

// loadTokens reads the token file at path; a file with no token is an
// error (it would lock every client out, or was emptied by mistake).
func loadTokens(path string) (*httpsync.Tokens, error) {
	t, err := httpsync.LoadTokens(path)
	if err != nil {
		return nil, err
	}
	if t.Len() == 0 {
		return nil, fmt.Errorf("httpsync: token file: no tokens (in %s): give at least one, or run without --tokens", path)
	}
	return t, nil
}

// tokenAuth is the daemon's Authenticator: the Tokens of the token file,
// replaced by Server.ReloadTokens. It also tells the access log the name
// of each request's token.
type tokenAuth struct {
	cur atomic.Pointer[httpsync.Tokens]
}

func (a *tokenAuth) Authenticate(r *http.Request) (httpsync.Grants, error) {
	g, err := a.cur.Load().Authenticate(r)
	if e, ok := r.Context().Value(accessKey{}).(*accessEntry); ok && err == nil {
		if tg, ok := g.(*httpsync.TokenGrants); ok {
			e.token.Store(&tg.Name)
		}
	}
	return g, err
}

// ReloadTokens loads the token file again (Run calls it on SIGHUP). New
// requests are authenticated with the new tokens at once; event streams
// stay open unless their token was removed or may no longer read one of
// their topics: those are closed, and their clients, reconnecting, are
// refused. On error (a file that does not parse, or holds no token) the
// previous tokens stay in service. Without tokens it does nothing.
func (s *Server) ReloadTokens() error {
	if s.auth == nil {
		return nil
	}
	t, err := loadTokens(s.cfg.Tokens)
	if err != nil {
		s.reloadOK.Store(0)
		return fmt.Errorf("serve: %w", err)
	}
	// The new tokens first, so that no request is authenticated with the
	// old ones once a stream has been closed (its client, reconnecting at
	// once, is refused with 401); then Regrant, which maps every stream
	// registered before it and, from then on, every stream that
	// authenticated with the old tokens and registers later.
	s.auth.cur.Store(t)
	closed := s.api.Regrant(t.Regrant)
	s.revoked.Add(uint64(closed))
	s.reloadOK.Store(1)
	s.log.Info("token file reloaded", slog.String("file", s.cfg.Tokens), slog.Int("tokens", t.Len()), slog.Int("streamsClosed", closed))
	return nil
}

// reload is what SIGHUP does: reload the TLS certificate and the token
// file, and reopen the access log file, each keeping its previous state on
// error.
func (s *Server) reload() {
	if err := s.ReloadTLS(); err != nil {
		s.log.Warn("SIGHUP: TLS certificate not reloaded; the previous one stays in service", slog.Any("error", err))
	}
	if err := s.ReloadTokens(); err != nil {
		s.log.Warn("SIGHUP: token file not reloaded; the previous tokens stay in service", slog.Any("error", err))
	}
	if s.logFile != nil {
		if err := s.logFile.Reopen(); err != nil {
			s.log.Warn("SIGHUP: access log not reopened; still writing to the previous file", slog.Any("error", err))
		}
	}
}

// metricsToken returns the token /metrics requires: STATESYNC_METRICS_TOKEN
// or --metrics-token, else the first line of --metrics-token-file; ""
// for none.
func (c Config) metricsToken() (string, error) {
	if c.MetricsToken != "" {
		return c.MetricsToken, nil
	}
	if c.MetricsTokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.MetricsTokenFile)
	if err != nil {
		return "", fmt.Errorf("serve: metrics-token-file: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("serve: metrics-token-file: %s holds no token", c.MetricsTokenFile)
	}
	return tok, nil
}

// requireToken answers 401 to a request without "Authorization: Bearer
// token", compared in constant time.
func requireToken(next http.Handler, token string) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="statesync metrics"`)
			http.Error(w, "this daemon's /metrics needs its metrics token: Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// accessKey is the context key of a request's *accessEntry.
type accessKey struct{}

// accessEntry is what the access log learns during a request.
type accessEntry struct {
	token atomic.Pointer[string] // the name of the request's token
}

// accessLogger writes one line per request to log, when the request
// ends; an event stream's line comes when the stream ends. The query is
// never logged: an event stream's may hold an access_token. Header values
// and paths are quoted by slog, so a request cannot forge lines.
func accessLog(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := &accessEntry{}
		r = r.WithContext(context.WithValue(r.Context(), accessKey{}, e))
		rec := &accessWriter{ResponseWriter: w, start: time.Now(), r: r, e: e, log: log}
		next.ServeHTTP(rec, r)
		if rec.hijacked == nil {
			rec.logLine(false)
		}
	})
}

// accessWriter records the status and size of a response.
type accessWriter struct {
	http.ResponseWriter
	start time.Time
	r     *http.Request
	e     *accessEntry
	log   *slog.Logger

	status   int
	bytes    int64
	hijacked *accessConn // the connection handed over, if the handler took it
}

func (a *accessWriter) WriteHeader(code int) {
	if a.status == 0 && code >= 200 { // 1xx are interim
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *accessWriter) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := a.ResponseWriter.Write(b)
	a.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer (Flush,
// deadlines).
func (a *accessWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// Hijack hands the connection over, wrapped so that its line is logged
// when the handler closes it (an event stream ending).
func (a *accessWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(a.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	a.hijacked = &accessConn{Conn: c, a: a}
	return a.hijacked, brw, nil
}

func (a *accessWriter) logLine(stream bool) {
	status := a.status
	if status == 0 {
		status = http.StatusOK
	}
	if stream {
		status = http.StatusOK // the hijacked stream wrote its own head
	}
	attrs := []slog.Attr{
		slog.String("method", a.r.Method),
		slog.String("path", a.r.URL.Path),
		slog.String("proto", a.r.Proto),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(a.start)),
		slog.String("remote", a.r.RemoteAddr),
	}
	if !stream {
		// A hijacked stream writes to the socket itself: its bytes are not
		// counted.
		attrs = append(attrs, slog.Int64("bytes", a.bytes))
	}
	if name := a.e.token.Load(); name != nil {
		attrs = append(attrs, slog.String("token", *name))
	}
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

// accessConn is a hijacked connection whose Close logs its request.
type accessConn struct {
	net.Conn
	a    *accessWriter
	once sync.Once
}

// NetConn returns the connection under c, for socket options and writev.
func (c *accessConn) NetConn() net.Conn { return c.Conn }

func (c *accessConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.a.logLine(true) })
	return err
}

// openAccessLog returns the logger of c.AccessLog: nil if off, the daemon's
// own logger for "-", else a logger of the daemon's format appending to
// the file, and the file, which reload opens again (after logrotate moved
// it) and Shutdown closes.
func (c Config) openAccessLog(log *slog.Logger) (*slog.Logger, *reopenFile, error) {
	switch c.AccessLog {
	case "":
		return nil, nil, nil
	case "-":
		return log, nil, nil
	}
	f := &reopenFile{path: c.AccessLog}
	if err := f.Reopen(); err != nil {
		return nil, nil, fmt.Errorf("serve: access-log: %w", err)
	}
	cc := c
	cc.LogLevel = "info"
	return cc.NewLogger(f), f, nil
}

// reopenFile is a file opened for appending that Reopen opens again by
// its name, as logrotate expects on SIGHUP. It is safe for concurrent use.
type reopenFile struct {
	path string
	mu   sync.Mutex // protects f
	f    *os.File
}

func (r *reopenFile) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	return r.f.Write(b)
}

// Reopen opens the file by its name again; on error the current one stays.
func (r *reopenFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Close closes the file; later writes fail.
func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
