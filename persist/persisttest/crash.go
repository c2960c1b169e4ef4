package persisttest

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strings"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/persist"
)

// CrashChildEnv is the environment variable that makes a test binary the
// writer child of [TestCrash]; its value is the path to open.
const CrashChildEnv = "PERSISTTEST_CRASH_CHILD"

// An OpenFunc opens the storage at path (a directory or a database file)
// and returns it with a function that releases it.
type OpenFunc func(path string) (s persist.Storage, close func() error, err error)

// CrashChild must be called first in the TestMain of a package that runs
// [TestCrash]: when the test binary runs as the crash child, it saves
// records in a loop with open's storage until it is killed, and exits;
// otherwise it returns at once.
func CrashChild(open OpenFunc) {
	path := os.Getenv(CrashChildEnv)
	if path == "" {
		return
	}
	os.Exit(crashChild(path, open))
}

// crashRecord is the record of revision rev in the crash test, of a size
// (up to 256 KiB) and content that depend on rev, so that a torn or mixed
// record cannot pass for any other.
func crashRecord(rev statesync.Revision) persist.Record {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d", rev)
	sum := h.Sum32()
	data := fmt.Sprintf(`{"rev":%d,"pad":%q}`, rev, strings.Repeat(string(rune('a'+sum%26)), int(sum%(256<<10))))
	return Record(rev, "crash", data)
}

func crashChild(path string, open OpenFunc) int {
	s, closeFn, err := open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer closeFn()
	ctx := context.Background()
	r, _, err := s.Load(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	rev := r.Meta.Revision
	out := bufio.NewWriter(os.Stdout)
	for range 1_000_000 { // the parent kills the child long before
		rev++
		if err := s.Save(ctx, crashRecord(rev)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		fmt.Fprintf(out, "%d\n", rev)
		if err := out.Flush(); err != nil {
			return 3
		}
	}
	return 0
}
