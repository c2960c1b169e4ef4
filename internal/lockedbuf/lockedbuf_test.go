package lockedbuf_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/statesync-go/statesync/internal/lockedbuf"
)

// Lines written from several goroutines all arrive whole, and String
// reads while they are written (run with -race).
func TestConcurrentWrites(t *testing.T) {
	var b lockedbuf.Buffer
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "g%d-%d\n", g, i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	for g := range 4 {
		for i := range 100 {
			if l := fmt.Sprintf("g%d-%d", g, i); !seen[l] {
				t.Errorf("line %q missing", l)
			}
		}
	}
}

func ExampleBuffer() {
	var b lockedbuf.Buffer
	fmt.Fprint(&b, "hello, ")
	fmt.Fprint(&b, "world")
	fmt.Println(b.String())
	// Output: hello, world
}
