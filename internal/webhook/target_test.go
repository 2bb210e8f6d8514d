package webhook

import (
	"net"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseTarget: an accepted target is https, or http to a loopback
// address, with a host and no user information, in one of the two
// formats; a refusal never repeats the URL beyond its host name (a webhook
// URL's path is often its credential).
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"https://hooks.example/T0/B0/secret", "slack:https://hooks.slack.com/services/x", "http://127.0.0.1:9/h", "http://[::1]/h",
		"http://example.com/h", "https://user:pw@example.com/", "ftp://x/", "slack:", "https:///path", "http://localhost/h", "https://x/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		target, err := ParseTarget(s)
		if err != nil {
			msg := err.Error()
			const bad, plain = "want https://host/path (or slack:https://…)", "plain http only to a loopback address; use https for "
			if msg != bad && !strings.HasPrefix(msg, plain) {
				t.Fatalf("ParseTarget(%q): unexpected error %q", s, msg)
			}
			if host, ok := strings.CutPrefix(msg, plain); ok {
				if u, perr := url.Parse(target.URL); perr != nil || host != u.Hostname() {
					t.Fatalf("ParseTarget(%q): the refusal names %q, not the host", s, host)
				}
			}
			return
		}
		want := s
		if rest, ok := strings.CutPrefix(s, "slack:"); ok {
			want = rest
			if target.Format != FormatSlack {
				t.Fatalf("ParseTarget(%q): format %q", s, target.Format)
			}
		} else if target.Format != FormatJSON {
			t.Fatalf("ParseTarget(%q): format %q", s, target.Format)
		}
		u, err := url.Parse(target.URL)
		switch {
		case target.URL != want || err != nil:
			t.Fatalf("ParseTarget(%q): URL %q (%v)", s, target.URL, err)
		case u.Host == "" || u.User != nil:
			t.Fatalf("ParseTarget(%q): host %q, user %v", s, u.Host, u.User)
		case u.Scheme == "https":
		case u.Scheme == "http":
			if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
				t.Fatalf("ParseTarget(%q): plain http to %q", s, u.Hostname())
			}
		default:
			t.Fatalf("ParseTarget(%q): scheme %q", s, u.Scheme)
		}
	})
}
