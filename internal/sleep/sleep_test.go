package sleep_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/statesync-go/statesync/internal/sleep"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := sleep.For(t.Context(), time.Second); err != nil || time.Since(start) != time.Second {
			t.Errorf("For(1s) = %v after %v; want nil after 1s", err, time.Since(start))
		}

		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		if err := sleep.For(ctx, time.Second); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 100*time.Millisecond {
			t.Errorf("For(1s) with a 100ms context = %v after %v; want DeadlineExceeded after 100ms", err, time.Since(start))
		}

		if err := sleep.For(ctx, time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("For(1s) with a done context = %v; want DeadlineExceeded", err)
		}
		for _, d := range []time.Duration{0, -time.Second} {
			start = time.Now()
			if err := sleep.For(ctx, d); err != nil || time.Since(start) != 0 {
				t.Errorf("For(%v) with a done context = %v after %v; want nil at once", d, err, time.Since(start))
			}
		}
	})
}
