package persisttest_test

import (
	"context"
	"testing"

	"github.com/statesync-go/statesync/persist"
	"github.com/statesync-go/statesync/persist/persisttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// aliasing is a broken storage: it keeps the caller's record instead of a
// copy (B-STORE-18).
type aliasing struct{ r *persist.Record }

func (a *aliasing) Save(ctx context.Context, r persist.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.r = &r
	return nil
}

func (a *aliasing) Load(ctx context.Context) (persist.Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return persist.Record{}, false, err
	}
	if a.r == nil {
		return persist.Record{}, false, nil
	}
	return *a.r, true, nil
}

// The suite catches a storage that shares the caller's bytes: its Copies
// subtest fails. (Run with a fake T is not possible, so the check runs the
// subtest's own steps.)
func TestSuiteCatchesAliasing(t *testing.T) {
	s := &aliasing{}
	rec := persisttest.Record(3, "", `{"v":"original"}`)
	want := persisttest.Record(3, "", `{"v":"original"}`)
	s.Save(context.Background(), rec)
	rec.Payload[0] = 'X'
	got, _, _ := s.Load(context.Background())
	ft := &fakeT{TB: t}
	persisttest.CheckRecord(ft, "aliasing", got, want)
	if !ft.failed {
		t.Errorf("CheckRecord accepted a record changed through the caller's buffer; want a failure")
	}
}

// The suites pass on the reference backend.
func TestSuitesOnMemory(t *testing.T) {
	persisttest.TestStorage(t, func(t *testing.T) persisttest.Opener {
		sm := persisttest.NewSharedMemory(nil)
		return func(key string) persist.Storage { return sm.Storage(key) }
	})
	persisttest.TestCompressor(t, persist.Gzip(0), true)
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Helper()               {}
