package config

import (
	"fmt"
	"strings"
	"time"
)

// Setting describes one option. The table returned by Settings is the only
// place an option is declared; flags, MULTISERVE_* environment variables,
// config-file keys, Default, Validate, --print-config and docs/settings.md
// all derive from it.
type Setting struct {
	Key       string          // file key, viper key and Config's mapstructure tag: "graceful_timeout"
	Flag      string          // long flag without dashes, "" when the setting has no flag
	Shorthand string          // gunicorn's one-letter flag: "w", "k", "b", "t", ...
	Section   string          // heading in --help and docs/settings.md
	Default   any             // its Go type is the setting's type: int, int64, bool, string, []string, map[string]string, time.Duration
	Help      string          // first line: short help for --help; the rest goes to the docs only
	Check     func(any) error // validates a value of the Default's type; nil means any value of the type
	// Normalize, if set, rewrites the raw value from any source before it
	// is converted to the setting's type: case-folding, or a config file's
	// number written where the setting is a string.
	Normalize func(raw any) any
	// AltEnv is a variable other tools set that gives the default when
	// neither flag, MULTISERVE_* variable nor file does (WEB_CONCURRENCY).
	AltEnv string
	// Repeat: a []string flag takes one value per use and never splits it
	// on commas (an address or KEY=VALUE may contain one).
	Repeat bool
}

// Section names, in the order --help and the docs show them.
const (
	SectionApp       = "Application"
	SectionSocket    = "Server Socket"
	SectionWorkers   = "Worker Processes"
	SectionSecurity  = "Security and Limits"
	SectionMechanics = "Server Mechanics"
	SectionLogging   = "Logging"
)

var sections = []string{SectionApp, SectionSocket, SectionWorkers, SectionSecurity, SectionMechanics, SectionLogging}

// Settings returns the settings table in declaration order, the
// worker_class row completed from the class catalog. The returned slice is
// a copy; Defaults that are slices or maps are shared, so treat them as
// read-only.
func Settings() []Setting {
	out := make([]Setting, len(table))
	for i, s := range table {
		out[i] = withClasses(s)
	}
	return out
}

// lookup returns the table entry for key.
func lookup(key string) (Setting, bool) {
	for _, s := range table {
		if s.Key == key {
			return withClasses(s), true
		}
	}
	return Setting{}, false
}

const defaultAccessLogFormat = `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`

var table = []Setting{
	// Application
	{Key: "app", Section: SectionApp, Default: "hello",
		Help: "The application to serve, given as the positional APP argument.\n" +
			"Built in: `hello`, `echo`, `sim`, `static:DIR`; a Go program that embeds multiserve can register its own names.",
		Check: checkApp},
	{Key: "config", Flag: "config", Shorthand: "c", Section: SectionApp, Default: "",
		Help: "Config file to read (TOML, YAML or JSON, chosen by the extension).\n" +
			"Its keys are the setting names below. The environment variable is `MULTISERVE_CONFIG_FILE` " +
			"(`MULTISERVE_CONFIG` carries the resolved config to workers). A config file cannot name another one."},

	// Server socket
	{Key: "bind", Flag: "bind", Shorthand: "b", Section: SectionSocket, Default: []string{"127.0.0.1:8000"}, Repeat: true,
		Help: "Address to listen on; repeat the flag for several.\n" +
			"`HOST:PORT`, `[IPv6]:PORT`, `unix:PATH` (a stale socket file is removed) or `fd://N` (an inherited fd). " +
			"In `MULTISERVE_BIND`, separate several with commas. " +
			"A HUP applies a changed list: added addresses are bound first (one that fails leaves everything as it was), removed ones close once the old workers are gone (docs/deploy.md).",
		Check: checkBinds},
	{Key: "backlog", Flag: "backlog", Section: SectionSocket, Default: 2048,
		Help:  "listen(2) backlog: connections the kernel queues before the workers accept them.",
		Check: atLeast(1)},
	{Key: "reuse_port", Flag: "reuse-port", Section: SectionSocket, Default: false,
		Help: "Each worker opens its own SO_REUSEPORT socket per TCP bind.\n" +
			"The kernel then spreads connections evenly across workers (no thundering herd)."},

	// Worker processes
	{Key: "workers", Flag: "workers", Shorthand: "w", Section: SectionWorkers, Default: 1,
		Help: "Number of worker processes.\nA good start is one or two per CPU core; the arbiter itself serves nothing. " +
			"When no flag, MULTISERVE_WORKERS or config file sets it, `WEB_CONCURRENCY` (as gunicorn and Heroku use it) is the default.",
		Check:  atLeast(1),
		AltEnv: "WEB_CONCURRENCY"},
	// Default, Help and Check come from the class catalog (catalog.go).
	{Key: "worker_class", Flag: "worker-class", Shorthand: "k", Section: SectionWorkers, Default: ""},
	{Key: "threads", Flag: "threads", Section: SectionWorkers, Default: 1,
		Help: "Threads per worker: threaded's pool size; evloop's handler pool size (0 = handlers run inline on the loop; evloop's default when unset).\n" +
			"The threaded class needs at least 1.",
		Check: atLeast(0)},
	{Key: "worker_connections", Flag: "worker-connections", Section: SectionWorkers, Default: 1000,
		Help:  "Maximum open connections per worker.",
		Check: atLeast(1)},
	{Key: "max_requests", Flag: "max-requests", Section: SectionWorkers, Default: 0,
		Help:  "Recycle a worker gracefully after this many requests (0 = never).\nA cheap guard against memory leaks in the application.",
		Check: atLeast(0)},
	{Key: "max_requests_jitter", Flag: "max-requests-jitter", Section: SectionWorkers, Default: 0,
		Help:  "Random 0..N added to max_requests per worker, so workers do not all recycle at once.",
		Check: atLeast(0)},
	{Key: "timeout", Flag: "timeout", Shorthand: "t", Section: SectionWorkers, Default: 30 * time.Second,
		Help: "A worker silent this long is killed (SIGABRT, then SIGKILL) and replaced; 0 disables.\n" +
			"Workers beat from the loop that does the work, so a stuck `sync` request or a blocked event loop stops the beat. " +
			"Plain numbers are seconds, as in gunicorn.",
		Check: nonNegative},
	{Key: "graceful_timeout", Flag: "graceful-timeout", Section: SectionWorkers, Default: 30 * time.Second,
		Help:  "How long in-flight requests get to finish on TERM, HUP or a max_requests recycle.",
		Check: nonNegative},
	{Key: "retire_idle_timeout", Flag: "retire-idle-timeout", Section: SectionWorkers, Default: 2 * time.Second,
		Help: "When a worker retires, how long an idle kept-alive connection may still wait for its next request (capped by graceful_timeout).\n" +
			"A worker retires on TERM, HUP, TTOU, WINCH, `ctl worker remove`, max_requests and after a USR2 upgrade. " +
			"It stops accepting at once; a request that arrives on a kept-alive connection meanwhile is answered with `Connection: close`. " +
			"A connection idle this long from the moment the worker was told to go is then closed. See docs/deploy.md.",
		Check: nonNegative},
	{Key: "keepalive", Flag: "keep-alive", Section: SectionWorkers, Default: 65 * time.Second,
		Help: "Idle time a kept-alive connection may wait for its next request.\n" +
			"Longer than a load balancer's usual 60 s idle timeout, which avoids the classic 502s. `sync` never keeps connections alive.",
		Check: nonNegative},
	{Key: "header_timeout", Flag: "header-timeout", Section: SectionWorkers, Default: 10 * time.Second,
		Help:  "A client must send its whole request head within this (slowloris guard); 0 disables.",
		Check: nonNegative},
	{Key: "request_timeout", Flag: "request-timeout", Section: SectionWorkers, Default: time.Duration(0),
		Help:  "Per-request limit (0 = none): the handler's context is cancelled, and the client gets 503 if nothing was sent.",
		Check: nonNegative},
	{Key: "boot_timeout", Flag: "boot-timeout", Section: SectionWorkers, Default: 30 * time.Second,
		Help:  "A worker not ready this long after it was started is replaced.",
		Check: nonNegative},
	{Key: "shutdown_delay", Flag: "shutdown-delay", Section: SectionWorkers, Default: time.Duration(0),
		Help: "On TERM keep serving (reporting not-ready on the stats endpoint's /readyz) this long before stopping accepting.\n" +
			"Gives a load balancer time to take the server out of rotation. Then new connections are refused, the accept queue is served, and the workers stop within graceful_timeout.",
		Check: nonNegative},
	{Key: "evloop_loops", Flag: "evloop-loops", Section: SectionWorkers, Default: 0,
		Help:  "Event loops per evloop or auto worker (0 = one per CPU the worker may use).",
		Check: atLeast(0)},
	{Key: "evloop_reuse_requests", Flag: "evloop-reuse-requests", Section: SectionWorkers, Default: false,
		Help: "Inline evloop (and auto) handlers get a recycled *http.Request: no allocation per request.\n" +
			"A handler must then not use r, r.URL or r.Header after it returned, not even from a goroutine it started (hand it r.Clone(ctx)); " +
			"strings, header values and the context stay valid. Off by default because net/http lets a handler keep r."},
	{Key: "evloop_gnet_acceptor", Flag: "evloop-gnet-acceptor", Section: SectionWorkers, Default: false,
		Help: "evloop (and auto) accept with gnet's own acceptor instead of the worker's accept loop, which hands each new " +
			"connection to gnet the way gnet's acceptor does, at about the same cost (docs/evloop-measurements.md); gnet stops the worker, dropping every connection it holds, on any accept error other than a connection burst " +
			"past the fd limit (ENFILE, ENOBUFS, ENOMEM, EMFILE from the application's own files). Used only when RLIMIT_NOFILE " +
			"covers worker_connections plus a full accept queue; see docs/edge-security.md."},
	{Key: "auto_threshold", Flag: "auto-threshold", Section: SectionWorkers, Default: time.Millisecond,
		Help: "Handler time that separates the auto class's inline routes from its pooled ones.\n" +
			"A pooled route whose last auto_samples requests each took at most this is promoted to run inline on the loop; " +
			"three slower inline requests in a row, each within auto_samples requests of the one before, demote it to the pool (one or two may be the kernel or the Go scheduler setting the loop aside: wall-clock time cannot tell), and a handler that stalls its loop past a heartbeat tick (250 ms) demotes its route at once.",
		Check: positive},
	{Key: "auto_samples", Flag: "auto-samples", Section: SectionWorkers, Default: 100,
		Help:  "Consecutive fast requests that promote an auto route from the pool to inline.",
		Check: atLeast(1)},
	{Key: "auto_cooldown", Flag: "auto-cooldown", Section: SectionWorkers, Default: 10 * time.Second,
		Help: "How long a demoted auto route stays on the pool before it may be promoted again.\n" +
			"Bounds how often a route that blocks now and then can stall a loop (see docs/choosing-a-worker-class.md).",
		Check: nonNegative},
	{Key: "auto_pool", Flag: "auto-pool", Section: SectionWorkers, Default: 1000,
		Help: "Goroutines per auto worker for pooled routes and streamed request bodies.\n" +
			"They start on demand; size it for the requests that may wait at once.",
		Check: atLeast(1)},
	{Key: "evloop_conn_buffer", Flag: "evloop-conn-buffer", Section: SectionWorkers, Default: 1 << 20,
		Help: "Bytes an evloop (or auto) connection may hold unsent or unread, each direction, before the loop stops taking more.\n" +
			"Above it a connection's pipelined requests wait and its socket is not read, and a handler off the loop waits in its writes; " +
			"an inline handler, which must not stall its loop, may leave 16 times it unsent before its response is cut (use threads > 0 for larger responses to slow clients). " +
			"Input beyond what a waiting connection may buffer closes it; output that makes no progress within header_timeout cuts it.",
		Check: atLeast(64 << 10)},
	{Key: "http_engine", Flag: "http-engine", Section: SectionWorkers, Default: "native",
		Help: "HTTP engine of the goroutine class: native or net/http.\n" +
			"`native` is the strict engine every class shares; `net/http` gives HTTP/2 over TLS. " +
			"Plaintext requests reach net/http only through the native engine's parser, so every limit, framing rule and timeout holds; " +
			"over TLS (HTTP/1.1 and HTTP/2) net/http frames requests itself: limit_request_* are checked after it parsed them, " +
			"a Content-Length with Transfer-Encoding is served chunked, and an HTTP/2 stream whose body stalls is not timed out. " +
			"Refusals reach the access log and multiserve_rejected_requests_total as on the native engine, except what net/http refuses itself over TLS " +
			"(its 400 for a malformed head, a head over its 1 MiB limit, a head that stops coming), which is not seen.",
		Check: oneOf("native", "net/http")},

	// Security and limits
	{Key: "limit_request_line", Flag: "limit-request-line", Section: SectionSecurity, Default: 4094,
		Help:  "Maximum bytes of the request line; longer gets 414 (0 = up to 8190).",
		Check: between(0, 8190)},
	{Key: "limit_request_fields", Flag: "limit-request-fields", Section: SectionSecurity, Default: 100,
		Help:  "Maximum number of header fields; more gets 431.",
		Check: between(0, 32768)},
	{Key: "limit_request_field_size", Flag: "limit-request-field-size", Section: SectionSecurity, Default: 8190,
		Help:  "Maximum bytes of one header field; larger gets 431 (0 = unlimited).",
		Check: atLeast(0)},
	{Key: "limit_request_body", Flag: "limit-request-body", Section: SectionSecurity, Default: int64(0),
		Help:  "Maximum request body bytes; larger gets 413 (0 = unlimited).",
		Check: atLeast(0)},
	{Key: "forwarded_allow_ips", Flag: "forwarded-allow-ips", Section: SectionSecurity,
		Default: []string{"127.0.0.1", "::1"},
		Help:    "Peers trusted to set X-Forwarded-* headers: IPs, CIDRs or `*`.\nFrom other peers those headers are stripped.",
		Check:   checkIPList},
	{Key: "secure_scheme_headers", Section: SectionSecurity,
		Default: map[string]string{"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"},
		Help: "Headers (and values) that mark a request from a trusted peer as https (the handler sees r.URL.Scheme = \"https\", like gunicorn's wsgi.url_scheme; r.TLS stays nil; contradictory headers get 400).\n" +
			"No flag: set it in the config file as a table of header = value, or in the environment as `HEADER=value,HEADER=value`. " +
			"A table given replaces the default one. Header names are upper-cased.",
		Check: checkHeaderTable},
	{Key: "proxy_protocol", Flag: "proxy-protocol", Section: SectionSecurity, Default: false,
		Help: "Expect a PROXY protocol v1/v2 header on every accepted connection.\n" +
			"Its source address becomes the request's remote address; a connection without a valid header, " +
			"or from a peer not in proxy_allow_ips, is closed unanswered."},
	{Key: "proxy_allow_ips", Flag: "proxy-allow-ips", Section: SectionSecurity, Default: []string{"127.0.0.1", "::1"},
		Help:  "Peers allowed to send a PROXY header: IPs, CIDRs or `*` (unix-socket peers always are).",
		Check: checkIPList},
	{Key: "header_map", Flag: "header-map", Section: SectionSecurity, Default: "drop",
		Help: "What to do with header names containing underscores: drop, refuse or dangerous.\n" +
			"`drop` removes them (like nginx), `refuse` answers 400, `dangerous` passes them to the app.",
		Check: oneOf("drop", "refuse", "dangerous")},
	{Key: "certfile", Flag: "certfile", Section: SectionSecurity, Default: "",
		Help: "TLS certificate file (PEM); needs keyfile.\n" +
			"sync, threaded and goroutine terminate TLS (goroutine with http_engine = net/http also offers HTTP/2); evloop refuses it at start."},
	{Key: "keyfile", Flag: "keyfile", Section: SectionSecurity, Default: "",
		Help: "TLS private key file (PEM); needs certfile."},
	{Key: "ca_certs", Flag: "ca-certs", Section: SectionSecurity, Default: "",
		Help: "CA bundle for verifying client certificates; needs certfile. When set, every client must present a certificate it signed."},

	// Server mechanics
	{Key: "proc_name", Flag: "name", Shorthand: "n", Section: SectionMechanics, Default: "",
		Help: "Name in the process titles (ps): `multiserve: arbiter [NAME]`, `multiserve: worker 3 [CLASS] NAME (gen 2)`; empty = the APP.\n" +
			"The arbiter's title can be at most as long as the command line it was started with."},
	{Key: "pidfile", Flag: "pid", Shorthand: "p", Section: SectionMechanics, Default: "",
		Help: "File the arbiter writes its pid to (none by default)."},
	{Key: "worker_tmp_dir", Flag: "worker-tmp-dir", Section: SectionMechanics, Default: "",
		Help: "Directory for the workers' heartbeat files (empty = /dev/shm if present, else the OS temp dir).\n" +
			"A disk-backed directory makes every heartbeat a disk write; keep it on tmpfs.",
		Check: checkDir},
	{Key: "raw_env", Flag: "env", Shorthand: "e", Section: SectionMechanics, Default: []string{}, Repeat: true,
		Help: "`KEY=VALUE` set in the workers' environment; repeat the flag for several (gunicorn's raw_env).\n" +
			"Applied on top of the environment multiserve was started with, for the workers only; a HUP applies a changed list to the new workers. " +
			"`MULTISERVE_*` names are multiserve's own and refused. In `MULTISERVE_RAW_ENV`, separate several with commas (a value then cannot contain one; use the flag or the config file's list).",
		Check: checkRawEnv},
	{Key: "chdir", Flag: "chdir", Section: SectionMechanics, Default: "",
		Help: "Directory the arbiter changes to before it checks or opens anything (empty = stay); the workers start in it.\n" +
			"Relative paths in every other setting (log files, pid file, `unix:` binds, `static:DIR`, certificates) are then relative to it; " +
			"the config file (`-c`) and a relative chdir itself are relative to the directory multiserve was started in, also when HUP or USR2 read them again. " +
			"After a HUP that changes it, the new workers start in the new directory; the arbiter's own relative paths keep the directory it started with.",
		Check: checkDir},
	{Key: "user", Flag: "user", Shorthand: "u", Section: SectionMechanics, Default: "",
		Help:  "User (name or uid) the workers run as; the arbiter binds first, so privileged ports work.",
		Check: checkUser},
	{Key: "group", Flag: "group", Shorthand: "g", Section: SectionMechanics, Default: "",
		Help:  "Group (name or gid) the workers run as.",
		Check: checkGroup},
	{Key: "umask", Flag: "umask", Shorthand: "m", Section: SectionMechanics, Default: "",
		Help:      "Octal umask for the workers, such as 0022 (empty = unchanged).\nIn a config file write it as a string (`umask = \"0022\"`) or an octal number (`umask = 0o022` in TOML).",
		Check:     checkUmask,
		Normalize: octalString},
	{Key: "stats_bind", Flag: "stats-bind", Section: SectionMechanics, Default: "",
		Help:  "Address of the arbiter's status and metrics endpoint (`HOST:PORT` or `unix:PATH`; off when empty).",
		Check: checkStatsBind},
	{Key: "control_socket", Flag: "control-socket", Section: SectionMechanics, Default: "",
		Help: "Unix socket (mode 0600) for `multiserve ctl` (off when empty)."},

	// Logging
	{Key: "accesslog", Flag: "access-logfile", Section: SectionLogging, Default: "",
		Help: "Access log file; `-` is stdout (off when empty)."},
	{Key: "access_log_format", Flag: "access-logformat", Section: SectionLogging, Default: defaultAccessLogFormat,
		Help: "Access log line in gunicorn's atoms: %(h)s remote address, %(t)s time, %(r)s request line, " +
			"%(s)s status, %(b)s body bytes, %(f)s referer, %(a)s user agent, %(D)s microseconds, ...; " +
			"or `json` for one JSON object per request.",
		Check: nonEmpty},
	{Key: "errorlog", Flag: "error-logfile", Section: SectionLogging, Default: "-",
		Help:  "Error log file; `-` is stderr.",
		Check: nonEmpty},
	{Key: "capture_output", Flag: "capture-output", Section: SectionLogging, Default: false,
		Help: "Send what workers write to stdout and stderr (an app's prints, a panic's trace) to the error log.\n" +
			"The arbiter reads each worker's output pipe and writes it line by line, prefixed with the worker's pid, to the error log of the worker's generation, and to the new file after USR1. " +
			"A worker never waits for it: lines the error log cannot take fast enough are dropped (counted in a line that says how many), lines longer than 4 KiB are split. " +
			"With `errorlog = \"-\"` the lines go to the arbiter's stderr, stdout included. Off, workers write to the arbiter's stdout and stderr directly."},
	{Key: "loglevel", Flag: "log-level", Section: SectionLogging, Default: "info",
		Help:      "Error log level: debug, info, warning, error or critical.",
		Check:     oneOf("debug", "info", "warning", "error", "critical"),
		Normalize: lowerCase},
}

// envName is the environment variable for key. `config` is the exception:
// MULTISERVE_CONFIG already carries the resolved config to the workers.
func envName(key string) string {
	if key == "config" {
		return envPrefix + "CONFIG_FILE"
	}
	return envPrefix + strings.ToUpper(key)
}

const envPrefix = "MULTISERVE_"

// flagDisplay renders a setting's flags for messages and docs: "-w, --workers".
func flagDisplay(s Setting) string {
	switch {
	case s.Flag == "":
		return ""
	case s.Shorthand != "":
		return fmt.Sprintf("-%s, --%s", s.Shorthand, s.Flag)
	default:
		return "--" + s.Flag
	}
}
