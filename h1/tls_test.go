package h1

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/tlsconf"
)

// TestTLSConn: with certfile the blocking Conn speaks TLS (request.TLS
// set), also behind a PROXY header, and ca_certs requires a client
// certificate.
func TestTLSConn(t *testing.T) {
	files, err := tlsconf.WriteTestFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(files.CA)
	pool.AppendCertsFromPEM(caPEM)
	client, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	const get = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	for _, tc := range []struct {
		name       string
		proxy, mtl bool
		clientCert bool
		want       string // "" = no answer
	}{
		{"plain tls", false, false, false, "tls=true remote=127.0.0.1:"},
		{"proxy then tls", true, false, false, "tls=true remote=192.0.2.5:77"},
		{"client cert required, given", false, true, true, " peercerts=1"},
		{"client cert required, missing", false, true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Certfile, cfg.Keyfile, cfg.HeaderTimeout = files.Cert, files.Key, 5*time.Second
			cfg.ProxyProtocol = tc.proxy
			if tc.mtl {
				cfg.CACerts = files.CA
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			srv := &Server{Config: cfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "tls="+boolStr(r.TLS != nil)+" remote="+r.RemoteAddr)
				if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
					io.WriteString(w, " peercerts=1")
				}
			})}
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := ln.Accept()
				if err == nil {
					srv.NewConn(nc).Serve(context.Background(), true) // park is ignored for TLS
				}
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.proxy {
				io.WriteString(raw, "PROXY TCP4 192.0.2.5 192.0.2.6 77 443\r\n")
			}
			ccfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
			if tc.clientCert {
				ccfg.Certificates = []tls.Certificate{client}
			}
			c := tls.Client(raw, ccfg)
			_, err = io.WriteString(c, get)
			var out []byte
			if err == nil {
				out, _ = io.ReadAll(c)
			}
			if tc.want == "" {
				if strings.Contains(string(out), "200 OK") {
					t.Fatalf("served without a client certificate: %q", out)
				}
				return
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("got %q (err %v), want %q", out, err, tc.want)
			}
		})
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestTLSPipelinedPark: two requests in one TLS record are both answered
// by one park-mode Serve call: the second sits inside crypto/tls, not in
// the socket, so parking after the first would strand it.
func TestTLSPipelinedPark(t *testing.T) {
	files, err := tlsconf.WriteTestFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Certfile, cfg.Keyfile = files.Cert, files.Key
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &Server{Config: cfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "path="+r.URL.Path)
	})}
	states := make(chan State, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			states <- StateClosed
			return
		}
		c := srv.NewConn(nc)
		st := c.Serve(context.Background(), true)
		c.Close()
		states <- st
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	bc := &batchConn{Conn: raw}
	c := tls.Client(bc, &tls.Config{InsecureSkipVerify: true})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	// Two records in one TCP write: the second is read ahead with the first.
	bc.batch = true
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
	io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if _, err := raw.Write(bc.buf); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	if !strings.Contains(string(out), "path=/1") || !strings.Contains(string(out), "path=/2") {
		t.Fatalf("pipelined over TLS: %q", out)
	}
	<-states
}

// batchConn collects writes while batch is set instead of sending them.
type batchConn struct {
	net.Conn
	batch bool
	buf   []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	if b.batch {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}
