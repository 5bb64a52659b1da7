package main

import (
	"strings"
	"testing"
)

func TestParseStrace(t *testing.T) {
	out := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 55.59    0.000199         199      2000           read
 16.76    0.000060           7      2000           write
  7.82    0.000028           9       500       120 futex
  4.19    0.000015           7       250           epoll_pwait
  1.68    0.000006           6         1         1 setsockopt
------ ----------- ----------- --------- --------- ----------------
100.00    0.000358           7      4751       121 total
`
	calls := parseStrace(out)
	if len(calls) != 5 || calls["read"] != 2000 || calls["futex"] != 500 || calls["setsockopt"] != 1 {
		t.Fatalf("parseStrace = %v", calls)
	}
	sc := &syscallCount{Requests: 2000, Calls: map[string]float64{}}
	for n, c := range calls {
		sc.Calls[n] = float64(c) / 2000
	}
	if sc.group(groupIO) != 2 || sc.group(groupPoll) != 0.125 || sc.group(groupRuntime) != 0.25 || sc.group(groupOther) != 0.0005 {
		t.Errorf("groups IO %v polling %v runtime %v other %v", sc.group(groupIO), sc.group(groupPoll), sc.group(groupRuntime), sc.group(groupOther))
	}
	if got := sc.top(3); got != "read 1.00, write 1.00, futex 0.25" {
		t.Errorf("top = %q", got)
	}
	b := &bench{results: []*result{{Workload: "hello", Target: "nginx", Peer: true, Status: statusOK, Syscalls: sc}}}
	var w strings.Builder
	b.writeSyscalls(&w)
	if !strings.Contains(w.String(), "| hello | nginx (peer) | 2.38 | 2.00 | 0.12 | 0.25 | 0.00 | read 1.00, write 1.00, futex 0.25, epoll_pwait 0.12 |") {
		t.Errorf("table:\n%s", w.String())
	}
}
