package main

import (
	"context"
	"errors"

	"github.com/statesync-go/statesync/internal/daemon"
)

// runServe runs the daemon until ctx ends (SIGINT or SIGTERM): the HTTP
// API, the dashboard, /healthz and /metrics, over a durable store.
func (m *Main) runServe(ctx context.Context, args []string) error {
	cfg, err := daemon.ParseFlags(args, m.Getenv, m.Stderr)
	if errors.As(err, new(daemon.FlagError)) {
		return errUsage // already printed with the usage
	}
	if err != nil {
		return err
	}
	return daemon.Run(ctx, cfg, cfg.NewLogger(m.Stderr))
}
