package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Browsers. A page may call /mcp only from an allowed origin (configured,
// or loopback). Its preflight is answered without credentials; its
// responses carry what a browser client needs to read them.

// corsAllowHeaders are the request headers a browser client may send.
var corsAllowHeaders = map[string]bool{
	"authorization": true, "content-type": true, "accept": true, "mcp-session-id": true, "mcp-protocol-version": true,
	"mcp-method": true, "mcp-name": true, "last-event-id": true, "traceparent": true, "x-request-id": true,
}

const corsExposeHeaders = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, X-Request-ID, Retry-After"

// cors sets the response headers for an allowed origin.
func cors(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
}

// preflight answers a CORS preflight from an allowed origin: 204 with the
// methods and the requested headers it allows (Mcp-Param-* included), or
// 403 naming a header it does not.
func preflight(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, field := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		h := strings.ToLower(strings.TrimSpace(field))
		if h == "" {
			continue
		}
		if !corsAllowHeaders[h] && !strings.HasPrefix(h, "mcp-param-") {
			http.Error(w, "header not allowed: "+clip(h), http.StatusForbidden)
			return
		}
		allowed = append(allowed, h)
	}
	switch r.Header.Get("Access-Control-Request-Method") {
	case http.MethodGet, http.MethodPost, http.MethodDelete:
	default:
		http.Error(w, "method not allowed", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	if len(allowed) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(allowed, ", "))
	}
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}

// unmapHost writes a Host that is an IPv4-mapped IPv6 literal
// ([::ffff:127.0.0.1]) in its IPv4 form, so that every check of the Host
// (ours and the SDK's DNS-rebinding check) judges the one address alike.
func unmapHost(r *http.Request) {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = strings.Trim(r.Host, "[]"), ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4In6() {
		return
	}
	r.Host = ip.Unmap().String()
	if port != "" {
		r.Host = net.JoinHostPort(r.Host, port)
	}
}
