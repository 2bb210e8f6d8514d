package spec

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestDialPolicy(t *testing.T) {
	for _, c := range []struct {
		addr        string
		policy      DialPolicy
		refused     bool
		wantMessage string
	}{
		{"8.8.8.8", DialPolicy{}, false, ""},
		{"127.0.0.1", DialPolicy{}, true, "--allow-private"},
		{"127.0.0.1", DialPolicy{allowPrivate: true}, false, ""},
		{"::ffff:127.0.0.1", DialPolicy{allowPrivate: true, loopbackOnly: true}, false, ""},
		{"0.0.0.0", DialPolicy{allowPrivate: true}, true, "no upstream may reach"},
		{"240.0.0.1", DialPolicy{allowPrivate: true}, true, "no upstream may reach"},
		{"64:ff9b::7f00:1", DialPolicy{}, true, "--allow-private"},
		{"10.0.0.1", DialPolicy{allowPrivate: true, loopbackOnly: true}, true, "--allow-plain-http"},
		{"8.8.8.8", DialPolicy{loopbackOnly: true}, true, "--allow-plain-http"},
		{"64:ff9b::7f00:1", DialPolicy{allowPrivate: true, loopbackOnly: true}, true, "--allow-plain-http"},
	} {
		err := c.policy.check(netip.MustParseAddr(c.addr))
		if (err != nil) != c.refused || err != nil && !strings.Contains(err.Error(), c.wantMessage) {
			t.Errorf("%s under %+v: %v", c.addr, c.policy, err)
		}
	}
}

// The guard checks the address actually dialled, so a name that resolves
// to a private address is refused too, and allowing private addresses
// still never reaches 0.0.0.0 (which Linux answers from loopback) or an
// IPv4-compatible spelling of it.
func TestGuardedTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	get := func(p DialPolicy, url string) error {
		resp, err := (&http.Client{Transport: GuardedTransport(p)}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	var se *ssrfError
	for _, url := range []string{srv.URL, "http://localhost" + port} {
		if err := get(DialPolicy{}, url); !errors.As(err, &se) {
			t.Errorf("%s: %v, want a refusal", url, err)
		}
		if err := get(DialPolicy{allowPrivate: true, loopbackOnly: true}, url); err != nil {
			t.Errorf("%s allowed: %v", url, err)
		}
	}
	for _, url := range []string{"http://0.0.0.0" + port, "http://[::ffff:0.0.0.0]" + port, "http://[::]" + port} {
		if err := get(DialPolicy{allowPrivate: true}, url); !errors.As(err, &se) || !strings.Contains(err.Error(), "no upstream may reach") {
			t.Errorf("%s with --allow-private: %v, want a refusal", url, err)
		}
	}
}
