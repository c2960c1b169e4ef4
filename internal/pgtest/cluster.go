package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/svc"
)

// A Cluster is a PostgreSQL server of a test's own, in a temporary
// directory, that the test can stop (as in a crash) and start again. Make
// one with [StartCluster]. Its methods are safe for concurrent use.
type Cluster struct {
	bindir string
	dir    string // the temporary directory: data/, the log, the socket
	port   int
	cred   *credential // whom the server runs as; nil: this process's user

	mu      sync.Mutex // serializes Start and Stop
	running bool
}

// startTimeout bounds pg_ctl's wait for the server to start or stop.
const startTimeout = 60 * time.Second

// waitDelay bounds the wait for a binary's output once it has exited.
const waitDelay = 5 * time.Second

// StartCluster initializes a new PostgreSQL cluster in a temporary
// directory and starts it on a free port of 127.0.0.1, with trust
// authentication for the superuser postgres and fsync off. It uses the
// installed server binaries (those of `pg_config --bindir`, else the
// newest /usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root:
// when the test runs as root the server runs as the user postgres, which
// must exist. When the binaries or that user are missing it skips t, or
// fails it if STATESYNC_REQUIRE_SERVICES is set.
//
// The server is stopped and its directory removed when the test and its
// subtests have finished. A test process that dies leaves the server
// running (it is a child of no one).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bindir := findBinDir()
	if bindir == "" {
		svc.Missing(t, "the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
		return nil
	}
	c := &Cluster{bindir: bindir}
	if os.Geteuid() == 0 {
		cred, err := lookupCredential("postgres")
		if err != nil {
			svc.Missing(t, "running as root, PostgreSQL needs the user postgres: %v", err)
			return nil
		}
		c.cred = cred
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		running := c.running
		c.mu.Unlock()
		if running {
			if err := c.Stop("immediate"); err != nil {
				t.Errorf("pgtest: stopping the cluster: %v", err)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	c.dir = dir
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.uid), int(c.cred.gid)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	// A free port may be taken between our probe and the server's bind:
	// try a few.
	for range 3 {
		if c.port, err = freePort(); err != nil {
			break
		}
		if err = c.configure(); err != nil {
			break
		}
		if err = c.Start(); err == nil {
			return c
		}
	}
	t.Fatalf("pgtest: %v", err)
	return nil
}

// findBinDir returns the directory of the PostgreSQL server binaries, or
// "" if they are not installed: the newest /usr/lib/postgresql/V/bin (the
// Debian layout), else that of the initdb in PATH.
func findBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) }) // newest first
	if path, err := osexec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	return binDirIn(dirs)
}

// binDirIn returns the first of dirs that holds initdb and pg_ctl, or "".
func binDirIn(dirs []string) string {
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d
		}
	}
	return ""
}

// versionOf returns the major version in /usr/lib/postgresql/V/bin.
func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// A credential is a user and group to run the server's binaries as
// (Unix only: see runAs).
type credential struct{ uid, gid uint32 }

func lookupCredential(name string) (*credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &credential{uid: uint32(uid), gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// configure writes the server's settings (the port may change between
// attempts) into postgresql.auto.conf, which is read after
// postgresql.conf. initdb made the file: rewriting it keeps its owner.
func (c *Cluster) configure() error {
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"fsync = off\nmax_connections = 100\n", c.port, c.dir)
	return os.WriteFile(filepath.Join(c.data(), "postgresql.auto.conf"), []byte(conf), 0o600)
}

// run runs one of the server's binaries as the server's user and returns
// its output.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := osexec.Command(filepath.Join(c.bindir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if c.cred != nil {
		runAs(cmd, c.cred)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The server started by pg_ctl writes to its log file, not to our
	// pipe; should it hold the pipe anyway, do not wait for it for ever.
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	return out.Bytes(), err
}

// URL returns the URL of the cluster's database postgres, for the
// superuser postgres (no password).
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Port returns the TCP port the server listens on (the same after a
// restart).
func (c *Cluster) Port() int { return c.port }

// Start starts the stopped server and waits until it accepts connections
// (after crash recovery, if it was stopped with mode immediate).
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return fmt.Errorf("pgtest: the cluster is already running")
	}
	log := filepath.Join(c.dir, "server.log")
	out, err := c.run("pg_ctl", "start", "-D", c.data(), "-l", log, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)))
	if err != nil {
		tail, _ := os.ReadFile(log)
		if len(tail) > 4096 {
			tail = tail[len(tail)-4096:]
		}
		return fmt.Errorf("pg_ctl start: %v\n%s\nserver log:\n%s", err, out, tail)
	}
	c.running = true
	return nil
}

// Stop stops the server with pg_ctl's shutdown mode: "immediate" (as in a
// crash: no checkpoint, connections dropped, recovery at the next start),
// "fast" (connections dropped, clean shutdown) or "smart" (waits for the
// clients to leave).
func (c *Cluster) Stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return fmt.Errorf("pgtest: the cluster is not running")
	}
	out, err := c.run("pg_ctl", "stop", "-D", c.data(), "-m", mode, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)))
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	c.running = false
	return nil
}

// Program returns the path of one of PostgreSQL's programs (pg_dump,
// pg_restore, psql, …) from the directory of the installed server
// binaries. When they are not installed it skips t, or fails it if
// [svc.EnvRequire] is set.
func Program(t testing.TB, name string) string {
	t.Helper()
	dir := findBinDir()
	path := filepath.Join(dir, name)
	if dir == "" || !isExecutable(path) {
		svc.Missing(t, "the PostgreSQL program %s is not installed", name)
	}
	return path
}
