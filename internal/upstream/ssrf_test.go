package upstream

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestPrivateRange(t *testing.T) {
	for addr, private := range map[string]bool{
		"169.254.169.254": true, // cloud metadata
		"fe80::1":         true,
		"127.0.0.1":       true,
		"::1":             true,
		"10.1.2.3":        true,
		"172.16.0.1":      true,
		"192.168.1.1":     true,
		"fd00::1":         true,
		"0.0.0.0":         true,
		"100.64.0.1":      true,
		"::ffff:10.0.0.1": true, // IPv4-mapped
		"224.0.0.1":       true,
		"93.184.216.34":   false,
		"2606:4700::1111": false,
	} {
		if _, got := privateRange(netip.MustParseAddr(addr)); got != private {
			t.Errorf("%s: private = %v", addr, got)
		}
	}
}

func TestValidateRefusesPrivateURLs(t *testing.T) {
	for _, raw := range []string{"http://169.254.169.254/latest/meta-data", "http://10.0.0.5/mcp", "http://[::1]:8080/mcp", "http://127.0.0.1/mcp"} {
		u := Upstream{Name: "x", Kind: HTTP, URL: raw}
		if err := u.Validate(); err == nil || !strings.Contains(err.Error(), "--allow-private") {
			t.Errorf("%s: %v", raw, err)
		}
		u.AllowPrivate = true
		if err := u.Validate(); err != nil {
			t.Errorf("%s with --allow-private: %v", raw, err)
		}
	}
	if err := (Upstream{Name: "x", Kind: HTTP, URL: "https://mcp.example.com/mcp"}).Validate(); err != nil {
		t.Error(err)
	}
}

// The guard checks the address actually dialled, so a name that resolves
// to a private address is refused too.
func TestGuardedTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, url := range []string{srv.URL, "http://localhost" + port} {
		_, err := (&http.Client{Transport: guardedTransport(false)}).Get(url)
		var se *ssrfError
		if !errors.As(err, &se) {
			t.Errorf("%s: %v, want a refusal", url, err)
		}
		resp, err := (&http.Client{Transport: guardedTransport(true)}).Get(url)
		if err != nil {
			t.Errorf("%s allowed: %v", url, err)
		} else {
			resp.Body.Close()
		}
	}
}
