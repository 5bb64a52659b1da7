package scoreboard

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Route is one row of a worker's route table, as a class that places
// requests by route (auto) publishes it for the status page.
type Route struct {
	Route      string        `json:"route"`
	Placement  string        `json:"placement"` // inline, pooled
	Pinned     bool          `json:"pinned,omitempty"`
	Samples    uint64        `json:"samples"`
	Mean       time.Duration `json:"handler_mean_ns"`
	Max        time.Duration `json:"handler_max_ns"`
	Promotions uint64        `json:"promotions"`
	Demotions  uint64        `json:"demotions"`
}

// routesMax is the room for the table's encoding: the rows that do not fit
// whole are left out (the writer orders them busiest first).
const routesMax = (nWords - wRoutes) * 8

// SetRoutes publishes the worker's route table and its placement-change
// counters. One writer per slot (the worker's ticker), called about once a
// second: the table is encoded as text lines and copied word by word under
// a seqlock.
func (s Slot) SetRoutes(rows []Route, promoted, demoted uint64) {
	if s.w == nil {
		return
	}
	atomic.StoreUint64(&s.w[wPromoted], promoted)
	atomic.StoreUint64(&s.w[wDemoted], demoted)
	enc := encodeRoutes(rows)
	seq := atomic.LoadUint64(&s.w[wRouteSeq])
	atomic.StoreUint64(&s.w[wRouteSeq], seq+1)
	for i := 0; i*8 < len(enc); i++ {
		atomic.StoreUint64(&s.w[wRoutes+i], wordAt(enc, i*8))
	}
	atomic.StoreUint64(&s.w[wRouteLen], uint64(len(enc)))
	atomic.StoreUint64(&s.w[wRouteSeq], seq+2)
}

// Routes reads the route table consistently; nil when the worker published
// none, or when a consistent read failed within a bounded number of tries
// (a writer killed mid-write leaves the sequence odd).
func (s Slot) Routes() []Route {
	var enc string
	if s.w == nil || !s.readSeq(wRouteSeq, func() {
		n := min(int(s.load(wRouteLen)), routesMax)
		buf := make([]byte, (n+7)/8*8)
		for i := 0; i*8 < n; i++ {
			binary.LittleEndian.PutUint64(buf[i*8:], s.load(wRoutes+i))
		}
		enc = string(buf[:n])
	}) {
		return nil
	}
	return decodeRoutes(enc)
}

// encodeRoutes writes one line per row, "placement pinned samples meanNs
// maxNs promotions demotions route" (the route last: it may hold spaces),
// as many whole rows as fit in routesMax.
func encodeRoutes(rows []Route) string {
	var b strings.Builder
	for _, r := range rows {
		pinned := "0"
		if r.Pinned {
			pinned = "1"
		}
		line := strings.Join([]string{r.Placement, pinned, strconv.FormatUint(r.Samples, 10),
			strconv.FormatInt(int64(r.Mean), 10), strconv.FormatInt(int64(r.Max), 10),
			strconv.FormatUint(r.Promotions, 10), strconv.FormatUint(r.Demotions, 10),
			strings.ReplaceAll(r.Route, "\n", " ")}, " ") + "\n"
		if b.Len()+len(line) > routesMax {
			break
		}
		b.WriteString(line)
	}
	return b.String()
}

// decodeRoutes parses encodeRoutes's lines, skipping a malformed one.
func decodeRoutes(enc string) []Route {
	var out []Route
	for line := range strings.Lines(enc) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 8)
		if len(f) != 8 {
			continue
		}
		samples, _ := strconv.ParseUint(f[2], 10, 64)
		mean, _ := strconv.ParseInt(f[3], 10, 64)
		maxNs, _ := strconv.ParseInt(f[4], 10, 64)
		promos, _ := strconv.ParseUint(f[5], 10, 64)
		demos, _ := strconv.ParseUint(f[6], 10, 64)
		out = append(out, Route{Route: f[7], Placement: f[0], Pinned: f[1] == "1", Samples: samples,
			Mean: time.Duration(mean), Max: time.Duration(maxNs), Promotions: promos, Demotions: demos})
	}
	return out
}
