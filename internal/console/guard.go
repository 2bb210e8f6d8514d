package console

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ContentSecurityPolicy allows nothing but same-origin scripts, styles, images and form
// targets; no inline script, no framing, no plugins.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// SecurityHeaders sets the console's response headers on every response.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// ErrCrossOrigin is returned for a state-changing request that did not come from a console
// page of the same origin.
var ErrCrossOrigin = errors.New("console: cross-origin request refused")

// SameOrigin checks a state-changing request: it must be POST; Sec-Fetch-Site, when the
// browser sends it, must be same-origin; Origin, when sent, must equal the request's own
// scheme and host; and one of the two must be present (every current browser sends at least
// one on a form POST, so a request with neither is not from a console page).
func SameOrigin(r *http.Request, tls bool) error {
	if r.Method != http.MethodPost {
		return errors.New("console: state changes need POST")
	}
	site := r.Header.Get("Sec-Fetch-Site")
	origin := r.Header.Get("Origin")
	if site != "" && site != "same-origin" {
		return ErrCrossOrigin
	}
	if origin != "" {
		u, err := url.Parse(origin)
		scheme := "http"
		if tls {
			scheme = "https"
		}
		if err != nil || u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) || u.Path != "" {
			return ErrCrossOrigin
		}
	}
	if site == "" && origin == "" {
		return ErrCrossOrigin
	}
	return nil
}

// RequireTLSOrLoopback reports whether the console may be served on a listener: over TLS
// anywhere, over plain http only on a loopback address (where browsers still honour Secure
// and __Host- cookies). The console is never served over plain http to other hosts.
func RequireTLSOrLoopback(listenAddr string, tls bool) error {
	if tls {
		return nil
	}
	host, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return errors.New("console: bad listen address")
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("console: plain http is allowed only on a loopback listener; serve with TLS")
	}
	return nil
}
