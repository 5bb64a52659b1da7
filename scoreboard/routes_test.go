package scoreboard

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestRoutes: a route table published into a slot reads back whole (a
// route with spaces included), a table too large keeps its first rows
// whole, and the placement counters reach the class totals, retired
// workers included.
func TestRoutes(t *testing.T) {
	b, err := Create(2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	idx, _ := b.Assign(42)
	s := b.Slot(idx)
	if got := s.Routes(); got != nil {
		t.Fatalf("fresh slot: %+v", got)
	}
	rows := []Route{
		{Route: "GET /item/{id}", Placement: "inline", Samples: 1000, Mean: 1500, Max: 90000, Promotions: 1},
		{Route: "/slow", Placement: "pooled", Pinned: true, Samples: 3, Mean: 10 * time.Millisecond, Max: 12 * time.Millisecond},
	}
	s.SetRoutes(rows, 3, 1)
	if got := s.Routes(); !reflect.DeepEqual(got, rows) {
		t.Fatalf("read back\n got %+v\nwant %+v", got, rows)
	}
	var many []Route
	for i := range 100 {
		many = append(many, Route{Route: fmt.Sprintf("GET /a/rather/long/path/number/%d", i), Placement: "pooled", Samples: uint64(i)})
	}
	s.SetRoutes(many, 3, 1)
	got := s.Routes()
	if len(got) == 0 || len(got) >= len(many) || !reflect.DeepEqual(got, many[:len(got)]) {
		t.Fatalf("a table over %d bytes: %d rows read back, want the first ones whole", routesMax, len(got))
	}
	if c := s.Counters(); c.Promoted != 3 || c.Demoted != 1 {
		t.Fatalf("counters %+v", c)
	}
	b.Retire(idx, "auto")
	if tot := b.Totals(nil)["auto"]; tot.Promoted != 3 || tot.Demoted != 1 {
		t.Fatalf("retired totals %+v", tot)
	}
}
