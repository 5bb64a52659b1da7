package config

import "time"

// Default returns the configuration with every setting at its default.
// TODO(config): derive from the settings table.
func Default() *Config {
	return &Config{
		Bind: []string{"127.0.0.1:8000"}, Backlog: 2048,
		Workers: 1, WorkerClass: "sync", Threads: 1, WorkerConnections: 1000,
		Timeout: 30 * time.Second, GracefulTimeout: 30 * time.Second, Keepalive: 65 * time.Second,
		HeaderTimeout: 10 * time.Second, BootTimeout: 30 * time.Second,
		HTTPEngine:       "native",
		LimitRequestLine: 4094, LimitRequestFields: 100, LimitRequestFieldSize: 8190,
		ForwardedAllowIPs: []string{"127.0.0.1", "::1"}, ProxyAllowIPs: []string{"127.0.0.1", "::1"},
		SecureSchemeHeaders: map[string]string{"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"},
		HeaderMap:           "drop",
		AccessLogFormat:     `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`,
		Errorlog:            "-", Loglevel: "info", App: "hello",
	}
}
