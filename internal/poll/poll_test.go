package poll_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/statesync-go/statesync/internal/poll"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestUntil(t *testing.T) {
	var calls atomic.Int32
	poll.Until(t, "the third call", func() bool { return calls.Add(1) == 3 })
	if got := calls.Load(); got != 3 {
		t.Errorf("cond called %d times; want 3", got)
	}
}

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as t.Fatalf does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestUntilStateTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{TB: t}
		calls := 0
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			poll.UntilState(r, "never", func() (bool, string) {
				calls++
				return false, fmt.Sprintf("call %d", calls)
			})
		}()
		<-done
		if elapsed := time.Since(start); elapsed < poll.Timeout || elapsed > poll.Timeout+time.Second {
			t.Errorf("gave up after %v; want about %v", elapsed, poll.Timeout)
		}
		want := fmt.Sprintf("never: not within %v; last saw call %d", poll.Timeout, calls)
		if r.msg != want {
			t.Errorf("failure message %q; want %q", r.msg, want)
		}
		// 1, 2, 4, 8, 16 ms, then every 20 ms.
		if wantCalls := 5 + int((poll.Timeout-31*time.Millisecond)/(20*time.Millisecond)); calls < wantCalls-1 || calls > wantCalls+2 {
			t.Errorf("cond called %d times in %v; want about %d", calls, poll.Timeout, wantCalls)
		}
	})
}
