// Package config owns multiserve's settings: one table declares each setting
// once, and flags, MULTISERVE_* environment variables, config-file keys,
// validation, --print-config and docs/settings.md are all derived from it.
//
// config knows no worker class by name. The worker classes import config,
// so config cannot import their registry; instead the registry installs a
// Catalog here from its init (SetCatalog), and the worker_class setting
// (default, help, accepted names), the class-specific defaults and checks
// and the docs' per-setting class lists are asked of it. Any program that
// links a class links the registry, so the catalog is there before Load
// runs.
package config

import "time"

// Config is the resolved configuration. The arbiter resolves it once and hands
// it to every worker it spawns (serialised as JSON), so a worker never re-reads
// flags or files. Field tags must match the settings table's keys one to one.
type Config struct {
	// Server socket
	Bind      []string `mapstructure:"bind" json:"bind"`
	Backlog   int      `mapstructure:"backlog" json:"backlog"`
	ReusePort bool     `mapstructure:"reuse_port" json:"reuse_port"`

	// Worker processes
	Workers             int           `mapstructure:"workers" json:"workers"`
	WorkerClass         string        `mapstructure:"worker_class" json:"worker_class"`
	Threads             int           `mapstructure:"threads" json:"threads"`
	WorkerConnections   int           `mapstructure:"worker_connections" json:"worker_connections"`
	MaxRequests         int           `mapstructure:"max_requests" json:"max_requests"`
	MaxRequestsJitter   int           `mapstructure:"max_requests_jitter" json:"max_requests_jitter"`
	Timeout             time.Duration `mapstructure:"timeout" json:"timeout"`
	GracefulTimeout     time.Duration `mapstructure:"graceful_timeout" json:"graceful_timeout"`
	RetireIdleTimeout   time.Duration `mapstructure:"retire_idle_timeout" json:"retire_idle_timeout"`
	Keepalive           time.Duration `mapstructure:"keepalive" json:"keepalive"`
	HeaderTimeout       time.Duration `mapstructure:"header_timeout" json:"header_timeout"`
	RequestTimeout      time.Duration `mapstructure:"request_timeout" json:"request_timeout"`
	BootTimeout         time.Duration `mapstructure:"boot_timeout" json:"boot_timeout"`
	ShutdownDelay       time.Duration `mapstructure:"shutdown_delay" json:"shutdown_delay"`
	EvloopLoops         int           `mapstructure:"evloop_loops" json:"evloop_loops"`
	EvloopGnetAcceptor  bool          `mapstructure:"evloop_gnet_acceptor" json:"evloop_gnet_acceptor"`
	EvloopReuseRequests bool          `mapstructure:"evloop_reuse_requests" json:"evloop_reuse_requests"`
	EvloopConnBuffer    int           `mapstructure:"evloop_conn_buffer" json:"evloop_conn_buffer"`
	HTTPEngine          string        `mapstructure:"http_engine" json:"http_engine"`
	AutoThreshold       time.Duration `mapstructure:"auto_threshold" json:"auto_threshold"`
	AutoSamples         int           `mapstructure:"auto_samples" json:"auto_samples"`
	AutoCooldown        time.Duration `mapstructure:"auto_cooldown" json:"auto_cooldown"`
	AutoPool            int           `mapstructure:"auto_pool" json:"auto_pool"`

	// Security / limits
	LimitRequestLine      int               `mapstructure:"limit_request_line" json:"limit_request_line"`
	LimitRequestFields    int               `mapstructure:"limit_request_fields" json:"limit_request_fields"`
	LimitRequestFieldSize int               `mapstructure:"limit_request_field_size" json:"limit_request_field_size"`
	LimitRequestBody      int64             `mapstructure:"limit_request_body" json:"limit_request_body"`
	ForwardedAllowIPs     []string          `mapstructure:"forwarded_allow_ips" json:"forwarded_allow_ips"`
	SecureSchemeHeaders   map[string]string `mapstructure:"secure_scheme_headers" json:"secure_scheme_headers"`
	ProxyProtocol         bool              `mapstructure:"proxy_protocol" json:"proxy_protocol"`
	ProxyAllowIPs         []string          `mapstructure:"proxy_allow_ips" json:"proxy_allow_ips"`
	HeaderMap             string            `mapstructure:"header_map" json:"header_map"`
	Certfile              string            `mapstructure:"certfile" json:"certfile"`
	Keyfile               string            `mapstructure:"keyfile" json:"keyfile"`
	CACerts               string            `mapstructure:"ca_certs" json:"ca_certs"`

	// Server mechanics
	ProcName      string   `mapstructure:"proc_name" json:"proc_name"`
	Pidfile       string   `mapstructure:"pidfile" json:"pidfile"`
	WorkerTmpDir  string   `mapstructure:"worker_tmp_dir" json:"worker_tmp_dir"`
	RawEnv        []string `mapstructure:"raw_env" json:"raw_env"`
	Chdir         string   `mapstructure:"chdir" json:"chdir"`
	User          string   `mapstructure:"user" json:"user"`
	Group         string   `mapstructure:"group" json:"group"`
	Umask         string   `mapstructure:"umask" json:"umask"`
	StatsBind     string   `mapstructure:"stats_bind" json:"stats_bind"`
	ControlSocket string   `mapstructure:"control_socket" json:"control_socket"`
	ConfigFile    string   `mapstructure:"config" json:"config"`

	// Logging
	Accesslog       string `mapstructure:"accesslog" json:"accesslog"`
	AccessLogFormat string `mapstructure:"access_log_format" json:"access_log_format"`
	Errorlog        string `mapstructure:"errorlog" json:"errorlog"`
	CaptureOutput   bool   `mapstructure:"capture_output" json:"capture_output"`
	Loglevel        string `mapstructure:"loglevel" json:"loglevel"`

	// App is the application to serve: hello, echo, sim, static:DIR or a
	// name a user's program registered. Given as the positional argument.
	App string `mapstructure:"app" json:"app"`
}

// RetireIdle is how long, once a worker was told to retire, an idle
// kept-alive connection may still wait for its next request before the
// worker closes it: retire_idle_timeout, capped by graceful_timeout (the
// worker is gone by then anyway).
func (c *Config) RetireIdle() time.Duration {
	if c.GracefulTimeout > 0 {
		return min(c.RetireIdleTimeout, c.GracefulTimeout)
	}
	return c.RetireIdleTimeout
}
