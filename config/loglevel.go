package config

import (
	"log/slog"
	"strings"
)

// LevelCritical is gunicorn's critical level, above slog's Error: with
// loglevel = critical only what is critical is logged, errors are not.
const LevelCritical = slog.LevelError + 4

// LogLevel is the slog level for a loglevel value; the arbiter and the
// workers both log at it, so one setting means the same in both.
// Unknown values (Validate rejects them) mean info.
func LogLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warning", "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	case "critical":
		return LevelCritical
	}
	return slog.LevelInfo
}
