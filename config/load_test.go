package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cleanEnv blanks every MULTISERVE_* variable for the test (viper ignores
// empty ones), so the host's environment cannot leak in.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MULTISERVE_") {
			t.Setenv(k, "")
		}
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, args ...string) *Loaded {
	t.Helper()
	l, err := Load(args)
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	return l
}

func TestPrecedence(t *testing.T) {
	file := "workers = 2\n"
	tests := []struct {
		name       string
		file, env  bool
		flag       bool
		want       int
		wantSource string
	}{
		{"default", false, false, false, 1, "default"},
		{"file", true, false, false, 2, "file"},
		{"env over file", true, true, false, 3, "env"},
		{"flag over env and file", true, true, true, 4, "flag"},
		{"flag over file", true, false, true, 4, "flag"},
		{"env over default", false, true, false, 3, "env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			var args []string
			if tt.file {
				args = append(args, "-c", writeFile(t, "app.toml", file))
			}
			if tt.env {
				t.Setenv("MULTISERVE_WORKERS", "3")
			}
			if tt.flag {
				args = append(args, "-w", "4")
			}
			l := mustLoad(t, args...)
			if l.Config.Workers != tt.want || l.Sources["workers"] != tt.wantSource {
				t.Errorf("workers = %d from %s, want %d from %s",
					l.Config.Workers, l.Sources["workers"], tt.want, tt.wantSource)
			}
			if l.Sources["backlog"] != "default" {
				t.Errorf("backlog source %q, want default", l.Sources["backlog"])
			}
		})
	}
}

// The same settings in each file format give the same Config; durations
// accept gunicorn's plain seconds.
func TestFileFormats(t *testing.T) {
	files := map[string]string{
		"app.toml": `workers = 3
worker_class = "threaded"
threads = 4
timeout = 20
graceful_timeout = "45s"
bind = ["127.0.0.1:9001", "unix:/tmp/ms.sock"]
limit_request_body = 1048576
reuse_port = true
[secure_scheme_headers]
X-Scheme = "https"
`,
		"app.yaml": `workers: 3
worker_class: threaded
threads: 4
timeout: 20
graceful_timeout: 45s
bind:
  - 127.0.0.1:9001
  - unix:/tmp/ms.sock
limit_request_body: 1048576
reuse_port: true
secure_scheme_headers:
  X-Scheme: https
`,
		"app.json": `{"workers": 3, "worker_class": "threaded", "threads": 4, "timeout": 20,
"graceful_timeout": "45s", "bind": ["127.0.0.1:9001", "unix:/tmp/ms.sock"],
"limit_request_body": 1048576, "reuse_port": true, "secure_scheme_headers": {"X-Scheme": "https"}}`,
	}
	for name, body := range files {
		t.Run(name, func(t *testing.T) {
			cleanEnv(t)
			l := mustLoad(t, "-c", writeFile(t, name, body))
			c := l.Config
			if c.Workers != 3 || c.WorkerClass != "threaded" || c.Threads != 4 || !c.ReusePort ||
				c.Timeout != 20*time.Second || c.GracefulTimeout != 45*time.Second ||
				c.LimitRequestBody != 1<<20 ||
				!slices.Equal(c.Bind, []string{"127.0.0.1:9001", "unix:/tmp/ms.sock"}) {
				t.Errorf("got %+v", c)
			}
			// A file table replaces the default table; it is not merged with it.
			if len(c.SecureSchemeHeaders) != 1 || c.SecureSchemeHeaders["X-SCHEME"] != "https" {
				t.Errorf("secure_scheme_headers = %v", c.SecureSchemeHeaders)
			}
			for _, k := range []string{"workers", "timeout", "bind", "secure_scheme_headers"} {
				if l.Sources[k] != "file" {
					t.Errorf("source of %s = %q, want file", k, l.Sources[k])
				}
			}
		})
	}
}

// A key with no value in YAML (null) means the default.
func TestNullMeansDefault(t *testing.T) {
	cleanEnv(t)
	l := mustLoad(t, "-c", writeFile(t, "app.yaml", "pidfile:\nworkers: 2\ntimeout:\n"))
	if l.Config.Pidfile != "" || l.Config.Timeout != 30*time.Second || l.Config.Workers != 2 {
		t.Errorf("got %+v", l.Config)
	}
}

func TestEnvValues(t *testing.T) {
	cleanEnv(t)
	t.Setenv("MULTISERVE_BIND", "127.0.0.1:9001, [::1]:9002")
	t.Setenv("MULTISERVE_TIMEOUT", "15")
	t.Setenv("MULTISERVE_KEEPALIVE", "2m")
	t.Setenv("MULTISERVE_REUSE_PORT", "true")
	t.Setenv("MULTISERVE_SECURE_SCHEME_HEADERS", "X-A=on,x-b=https")
	t.Setenv("MULTISERVE_APP", "echo")
	l := mustLoad(t)
	c := l.Config
	if !slices.Equal(c.Bind, []string{"127.0.0.1:9001", "[::1]:9002"}) || c.Timeout != 15*time.Second ||
		c.Keepalive != 2*time.Minute || !c.ReusePort || c.App != "echo" ||
		c.SecureSchemeHeaders["X-A"] != "on" || c.SecureSchemeHeaders["X-B"] != "https" {
		t.Errorf("got %+v", c)
	}
	if l.Sources["bind"] != "env" || l.Sources["app"] != "env" {
		t.Errorf("sources %v", l.Sources)
	}
}

func TestFlagForms(t *testing.T) {
	cleanEnv(t)
	l := mustLoad(t, "-b", "127.0.0.1:1", "--bind", "[::1]:2", "--bind=unix:/tmp/a,b.sock",
		"-t", "30", "--graceful-timeout", "1.5", "--keep-alive=90s", "--reuse-port",
		"--forwarded-allow-ips", "10.0.0.0/8,192.168.1.1", "echo", "-k", "goroutine")
	c := l.Config
	if !slices.Equal(c.Bind, []string{"127.0.0.1:1", "[::1]:2", "unix:/tmp/a,b.sock"}) {
		t.Errorf("bind = %q (repeatable, never split on commas)", c.Bind)
	}
	if c.Timeout != 30*time.Second || c.GracefulTimeout != 1500*time.Millisecond || c.Keepalive != 90*time.Second {
		t.Errorf("durations %v %v %v", c.Timeout, c.GracefulTimeout, c.Keepalive)
	}
	if !c.ReusePort || c.App != "echo" || c.WorkerClass != "goroutine" ||
		!slices.Equal(c.ForwardedAllowIPs, []string{"10.0.0.0/8", "192.168.1.1"}) {
		t.Errorf("got %+v", c)
	}
	if l.Sources["app"] != "flag" || l.Sources["bind"] != "flag" {
		t.Errorf("sources %v", l.Sources)
	}
}

// A usage error is one line, names the setting and the value, and says
// what is allowed or suggests the nearest name.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name  string
		file  string // app.toml contents, "" for none
		env   map[string]string
		args  []string
		wants []string // substrings of the one-line message
	}{
		{"unknown file key", "worker = 2\n", nil, nil,
			[]string{`unknown setting "worker" in `, `app.toml; did you mean "workers"?`}},
		{"dashed file key", "worker-class = \"sync\"\n", nil, nil,
			[]string{`unknown setting "worker-class"`, `did you mean "worker_class"?`}},
		{"unknown flag", "", nil, []string{"--worker", "2"},
			[]string{`unknown flag "--worker"; did you mean "--workers"?`}},
		{"unknown flag with value", "", nil, []string{"--keepalive=5"},
			[]string{`unknown flag "--keepalive"; did you mean "--keep-alive"?`}},
		{"unknown shorthand", "", nil, []string{"-x"}, []string{`unknown flag "-x"`, "-w"}},
		{"unknown class", "", nil, []string{"-k", "thread"},
			[]string{`invalid value "thread" for worker_class (from --worker-class)`, "evloop, goroutine, sync, threaded", `did you mean "threaded"?`}},
		{"unknown class in file", "worker_class = \"gorutine\"\n", nil, nil,
			[]string{`invalid value "gorutine" for worker_class (from `, `did you mean "goroutine"?`}},
		{"workers 0", "", nil, []string{"-w", "0"}, []string{`invalid value "0" for workers (from --workers): must be at least 1`}},
		{"workers not a number", "", nil, []string{"-w", "two"}, []string{`invalid value "two" for workers (from --workers): want an integer`}},
		{"negative timeout", "", nil, []string{"-t", "-1"}, []string{`for timeout (from --timeout): must not be negative`}},
		{"bad duration env", "", map[string]string{"MULTISERVE_GRACEFUL_TIMEOUT": "soon"}, nil,
			[]string{`invalid value "soon" for graceful_timeout (from MULTISERVE_GRACEFUL_TIMEOUT): want a duration`}},
		{"bad bind", "", nil, []string{"-b", "localhost"}, []string{`invalid value "localhost" for bind`, "missing port"}},
		{"bad bind v6", "", nil, []string{"-b", "::1:8000"}, []string{"IPv6 addresses need brackets"}},
		{"bad port", "", nil, []string{"-b", "127.0.0.1:99999"}, []string{"port \"99999\""}},
		{"bad loglevel", "", nil, []string{"--log-level", "warn"}, []string{`for loglevel`, `did you mean "warning"?`}},
		{"net/http needs goroutine", "", nil, []string{"--http-engine", "net/http"},
			[]string{`for http_engine`, "only available with worker_class goroutine"}},
		{"threaded needs a thread", "", nil, []string{"-k", "threaded", "--threads", "0"}, []string{`invalid value "0" for threads`}},
		{"bad header_map", "", nil, []string{"--header-map", "pass"}, []string{"drop, refuse, dangerous"}},
		{"bad umask", "", nil, []string{"-m", "999"}, []string{`for umask`, "octal"}},
		{"umask number out of range in a file", "umask = 0o1777\n", nil, nil, []string{`invalid value "1777" for umask`, "octal"}},
		{"bad ip list", "", nil, []string{"--forwarded-allow-ips", "10.0.0.0/8,nope"}, []string{`invalid value "nope" for forwarded_allow_ips`}},
		{"keyfile without certfile", "", nil, []string{"--keyfile", "k.pem"}, []string{`invalid value "k.pem" for keyfile (from --keyfile): needs certfile as well`}},
		{"string for int in file", "workers = \"many\"\n", nil, nil, []string{`invalid value "many" for workers`, "want an integer"}},
		{"fractional int in json", "", nil, nil, nil}, // replaced below
		{"too many args", "", nil, []string{"echo", "hello"}, []string{"too many arguments"}},
		{"flag needs value", "", nil, []string{"--bind"}, []string{"flag --bind needs a value"}},
		{"bad extension", "", nil, []string{"-c", "app.ini"}, []string{"must end in .toml, .yaml, .yml or .json"}},
		{"missing file", "", nil, []string{"-c", "/nonexistent/app.toml"}, []string{"config file: open /nonexistent/app.toml: no such file"}},
		{"broken toml", "workers = = 2\n", nil, nil, []string{"config file", "app.toml"}},
		{"config inside config", "config = \"other.toml\"\n", nil, nil, []string{"cannot be set inside a config file"}},
	}
	for _, tt := range tests {
		if tt.wants == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-c", writeFile(t, "app.toml", tt.file)}, args...)
			}
			_, err := Load(args)
			checkUsage(t, err, tt.wants...)
		})
	}
	t.Run("fractional int in json", func(t *testing.T) {
		cleanEnv(t)
		_, err := Load([]string{"-c", writeFile(t, "app.json", `{"workers": 2.5}`)})
		checkUsage(t, err, `invalid value "2.5" for workers`)
	})
}

func checkUsage(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("Load succeeded, want a usage error")
	}
	if !IsUsage(err) {
		t.Errorf("%v: not a *UsageError", err)
	}
	msg := err.Error()
	t.Log(msg)
	if strings.Contains(msg, "\n") {
		t.Errorf("message spans lines: %q", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
}

// Several bad values are all reported, one line each.
func TestSeveralErrorsJoined(t *testing.T) {
	cleanEnv(t)
	_, err := Load([]string{"-w", "0", "-t", "-5", "-b", "nope"})
	if !IsUsage(err) {
		t.Fatalf("err = %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", lines)
	}
	var count int
	usageErrors(err, func(*UsageError) { count++ })
	if count != 3 {
		t.Errorf("%d UsageErrors in the tree, want 3", count)
	}
	var u *UsageError
	if !errors.As(err, &u) || u.Setting == "" {
		t.Errorf("errors.As: %+v", u)
	}
}

func TestMetaFlags(t *testing.T) {
	cleanEnv(t)
	// --help and --version work even with a broken config file named.
	for _, args := range [][]string{{"-h"}, {"--help", "-c", "/nonexistent.toml"}} {
		l := mustLoad(t, args...)
		if !l.ShowHelp || !strings.Contains(l.Usage, "--worker-class") || !strings.Contains(l.Usage, "Worker Processes:") {
			t.Errorf("%q: ShowHelp=%v usage=%q", args, l.ShowHelp, l.Usage)
		}
	}
	if l := mustLoad(t, "--version"); !l.ShowVersion || l.Config == nil {
		t.Error("--version")
	}
	if l := mustLoad(t, "-v"); !l.ShowVersion {
		t.Error("-v")
	}
	l := mustLoad(t, "--print-config", "--check-config", "-w", "2")
	if !l.PrintConfig || !l.CheckConfig || l.ShowHelp || l.Config.Workers != 2 {
		t.Errorf("%+v", l)
	}
}

// The arbiter calls Load again on SIGHUP: it must see the edited file and
// carry nothing over from the previous call.
func TestLoadIsRecallable(t *testing.T) {
	cleanEnv(t)
	path := writeFile(t, "app.yaml", "workers: 2\n")
	args := []string{"-c", path, "-k", "goroutine"}
	first := mustLoad(t, args...)
	if err := os.WriteFile(path, []byte("workers: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := mustLoad(t, args...)
	if first.Config.Workers != 2 || second.Config.Workers != 5 || second.Config.WorkerClass != "goroutine" {
		t.Errorf("first %d, second %d %s", first.Config.Workers, second.Config.Workers, second.Config.WorkerClass)
	}
	if err := os.WriteFile(path, []byte("workers: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(args); !IsUsage(err) {
		t.Errorf("bad reload: %v", err)
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	cleanEnv(t)
	t.Setenv("MULTISERVE_CONFIG", `{"workers": 9}`) // the worker protocol's variable: never read here
	t.Setenv("MULTISERVE_CONFIG_FILE", writeFile(t, "app.toml", "workers = 2\n"))
	l := mustLoad(t)
	if l.Config.Workers != 2 || l.Sources["config"] != "env" || l.Sources["workers"] != "file" {
		t.Errorf("workers %d, sources %v", l.Config.Workers, l.Sources)
	}
}

func TestWorkerTmpDirResolved(t *testing.T) {
	cleanEnv(t)
	l := mustLoad(t)
	if l.Config.WorkerTmpDir == "" || l.Sources["worker_tmp_dir"] != "default" {
		t.Errorf("worker_tmp_dir %q from %s", l.Config.WorkerTmpDir, l.Sources["worker_tmp_dir"])
	}
	dir := t.TempDir()
	if l := mustLoad(t, "--worker-tmp-dir", dir); l.Config.WorkerTmpDir != dir {
		t.Errorf("worker_tmp_dir %q", l.Config.WorkerTmpDir)
	}
	_, err := Load([]string{"--worker-tmp-dir", filepath.Join(dir, "missing")})
	checkUsage(t, err, "for worker_tmp_dir", "existing directory")
}

func TestPrint(t *testing.T) {
	cleanEnv(t)
	t.Setenv("MULTISERVE_TIMEOUT", "10")
	l := mustLoad(t, "-c", writeFile(t, "app.toml", "threads = 3\n"), "-w", "2", "echo")
	var b strings.Builder
	l.Print(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(table)+1 {
		t.Fatalf("%d lines, want a header and %d settings:\n%s", len(lines), len(table), b.String())
	}
	want := map[string][2]string{
		"workers": {"2", "flag"}, "app": {"echo", "flag"}, "timeout": {"10s", "env"},
		"threads": {"3", "file"}, "backlog": {"2048", "default"}, "pidfile": {`""`, "default"},
	}
	col := strings.Index(lines[0], "source")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if w, ok := want[f[0]]; ok && (f[1] != w[0] || f[len(f)-1] != w[1]) {
			t.Errorf("line %q, want value %s source %s", line, w[0], w[1])
		}
		if strings.LastIndex(line, " ")+1 != col {
			t.Errorf("source column not aligned: %q", line)
		}
	}
}

// Load shares no state between calls, so concurrent calls are safe.
func TestLoadConcurrent(t *testing.T) {
	cleanEnv(t)
	path := writeFile(t, "app.json", `{"workers": 2}`)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			l, err := Load([]string{"-c", path, "--threads", "3", "-w", strconv.Itoa(i + 1)})
			if err == nil && (l.Config.Workers != i+1 || l.Config.Threads != 3) {
				err = fmt.Errorf("call %d got workers %d threads %d", i, l.Config.Workers, l.Config.Threads)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestEvloopInlineByDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-k", "evloop"}, 0},
		{[]string{"-k", "evloop", "--threads", "4"}, 4},
		{[]string{"-k", "evloop", "--threads", "1"}, 1},
		{[]string{"-k", "threaded"}, 1},
	} {
		l, err := Load(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if l.Config.Threads != tc.want {
			t.Errorf("%v: threads = %d, want %d", tc.args, l.Config.Threads, tc.want)
		}
	}
}
