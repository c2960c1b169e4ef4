package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// checkPprof checks Config.Pprof: empty (off), or host:port with a
// loopback host, so that profiles (and the command line, which may hold a
// store password) never leave the machine.
func (c Config) checkPprof() error {
	if c.Pprof == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Pprof)
	if err != nil {
		return fmt.Errorf("serve: bad --pprof address %q: %v", c.Pprof, err)
	}
	if !isLoopbackAddr(host) {
		return fmt.Errorf("serve: --pprof %q: pprof is served on a loopback address only (127.0.0.1, [::1] or localhost, with a port), not on %q", c.Pprof, host)
	}
	return nil
}

// isLoopbackAddr reports whether host is localhost or a loopback IP
// literal. Unlike isLoopback it refuses *.localhost, which a resolver may
// send elsewhere, and the empty host, which means every interface.
func isLoopbackAddr(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// A pprofServer serves net/http/pprof on a listener of its own (--pprof),
// never on the main one.
type pprofServer struct {
	ln     net.Listener
	srv    *http.Server
	served chan struct{} // closed when Serve has returned
}

// startPprof listens on addr, which Config.checkPprof accepted, and
// serves the profiles there until stop.
func startPprof(addr string, log *slog.Logger) (*pprofServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve: --pprof: %w", err)
	}
	// localhost is resolved: check what was bound.
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("serve: --pprof %q listens on %s, not a loopback address", addr, ln.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &pprofServer{ln: ln, served: make(chan struct{}), srv: &http.Server{
		// Loopback host names only: a web page rebinding its own name to
		// 127.0.0.1 (DNS rebinding) gets 403, not the profiles.
		Handler:           hostGuard(mux, map[string]bool{}),
		ReadHeaderTimeout: 10 * time.Second,
		// pprof refuses a profile or trace longer than this.
		WriteTimeout: 5 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		defer close(p.served)
		if err := p.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server stopped", slog.Any("error", err))
		}
	}()
	log.Info("pprof serving", slog.String("url", "http://"+ln.Addr().String()+"/debug/pprof/"))
	return p, nil
}

// Addr returns the address the profiles are served on.
func (p *pprofServer) Addr() net.Addr { return p.ln.Addr() }

// stop closes the server at once (a profile in progress is cut short)
// and waits for it. It is a no-op on nil.
func (p *pprofServer) stop() {
	if p == nil {
		return
	}
	_ = p.srv.Close()
	<-p.served
}
