package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/tlsconf"
)

// TestTLS: certfile/keyfile serve HTTPS on sync, threaded, goroutine
// (native and net/http, the latter over HTTP/2), through the real binary;
// ca_certs requires a client certificate; evloop refuses TLS (exit 2), and
// an unreadable certificate is a usage error (exit 2).
func TestTLS(t *testing.T) {
	files, err := tlsconf.WriteTestFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientCert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	client := func(certs []tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client, url string) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := c.Do(req)
		if err == nil {
			var e echoed
			err = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
		}
		return resp, err
	}
	type variant struct{ name, class, proto string }
	vs := []variant{{"sync", "sync", "HTTP/1.1"}, {"threaded", "threaded", "HTTP/1.1"},
		{"goroutine", "goroutine", "HTTP/1.1"}, {"goroutine-nethttp", "goroutine", "HTTP/2.0"}}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			args := []string{"-b", "127.0.0.1:0", "-w", "1", "-k", v.class, "--certfile", files.Cert, "--keyfile", files.Key}
			if v.name == "goroutine-nethttp" {
				args = append(args, "--http-engine", "net/http")
			}
			s := testserver.Start(t, bin, append(args, "echo")...)
			url := "https://" + s.Addr + "/"
			if !strings.Contains(s.Log(), "listening at: "+url[:len(url)-1]) {
				t.Errorf("the banner does not say %s:\n%s", url, s.Log())
			}
			resp, err := get(client(nil), url)
			if err != nil {
				t.Fatalf("https round trip: %v\n%s", err, s.Log())
			}
			if resp.StatusCode != 200 || resp.Proto != v.proto || resp.TLS == nil {
				t.Errorf("status %d proto %s tls %v, want 200 %s", resp.StatusCode, resp.Proto, resp.TLS != nil, v.proto)
			}

			m := testserver.Start(t, bin, append(args, "--ca-certs", files.CA, "echo")...)
			url = "https://" + m.Addr + "/"
			if resp, err := get(client([]tls.Certificate{clientCert}), url); err != nil || resp.StatusCode != 200 {
				t.Errorf("with a client certificate: %v", err)
			}
			if _, err := get(client(nil), url); err == nil {
				t.Errorf("served a client without a certificate although ca_certs is set")
			}
		})
	}
	t.Run("evloop", func(t *testing.T) {
		code, out := run(t, nil, "-b", "127.0.0.1:0", "-k", "evloop", "--certfile", files.Cert, "--keyfile", files.Key, "echo")
		if code != 2 || !strings.Contains(out, "TLS") {
			t.Errorf("evloop with TLS: exit %d, want 2:\n%s", code, out)
		}
	})
	t.Run("bad certificate", func(t *testing.T) {
		code, out := run(t, nil, "-b", "127.0.0.1:0", "--certfile", files.CA, "--keyfile", files.Key, "echo")
		if code != 2 || !strings.Contains(out, "certfile") {
			t.Errorf("mismatched key: exit %d, want 2:\n%s", code, out)
		}
	})
}
