package proc

import (
	"reflect"
	"strings"
	"testing"
)

func envMap(kvs []string) func(string) string {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestSpecRoundTrip(t *testing.T) {
	for _, tc := range []Spec{
		{Age: 7, ArbiterPID: 42, ListenNames: []string{"127.0.0.1:8000", "unix:/tmp/a", "[::1]:80"}, Config: []byte(`{"workers":2}`)},
		{Age: 1, ArbiterPID: 1, ListenNames: nil, Config: []byte(`{}`)},
		{Age: 3, ArbiterPID: 9, ListenNames: []string{"a"}, Config: []byte(`{}`), ScoreboardFD: 7, ScoreboardSlot: 12},
	} {
		got, err := ParseSpec(envMap(tc.Env()))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc) {
			t.Fatalf("round trip: got %+v want %+v", got, tc)
		}
		for _, kv := range tc.Env() {
			if !IsProtocolVar(kv) {
				t.Errorf("%s not recognised as a protocol variable", kv)
			}
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	good := Spec{Age: 1, ArbiterPID: 2, ListenNames: []string{"a"}, Config: []byte("{}")}.Env()
	for _, tc := range []struct {
		name, key, val, want string
	}{
		{"not a worker", EnvRole, "", "not a worker"},
		{"bad age", EnvWorkerAge, "x", EnvWorkerAge},
		{"count mismatch", EnvListenFDs, "2", "names"},
		{"no config", EnvConfig, "", "empty"},
		{"bad scoreboard", EnvScoreboard, "7", EnvScoreboard},
		{"scoreboard fd in the fixed layout", EnvScoreboard, "4:1", EnvScoreboard},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := envMap(append(append([]string{}, good...), tc.key+"="+tc.val))
			_, err := ParseSpec(env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if IsProtocolVar("PATH=/bin") {
		t.Fatal("PATH is not a protocol variable")
	}
}

func TestLogFDsRoundTrip(t *testing.T) {
	for _, l := range []LogFDs{NoLogFDs, {Error: 7, Access: -1, Socket: 8}, {Error: 7, Access: 8, Socket: 9}} {
		got, err := ParseLogFDs(envMap([]string{l.Env()}))
		if err != nil || got != l {
			t.Errorf("round trip %+v: got %+v, %v", l, got, err)
		}
	}
	if got, err := ParseLogFDs(envMap(nil)); err != nil || got != NoLogFDs {
		t.Errorf("absent: %+v, %v", got, err)
	}
	for _, bad := range []string{"1,2", "a,b,c", "1,2,-5"} {
		if _, err := ParseLogFDs(envMap([]string{EnvLogFDs + "=" + bad})); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if !IsProtocolVar(NoLogFDs.Env()) {
		t.Error("EnvLogFDs is a protocol variable")
	}
}
