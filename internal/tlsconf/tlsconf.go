// Package tlsconf builds the server's crypto/tls configuration from the
// certfile, keyfile and ca_certs settings, once, for every class that
// terminates TLS (h1's blocking Conn and the net/http engine).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Load returns the TLS server configuration: the certificate chain of
// certfile with the key of keyfile and, when caCerts is set, client
// certificates required and verified against that bundle (gunicorn's
// ca_certs with cert_reqs=CERT_REQUIRED). protos is the ALPN list
// ("h2", "http/1.1"...). It returns nil, nil when certfile is empty.
func Load(certfile, keyfile, caCerts string, protos ...string) (*tls.Config, error) {
	if certfile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certfile, keyfile)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // it names the file already
			return nil, fmt.Errorf("tlsconf: certfile/keyfile: %w", err)
		}
		return nil, fmt.Errorf("tlsconf: certfile %s / keyfile %s: %w", certfile, keyfile, err)
	}
	c := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   protos,
	}
	if caCerts != "" {
		pem, err := os.ReadFile(caCerts)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: ca_certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tlsconf: ca_certs " + caCerts + ": no PEM certificate found")
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}
