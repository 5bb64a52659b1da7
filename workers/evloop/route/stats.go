package route

import (
	"cmp"
	"slices"
	"time"
)

// Stat is what the status page shows of a route.
type Stat struct {
	Route      string        `json:"route"`
	Placement  string        `json:"placement"` // inline, pooled
	Pinned     bool          `json:"pinned,omitempty"`
	Samples    uint64        `json:"samples"`
	Mean       time.Duration `json:"mean_ns"` // handler time
	Max        time.Duration `json:"max_ns"`
	Promotions uint64        `json:"promotions"`
	Demotions  uint64        `json:"demotions"`
}

// Stats returns every route's state, busiest first, then the overflow
// route if it was used.
func (t *Table) Stats() []Stat {
	m := *t.routes.Load()
	out := make([]Stat, 0, len(m)+1)
	for _, rt := range m {
		out = append(out, rt.stat())
	}
	slices.SortFunc(out, func(a, b Stat) int {
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

func (r *Route) stat() Stat {
	s := Stat{
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
