package hostile_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statesync-go/statesync/internal/daemon"
)

// startDaemon starts a daemon on a loopback port with an in-memory store,
// the token file tokens if not empty, and the changes of edit (nil for
// none); the test's cleanup shuts it down.
func startDaemon(t testing.TB, tokens string, edit func(*daemon.Config)) *daemon.Server {
	t.Helper()
	cfg := daemon.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Memory = true
	cfg.Data = t.TempDir()
	cfg.ShutdownTimeout = 5 * time.Second
	if tokens != "" {
		cfg.Tokens = filepath.Join(t.TempDir(), "tokens.json")
		if err := os.WriteFile(cfg.Tokens, []byte(tokens), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := daemon.Start(cfg, nil)
	if err != nil {
		t.Fatalf("daemon.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("daemon shutdown: %v", err)
		}
	})
	return s
}
