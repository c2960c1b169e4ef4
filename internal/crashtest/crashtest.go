// Package crashtest is the module's crash tests' way to kill a writer in
// the middle of a write: [Run] starts the test binary again as a child
// process, whose TestMain sees an environment variable and writes instead of
// running tests, reads what it acknowledges line by line and kills it with
// SIGKILL at a chosen point. [NewRand] draws the kill points from a seed
// that can be replayed.
//
// SIGKILL tests the crash of the process, not of the machine: the page
// cache survives it.
package crashtest

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SeedEnv is the environment variable that, set to an integer, fixes the
// seed of [NewRand], to replay a failed run.
const SeedEnv = "STATESYNC_CRASH_SEED"

// Watchdog is how long [Run] lets a child live, in case it stops writing.
const Watchdog = 2 * time.Minute

// NewRand returns a generator seeded from STATESYNC_CRASH_SEED, or at
// random if it is unset, and logs the seed. It fails tb if the variable is
// not an integer.
func NewRand(tb testing.TB) *rand.Rand {
	tb.Helper()
	seed := rand.Uint64()
	if s := os.Getenv(SeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			tb.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
	}
	tb.Logf("seed %d (rerun with %s=%d)", seed, SeedEnv, seed)
	return rand.New(rand.NewPCG(seed, 0))
}

// Run starts the test binary again, running no tests, with env=value added
// to its environment; the binary's TestMain must then act as the child and
// write one line to stdout for each write it has acknowledged. Run calls
// line with each complete line, newline removed. Once it has done so
// killAfter times (at once if killAfter is 0) and delay has passed, it kills
// the child with SIGKILL, then passes on the lines still in the pipe; a
// partial last line was never acknowledged and is dropped. Run fails tb
// unless the child ended by that SIGKILL, and kills the child after
// [Watchdog] in any case.
func Run(tb testing.TB, env, value string, killAfter int, delay time.Duration, line func(string)) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+value)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	watchdog := time.AfterFunc(Watchdog, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()
	defer func() { _ = cmd.Process.Kill() }() // if line failed tb; harmless once ended

	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				tb.Errorf("kill: %v", err)
			}
		}
	}
	if killAfter == 0 {
		kill()
	}
	r := bufio.NewReader(stdout)
	for n := 0; ; {
		text, err := r.ReadString('\n')
		if err != nil {
			if err != io.EOF {
				tb.Errorf("reading the child's output: %v", err)
			}
			break
		}
		line(strings.TrimSuffix(text, "\n"))
		n++
		if n >= killAfter && !killed {
			time.Sleep(delay)
			kill()
		}
	}
	err = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		tb.Fatalf("child ended with %v, not by our SIGKILL; stderr:\n%s", err, stderr.String())
	}
}
