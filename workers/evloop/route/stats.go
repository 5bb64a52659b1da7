package route

import (
	"cmp"
	"slices"
	"time"

	"github.com/multiserve/multiserve/scoreboard"
)

// Stats returns every route as the status page shows it, busiest first,
// then the overflow route if it was used.
func (t *Table) Stats() []scoreboard.Route {
	m := *t.routes.Load()
	out := make([]scoreboard.Route, 0, len(m)+1)
	for _, rt := range m {
		out = append(out, rt.stat())
	}
	slices.SortFunc(out, func(a, b scoreboard.Route) int {
		if c := cmp.Compare(b.Samples, a.Samples); c != 0 {
			return c
		}
		return cmp.Compare(a.Route, b.Route)
	})
	if t.overflow.samples.Load() > 0 {
		out = append(out, t.overflow.stat())
	}
	return out
}

func (r *Route) stat() scoreboard.Route {
	s := scoreboard.Route{
		Route: r.key, Placement: "pooled", Pinned: r.pin != Measured,
		Samples: r.samples.Load(), Max: time.Duration(r.maxNs.Load()),
		Promotions: r.promos.Load(), Demotions: r.demos.Load(),
	}
	if r.Inline() {
		s.Placement = "inline"
	}
	if s.Samples > 0 {
		s.Mean = time.Duration(r.sumNs.Load() / int64(s.Samples))
	}
	return s
}
