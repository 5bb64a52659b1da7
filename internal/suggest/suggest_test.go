package suggest

import "testing"

func TestNearest(t *testing.T) {
	names := []string{"workers", "worker_class", "threads", "hello", "echo"}
	for _, tc := range []struct{ in, want string }{
		{"wrokers", "workers"},
		{"worker-class", "worker_class"},
		{"WORKERS", "workers"},
		{"work", "workers"},
		{"helo", "hello"},
		{"zzzzzzzz", ""},
	} {
		if got := Nearest(tc.in, names); got != tc.want {
			t.Errorf("Nearest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
