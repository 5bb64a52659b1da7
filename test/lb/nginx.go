// Package lb runs nginx, as a load balancer in front of multiserve
// instances, for end-to-end tests: a child process with a generated config
// in a temporary directory, on an ephemeral port of 127.0.0.1, whose
// upstream list a test can change while it serves.
//
// The proxy is set up the way a production one in front of multiserve is:
// upstream keep-alive (so retiring a backend meets pooled, idle
// connections), HTTP/1.1 to the upstream, and proxy_next_upstream left at
// its default, so a POST that reached a backend is never retried and any
// loss shows up as a 502.
package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// Nginx is a running nginx master process.
type Nginx struct {
	Addr string // 127.0.0.1:port nginx listens on

	bin       string
	dir       string
	upstreams []string
	gen       int
	cmd       *exec.Cmd
	done      chan struct{}
	err       error // Wait's result, valid once done is closed
}

// Find returns the nginx binary's path, or an error saying how to get it.
func Find() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("nginx not found in PATH or /usr/sbin (apt-get install nginx)")
}

// Start runs nginx in front of upstreams (host:port each) and waits until
// it answers. It skips t when nginx is not installed; nginx is stopped at
// cleanup.
func Start(t testing.TB, upstreams ...string) *Nginx {
	t.Helper()
	bin, err := Find()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	n := &Nginx{bin: bin, dir: t.TempDir()}
	// The port is picked by binding port 0 and closing it; another
	// process may take it before nginx binds it, so retry a few times.
	for try := 0; ; try++ {
		if err = n.start(upstreams); err == nil {
			break
		}
		if try == 4 {
			t.Fatalf("start nginx: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("stop nginx: %v", err)
		}
	})
	return n
}

func (n *Nginx) start(upstreams []string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	n.Addr = "127.0.0.1:" + strconv.Itoa(port)
	n.upstreams, n.gen = upstreams, 1
	if err := n.writeConfig(); err != nil {
		return err
	}
	n.cmd = exec.Command(n.bin, n.args()...)
	n.cmd.Stdout, n.cmd.Stderr = io.Discard, io.Discard // everything goes to error.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", n.bin, err)
	}
	n.done = make(chan struct{})
	go func() { n.err = n.cmd.Wait(); close(n.done) }()
	if err := n.waitGeneration(n.gen, 30*time.Second); err != nil {
		n.kill()
		return fmt.Errorf("%w\nerror.log:\n%s", err, n.ErrorLog())
	}
	return nil
}

// args: -p makes every relative path (logs, pid, temp files) live in the
// test's directory; -e sends the messages logged before the config is read
// there too.
func (n *Nginx) args() []string {
	return []string{"-p", n.dir + "/", "-c", n.conf(), "-e", filepath.Join(n.dir, "error.log")}
}

func (n *Nginx) conf() string { return filepath.Join(n.dir, "nginx.conf") }

// SetUpstreams replaces the upstream list and reloads nginx. It returns
// once the new configuration answers and every worker of the old one has
// exited, so from then on no request goes to a removed upstream.
func (n *Nginx) SetUpstreams(upstreams ...string) error {
	if len(upstreams) == 0 {
		return errors.New("lb: nginx needs at least one upstream")
	}
	old := testserver.Children(n.cmd.Process.Pid)
	n.upstreams = upstreams
	n.gen++
	if err := n.writeConfig(); err != nil {
		return err
	}
	if out, err := exec.Command(n.bin, append(n.args(), "-t")...).CombinedOutput(); err != nil {
		return fmt.Errorf("lb: nginx -t: %v\n%s", err, out)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("lb: reload nginx: %w", err)
	}
	if err := n.waitGeneration(n.gen, 30*time.Second); err != nil {
		return err
	}
	return waitGone(old, 30*time.Second)
}

// Upstreams is the current upstream list.
func (n *Nginx) Upstreams() []string { return append([]string(nil), n.upstreams...) }

// Stop shuts nginx down gracefully (QUIT: in-flight requests finish), and
// kills it if it has not exited after 30 s. Calling it again is a no-op.
func (n *Nginx) Stop() error {
	select {
	case <-n.done:
		return n.leftovers()
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGQUIT) // exits on its own if this fails
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.kill()
		return errors.New("nginx still running 30 s after QUIT; killed")
	}
	if n.err != nil {
		return fmt.Errorf("nginx exited: %v\nerror.log:\n%s", n.err, n.ErrorLog())
	}
	return n.leftovers()
}

// leftovers: nginx removes its pid file on a clean exit; a worker of its
// process group still alive would outlive the test.
func (n *Nginx) leftovers() error {
	if _, err := os.Stat(filepath.Join(n.dir, "nginx.pid")); err == nil {
		return errors.New("nginx left its pid file behind")
	}
	if err := syscall.Kill(-n.cmd.Process.Pid, 0); err == nil {
		n.kill()
		return errors.New("nginx processes outlived the master; killed")
	}
	return nil
}

func (n *Nginx) kill() {
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL) // the group may be gone already
	<-n.done
}

// ErrorLog is nginx's error log so far (level info: reloads, upstream
// errors).
func (n *Nginx) ErrorLog() string {
	b, err := os.ReadFile(filepath.Join(n.dir, "error.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Entry is one line of the access log.
type Entry struct {
	Time     time.Time
	Method   string
	Status   int
	Upstream string // the backend that answered; "a, b" when nginx tried two
}

// AccessLog parses every request nginx logged so far.
func (n *Nginx) AccessLog() ([]Entry, error) {
	f, err := os.Open(filepath.Join(n.dir, "access.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e, err := parseEntry(sc.Text())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// parseEntry reads a line of the "lb" log_format: msec status method upstream...
func parseEntry(line string) (Entry, error) {
	f := strings.SplitN(line, " ", 4)
	if len(f) != 4 {
		return Entry{}, fmt.Errorf("lb: access log line %q", line)
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return Entry{}, fmt.Errorf("lb: access log line %q: %w", line, err)
	}
	status, err := strconv.Atoi(f[1])
	if err != nil {
		return Entry{}, fmt.Errorf("lb: access log line %q: %w", line, err)
	}
	ms := int64(sec * 1000)
	return Entry{Time: time.UnixMilli(ms), Status: status, Method: f[2], Upstream: f[3]}, nil
}

// waitGeneration polls the generation location on fresh connections until
// it answers gen.
func (n *Nginx) waitGeneration(gen int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	want := strconv.Itoa(gen)
	var last string
	for {
		got, err := n.generation(ctx)
		if err == nil && got == want {
			return nil
		}
		last = fmt.Sprintf("answer %q, error %v", got, err)
		select {
		case <-n.done:
			return fmt.Errorf("lb: nginx exited: %v", n.err)
		case <-ctx.Done():
			return fmt.Errorf("lb: nginx config generation %d not served after %v (last: %s)", gen, d, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *Nginx) generation(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Addr+genPath, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// waitGone waits until none of pids is alive (an old nginx worker finishes
// its in-flight requests first).
func waitGone(pids []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for _, p := range pids {
		for syscall.Kill(p, 0) == nil && testserver.PPid(p) != 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("lb: old nginx worker pid=%d still running after %v", p, d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// genPath answers the config generation, so a reload is known to be live.
const genPath = "/_lb/generation"

func (n *Nginx) writeConfig() error {
	var b strings.Builder
	err := confTemplate.Execute(&b, map[string]any{
		"Root":      os.Geteuid() == 0,
		"Addr":      n.Addr,
		"Upstreams": n.upstreams,
		"Gen":       n.gen,
		"GenPath":   genPath,
	})
	if err != nil {
		return fmt.Errorf("lb: nginx config: %w", err)
	}
	// Written to a new file and renamed: a reload never reads half a file.
	tmp := n.conf() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("lb: %w", err)
	}
	return os.Rename(tmp, n.conf())
}

// The config. Run as root, nginx would switch its workers to nobody, who
// cannot write the test's temporary directory; "user root" keeps them as
// they are. Every path is relative to the -p prefix (the test directory).
var confTemplate = template.Must(template.New("nginx.conf").Parse(`daemon off;
master_process on;
worker_processes 1;
{{if .Root}}user root;
{{end}}pid nginx.pid;
error_log error.log info;
events { worker_connections 1024; }
http {
	log_format lb '$msec $status $request_method $upstream_addr';
	access_log access.log lb;
	client_body_temp_path body;
	proxy_temp_path proxy;
	fastcgi_temp_path fastcgi;
	uwsgi_temp_path uwsgi;
	scgi_temp_path scgi;
	upstream backend {
{{range .Upstreams}}		server {{.}};
{{end}}		keepalive 32;
	}
	server {
		listen {{.Addr}};
		location = {{.GenPath}} { access_log off; return 200 "{{.Gen}}\n"; }
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`))
