package config

import (
	"net"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseWebhook: an accepted target is https, or http to a loopback
// address, with a host and no user information, in one of the two
// formats; a refusal never repeats the URL beyond its host name (a webhook
// URL's path is often its credential).
func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{"https://hooks.example/T0/B0/secret", "slack:https://hooks.slack.com/services/x", "http://127.0.0.1:9/h", "http://[::1]/h",
		"http://example.com/h", "https://user:pw@example.com/", "ftp://x/", "slack:", "https:///path", "http://localhost/h", "https://x/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		target, err := ParseWebhook(s)
		if err != nil {
			msg := err.Error()
			const bad, plain = "want https://host/path (or slack:https://…)", "plain http only to a loopback address; use https for "
			if msg != bad && !strings.HasPrefix(msg, plain) {
				t.Fatalf("ParseWebhook(%q): unexpected error %q", s, msg)
			}
			if host, ok := strings.CutPrefix(msg, plain); ok {
				if u, perr := url.Parse(target.URL); perr != nil || host != u.Hostname() {
					t.Fatalf("ParseWebhook(%q): the refusal names %q, not the host", s, host)
				}
			}
			return
		}
		want := s
		if rest, ok := strings.CutPrefix(s, "slack:"); ok {
			want = rest
			if !target.Slack {
				t.Fatalf("ParseWebhook(%q): not Slack", s)
			}
		} else if target.Slack {
			t.Fatalf("ParseWebhook(%q): Slack", s)
		}
		u, err := url.Parse(target.URL)
		switch {
		case target.URL != want || err != nil:
			t.Fatalf("ParseWebhook(%q): URL %q (%v)", s, target.URL, err)
		case u.Host == "" || u.User != nil:
			t.Fatalf("ParseWebhook(%q): host %q, user %v", s, u.Host, u.User)
		case u.Scheme == "https":
		case u.Scheme == "http":
			if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
				t.Fatalf("ParseWebhook(%q): plain http to %q", s, u.Hostname())
			}
		default:
			t.Fatalf("ParseWebhook(%q): scheme %q", s, u.Scheme)
		}
	})
}
