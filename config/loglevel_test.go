package config

import (
	"context"
	"log/slog"
	"testing"
)

func TestLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warning": slog.LevelWarn,
		"error": slog.LevelError, "critical": slog.LevelError + 4, "": slog.LevelInfo,
	} {
		if got := LogLevel(in); got != want {
			t.Errorf("LogLevel(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestCriticalDropsErrors: at loglevel = critical an error is not logged
// (the arbiter once logged errors there while the workers dropped them).
func TestCriticalDropsErrors(t *testing.T) {
	h := slog.NewTextHandler(nil, &slog.HandlerOptions{Level: LogLevel("critical")})
	if h.Enabled(context.Background(), slog.LevelError) || !h.Enabled(context.Background(), LevelCritical) {
		t.Fatal("critical must drop errors and keep critical messages")
	}
}
