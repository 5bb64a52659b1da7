package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Spec is what the arbiter tells one worker through its environment. The fds
// travel separately (ExtraFiles, in the layout above).
type Spec struct {
	Age         int      // spawn sequence number
	ArbiterPID  int      // the pid the worker compares getppid() with
	ListenNames []string // one per listener fd, from FDFirstListener on
	Config      []byte   // the resolved config.Config as JSON
	// The scoreboard memfd (after the listeners) and this worker's slot in
	// it; ScoreboardFD 0 means the worker has no slot.
	ScoreboardFD, ScoreboardSlot int
}

// Env returns the spec as KEY=VALUE pairs for os/exec, role marker included.
func (s Spec) Env() []string {
	env := []string{
		EnvRole + "=" + RoleWorker,
		EnvConfig + "=" + string(s.Config),
		EnvArbiterPID + "=" + strconv.Itoa(s.ArbiterPID),
		EnvWorkerAge + "=" + strconv.Itoa(s.Age),
		EnvListenFDs + "=" + strconv.Itoa(len(s.ListenNames)),
		EnvListenNames + "=" + strings.Join(s.ListenNames, ","),
	}
	if s.ScoreboardFD > 0 {
		env = append(env, fmt.Sprintf("%s=%d:%d", EnvScoreboard, s.ScoreboardFD, s.ScoreboardSlot))
	}
	return env
}

// IsProtocolVar reports whether an environment entry (KEY=VALUE or KEY) is
// one of this protocol's variables, so the arbiter can drop stale ones it
// inherited before adding a worker's own.
func IsProtocolVar(kv string) bool {
	key, _, _ := strings.Cut(kv, "=")
	switch key {
	case EnvRole, EnvConfig, EnvArbiterPID, EnvWorkerAge, EnvListenFDs, EnvListenNames, EnvScoreboard, EnvLogFDs:
		return true
	}
	return false
}

// IsWorker reports whether this process was started as a worker.
func IsWorker() bool { return os.Getenv(EnvRole) == RoleWorker }

// ParseSpec reads a worker's spec with getenv (os.Getenv in production).
func ParseSpec(getenv func(string) string) (Spec, error) {
	if r := getenv(EnvRole); r != RoleWorker {
		return Spec{}, fmt.Errorf("proc: %s=%q, not a worker process", EnvRole, r)
	}
	var s Spec
	var err error
	if s.Age, err = atoiEnv(getenv, EnvWorkerAge); err != nil {
		return Spec{}, err
	}
	if s.ArbiterPID, err = atoiEnv(getenv, EnvArbiterPID); err != nil {
		return Spec{}, err
	}
	n, err := atoiEnv(getenv, EnvListenFDs)
	if err != nil {
		return Spec{}, err
	}
	if names := getenv(EnvListenNames); names != "" {
		s.ListenNames = strings.Split(names, ",")
	}
	if len(s.ListenNames) != n {
		return Spec{}, fmt.Errorf("proc: %s=%d but %d names in %s", EnvListenFDs, n, len(s.ListenNames), EnvListenNames)
	}
	s.Config = []byte(getenv(EnvConfig))
	if len(s.Config) == 0 {
		return Spec{}, fmt.Errorf("proc: %s is empty", EnvConfig)
	}
	if s.ScoreboardFD, s.ScoreboardSlot, err = parseSlot(getenv(EnvScoreboard)); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// parseSlot reads EnvScoreboard's "FD:SLOT"; empty means no slot (0, 0).
func parseSlot(v string) (fd, slot int, err error) {
	if v == "" {
		return 0, 0, nil
	}
	fdS, slotS, _ := strings.Cut(v, ":")
	fd, err1 := strconv.Atoi(fdS)
	slot, err2 := strconv.Atoi(slotS)
	if err1 != nil || err2 != nil || fd < FDFirstListener || slot < 0 {
		return 0, 0, fmt.Errorf("proc: bad %s=%q, want FD:SLOT", EnvScoreboard, v)
	}
	return fd, slot, nil
}

func atoiEnv(getenv func(string) string, key string) (int, error) {
	v, err := strconv.Atoi(getenv(key))
	if err != nil {
		return 0, fmt.Errorf("proc: %s: %w", key, err)
	}
	return v, nil
}
