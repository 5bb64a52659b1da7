// Package proxyheaders applies forwarded_allow_ips and
// secure_scheme_headers to every request, for every worker class (it is an
// http.Handler middleware installed with workers.Use).
//
// Semantics follow gunicorn's:
//
//   - A peer is trusted when its address (r.RemoteAddr) is in
//     forwarded_allow_ips ("*" trusts everyone). Unix-socket peers are
//     trusted, as in gunicorn: only local processes can connect there.
//   - From an untrusted peer, X-Forwarded-For, X-Forwarded-Proto,
//     X-Forwarded-Host, X-Forwarded-Port, Forwarded and every header named
//     in secure_scheme_headers are removed before the application sees the
//     request, so neither the app nor the access log can be fooled.
//   - From a trusted peer they pass through, and when a secure scheme
//     header carries its configured value (case-insensitively) the request
//     is https: r.URL.Scheme is set to "https" — the equivalent of
//     gunicorn's wsgi.url_scheme. Otherwise r.URL.Scheme is left as the
//     engine set it (empty for origin-form targets, which means http, as
//     in net/http). r.TLS stays nil: this connection was not TLS.
//     [Scheme] returns the effective scheme either way.
//   - Contradictory secure scheme headers from a trusted peer (one says
//     https, another present one says otherwise) get 400, as gunicorn's
//     InvalidSchemeHeaders.
//
// header_map (underscores in header names) is enforced by the h1 engine
// while parsing; for the net/http engine (http_engine), which has no such
// option, Wrap applies it here instead: drop (default) removes the
// fields before anything reads them, refuse answers 400, dangerous passes
// them. This runs before the X-Forwarded-* check, so X_Forwarded_For can
// never stand in for X-Forwarded-For.
//
// With proxy_protocol, r.RemoteAddr is already the client's address from
// the PROXY header, so forwarded_allow_ips then judges the client, not the
// proxy; list the client networks you trust, or rely on PROXY alone.
package proxyheaders

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/netallow"
)

// forwarded are the headers stripped from untrusted peers besides the
// secure scheme headers.
var forwarded = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded"}

type handler struct {
	next    http.Handler
	allow   *netallow.List
	strip   []string            // canonical names removed from untrusted peers
	isStrip map[string]struct{} // strip as a set
	secure  []secureHeader
}

// secureHeader is one secure_scheme_headers entry; a slice, not a map: it
// is read on every request and has a handful of entries.
type secureHeader struct{ name, https string }

// Wrap returns h behind the forwarded-header policy of cfg. It has the
// signature workers.Use expects.
func Wrap(h http.Handler, cfg *config.Config) (http.Handler, error) {
	allow, err := netallow.Parse(cfg.ForwardedAllowIPs)
	if err != nil {
		return nil, fmt.Errorf("proxyheaders: forwarded_allow_ips: %w", err)
	}
	p := &handler{next: h, allow: allow, isStrip: map[string]struct{}{}}
	p.strip = append(p.strip, forwarded...)
	for name, val := range cfg.SecureSchemeHeaders {
		c := http.CanonicalHeaderKey(name)
		p.secure = append(p.secure, secureHeader{c, val})
		p.strip = append(p.strip, c)
	}
	for _, name := range p.strip {
		p.isStrip[name] = struct{}{}
	}
	if cfg.HTTPEngine == "net/http" && cfg.HeaderMap != "dangerous" {
		return &headerMap{next: p, refuse: cfg.HeaderMap == "refuse"}, nil
	}
	return p, nil
}

// headerMap applies header_map for engines that do not (net/http).
type headerMap struct {
	next   http.Handler
	refuse bool
}

func (m *headerMap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for name := range r.Header {
		if !strings.Contains(name, "_") {
			continue
		}
		if m.refuse {
			w.Header().Set("Connection", "close")
			http.Error(w, "Invalid header name", http.StatusBadRequest)
			return
		}
		delete(r.Header, name)
	}
	m.next.ServeHTTP(w, r)
}

func (p *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.carriesProxyHeaders(r.Header) {
		// Nothing to strip or to read: the common direct request skips
		// parsing the peer's address.
		p.next.ServeHTTP(w, r)
		return
	}
	if allowed, isIP := p.allow.ContainsString(r.RemoteAddr); isIP && !allowed {
		for _, name := range p.strip {
			r.Header.Del(name)
		}
		p.next.ServeHTTP(w, r)
		return
	}
	secure, contradict := p.scheme(r.Header)
	if contradict {
		http.Error(w, "Contradictory scheme headers", http.StatusBadRequest)
		return
	}
	if secure {
		r.URL.Scheme = "https"
	}
	p.next.ServeHTTP(w, r)
}

// carriesProxyHeaders reports whether h has any header the policy strips
// or reads, looking up the smaller of the two sets in the other.
func (p *handler) carriesProxyHeaders(h http.Header) bool {
	if len(h) < len(p.strip) {
		for name := range h {
			if _, ok := p.isStrip[name]; ok {
				return true
			}
		}
		return false
	}
	for _, name := range p.strip {
		if _, ok := h[name]; ok {
			return true
		}
	}
	return false
}

// scheme reads the secure scheme headers present: whether they mark the
// request https, and whether they disagree with each other.
func (p *handler) scheme(h http.Header) (secure, contradict bool) {
	seen, yes := 0, 0
	for _, sh := range p.secure {
		v, ok := h[sh.name]
		if !ok || len(v) == 0 {
			continue
		}
		seen++
		if strings.EqualFold(strings.TrimSpace(v[0]), sh.https) {
			yes++
		}
	}
	return yes > 0, yes > 0 && yes != seen
}

// Scheme returns the request's effective scheme: "https" when the
// connection is TLS or a trusted proxy said so (r.URL.Scheme), else "http".
func Scheme(r *http.Request) string {
	if r.TLS != nil || r.URL.Scheme == "https" {
		return "https"
	}
	return "http"
}
