package evloop

import (
	"context"
	"fmt"
	"log/slog"
)

// gnetLogger routes gnet's own log lines into the worker's slog logger
// instead of gnet's default zap logger on stderr. gnet's Info lines (the
// "Launching gnet" banner) are demoted to debug: the worker logs its own.
// gnet calls it from its loops; slog handlers are safe for concurrent use.
type gnetLogger struct{ log *slog.Logger }

func (l gnetLogger) logf(lvl slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), lvl) {
		l.log.Log(context.Background(), lvl, "gnet: "+fmt.Sprintf(format, args...))
	}
}

func (l gnetLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l gnetLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l gnetLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args...) }
func (l gnetLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }

// Fatalf must not exit the process from inside gnet (a worker's exit code
// means something to the arbiter); gnet uses it for nothing evloop reaches.
func (l gnetLogger) Fatalf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
