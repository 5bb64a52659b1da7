package arbiter

import (
	"fmt"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/proctitle"
)

// Process titles: what ps shows, so the arbiter, its workers and the old
// arbiter during a USR2 upgrade can be told apart (gunicorn's proc_name).
// Workers get theirs as their argv when spawned; the arbiter rewrites its
// own command line (internal/proctitle).

func procName(cfg *config.Config) string {
	if cfg.ProcName != "" {
		return cfg.ProcName
	}
	return cfg.App
}

func workerTitle(g *generation, age int) string {
	return fmt.Sprintf("multiserve: worker %d [%s] %s (gen %d)", age, g.cfg.WorkerClass, procName(g.cfg), g.id)
}

// setTitle shows the arbiter's title; old marks the arbiter a USR2
// upgrade is replacing.
func (a *arbiter) setTitle() {
	title := "multiserve: arbiter [" + procName(a.gen.cfg) + "]"
	if a.upgrade != nil {
		title += fmt.Sprintf(" (old, new arbiter pid %d)", a.upgrade.pid)
	}
	proctitle.Set(title)
}
