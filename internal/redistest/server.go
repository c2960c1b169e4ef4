package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statesync-go/statesync/internal/svc"
)

// ServerOptions configures a [Server]. The zero value (or nil) is a server
// without persistence.
type ServerOptions struct {
	// AppendFsync, if set, turns the append-only file on (appendonly yes)
	// with this fsync policy: "always", "everysec" or "no".
	AppendFsync string
	// ReplicaOf, if set, is the host:port of a primary this server
	// replicates (replicaof).
	ReplicaOf string
}

// A Server is a redis-server process of a test's own, in a temporary
// directory, that the test can kill (SIGKILL, as in a crash) and start
// again on the same port and directory. Make one with [StartServer]. Its
// methods are safe for concurrent use.
type Server struct {
	bin  string
	dir  string
	port int

	mu     sync.Mutex  // protects proc and exited
	proc   *os.Process // nil: not running
	exited chan error  // receives the process's end
}

// readyTimeout bounds the wait for a server to answer PING after its start
// (which includes loading its files).
const readyTimeout = 60 * time.Second

// StartServer starts a redis-server (the one in PATH, else
// /usr/bin/redis-server) on a free port of 127.0.0.1, its files in a new
// temporary directory, and waits until it answers. When redis-server is
// not installed it skips t, or fails it if STATESYNC_REQUIRE_SERVICES is
// set. The server is killed at the end of the test.
func StartServer(t testing.TB, opts *ServerOptions) *Server {
	t.Helper()
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	bin, err := osexec.LookPath("redis-server")
	if err != nil {
		if _, err2 := os.Stat("/usr/bin/redis-server"); err2 != nil {
			svc.Missing(t, "redis-server is not installed")
			return nil
		}
		bin = "/usr/bin/redis-server"
	}
	s := &Server{bin: bin, dir: t.TempDir()}
	t.Cleanup(func() {
		if err := s.Kill(); err != nil && !errors.Is(err, errNotRunning) {
			t.Errorf("redistest: %v", err)
		}
	})
	// A free port may be taken between our probe and the server's bind:
	// try a few.
	for range 3 {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.configure(o); err != nil {
			break
		}
		if err = s.Restart(); err == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", err)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) configure(o ServerOptions) error {
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsave \"\"\ndaemonize no\nlogfile %s\nrepl-diskless-sync-delay 0\n",
		s.port, s.dir, filepath.Join(s.dir, "server.log"))
	if o.AppendFsync != "" {
		conf += "appendonly yes\nappendfsync " + o.AppendFsync + "\n"
	}
	if o.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(o.ReplicaOf)
		if err != nil {
			return fmt.Errorf("ReplicaOf: %w", err)
		}
		conf += "replicaof " + host + " " + port + "\n"
	}
	return os.WriteFile(filepath.Join(s.dir, "redis.conf"), []byte(conf), 0o600)
}

// URL returns the redis:// URL of the server (database 0).
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// Addr returns the server's host:port (the same after a restart).
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Dir returns the server's directory (its files and server.log).
func (s *Server) Dir() string { return s.dir }

var errNotRunning = errors.New("redistest: the server is not running")

// Kill kills the server with SIGKILL, as in a crash, and waits for the
// process to end.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errNotRunning
	}
	_ = s.proc.Signal(syscall.SIGKILL)
	<-s.exited // "signal: killed"
	s.proc, s.exited = nil, nil
	return nil
}

// Restart starts the killed server again (the first start too), on the
// same port and directory, and waits until it answers PING (after loading
// its files).
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("redistest: the server is already running")
	}
	cmd := osexec.Command(s.bin, filepath.Join(s.dir, "redis.conf"))
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("redis-server exited (%v): %s", werr, tail(log))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server does not answer on %s: %v", s.Addr(), err)
		}
	}
	s.proc, s.exited = cmd.Process, exited // Kill waits for exited
	return nil
}

func tail(b []byte) []byte {
	if len(b) > 4096 {
		return b[len(b)-4096:]
	}
	return b
}
