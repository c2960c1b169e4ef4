package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/pgstore"
)

// These helpers stand in for internal/pgtest and internal/faultproxy until
// those land on this branch.

const (
	envURL     = "STATESYNC_TEST_POSTGRES_URL"
	envRequire = "STATESYNC_REQUIRE_SERVICES"
)

// serverURL returns the test server's URL, or skips t (fails it when
// services are required).
func serverURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		if os.Getenv(envRequire) != "" {
			t.Fatalf("%s is set but %s is not", envRequire, envURL)
		}
		t.Skipf("%s is not set", envURL)
	}
	return u
}

// newDatabase creates a database with a random name, dropped at cleanup,
// and returns its URL.
func newDatabase(t testing.TB) string {
	t.Helper()
	base := serverURL(t)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "statesync_pgstore_" + hex.EncodeToString(b[:])
	admin(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", envURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// admin runs statements on a new connection to dbURL.
func admin(t testing.TB, dbURL string, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// open opens a store closed at cleanup.
func open(t testing.TB, dbURL string, opts *pgstore.Options) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pgstore.Open(ctx, dbURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func opContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTopic(base string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base + "." + hex.EncodeToString(b[:])
}

// recorder collects what a Watch function receives.
type recorder struct {
	mu   sync.Mutex
	recs []statesync.Record
}

func watch(t testing.TB, s statesync.Store) *recorder {
	t.Helper()
	r := &recorder{}
	stop, err := s.Watch(context.Background(), func(rec statesync.Record) {
		r.mu.Lock()
		r.recs = append(r.recs, rec)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(stop)
	return r
}

func (r *recorder) resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Resync {
			n++
		}
	}
	return n
}

func (r *recorder) find(topic string, rev statesync.Revision) (statesync.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Topic == topic && rec.Revision == rev {
			return rec, true
		}
	}
	return statesync.Record{}, false
}

// A proxy forwards TCP connections to a target and can stop forwarding
// bytes (Pause) while keeping the connections open: a silent stall.
type proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool              // every connection, new ones included
	stalled map[net.Conn]bool // these connections only
	conns   []net.Conn
	closed  bool
	wg      sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, stalled: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, s) })
		p.wg.Go(func() { p.pipe(s, c) })
	}
}

func (p *proxy) pipe(src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for (p.paused || p.stalled[src]) && !p.closed {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

// cut closes every connection open now.
func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// stall stops forwarding on the connections open now, leaving them open;
// new connections are forwarded. resume ends the stall.
func (p *proxy) stall() (resume func()) {
	p.mu.Lock()
	conns := slices.Clone(p.conns)
	for _, c := range conns {
		p.stalled[c] = true
	}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		for _, c := range conns {
			delete(p.stalled, c)
		}
		p.mu.Unlock()
		p.cond.Broadcast()
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	p.cond.Broadcast()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// withOpt returns dbURL with the query option key set to value.
func withOpt(t testing.TB, dbURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
