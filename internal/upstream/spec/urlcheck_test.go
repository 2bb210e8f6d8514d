package spec

import (
	"strings"
	"testing"
)

func TestValidateURLHosts(t *testing.T) {
	for _, c := range []struct {
		url            string
		private, plain bool   // the upstream's --allow-private and --allow-plain-http
		want           string // "" accepted, else a part of the refusal
	}{
		{"https://mcp.example.com/mcp", false, false, ""},
		{"https://8.8.8.8/mcp", false, false, ""},
		{"https://[2606:4700::1111]/mcp", false, false, ""},
		{"http://127.0.0.1/mcp", false, false, "--allow-private"},
		{"http://127.0.0.1/mcp", true, false, ""},
		{"http://[::1]:8080/mcp", true, false, ""},
		{"http://localhost:8080/mcp", false, false, ""}, // a name: judged when dialled
		{"http://169.254.169.254/latest/meta-data", false, false, "--allow-private"},
		{"https://10.0.0.5/mcp", false, false, "--allow-private"},
		{"https://10.0.0.5/mcp", true, false, ""},
		{"https://198.18.0.1/mcp", false, false, "benchmarking"},
		{"https://[fec0::1]/mcp", false, false, "site-local"},
		{"https://[64:ff9b::a9fe:a9fe]/mcp", false, false, "NAT64"},
		{"https://[2002:a9fe:a9fe::1]/mcp", false, false, "inside 6to4"},
		{"https://[2001:0:808:808::80ff:fffe]/mcp", false, false, "inside Teredo"},
		{"https://[::ffff:10.0.0.1]/mcp", false, false, "--allow-private"},
		{"https://[::ffff:a00:1]/mcp", false, false, "--allow-private"},
		// Never, even when allowed.
		{"http://0.0.0.0:8080/mcp", true, true, "no upstream may reach"},
		{"https://240.0.0.1/mcp", true, false, "no upstream may reach"},
		{"https://255.255.255.255/mcp", true, false, "no upstream may reach"},
		{"https://192.0.2.10/mcp", true, false, "documentation"},
		{"https://[64:ff9b::0.0.0.0]/mcp", true, false, "no upstream may reach"},
		{"https://[::127.0.0.1]/mcp", true, false, "IPv4-compatible"},
		{"https://[ff02::1]/mcp", true, false, "multicast"},
		// inet_aton spellings, which netip refuses and some resolvers accept.
		{"http://0x7f000001/mcp", true, false, "dotted-decimal"},
		{"http://2130706433/mcp", true, false, "dotted-decimal"},
		{"http://0177.0.0.1/mcp", true, false, "dotted-decimal"},
		{"http://127.1/mcp", true, false, "dotted-decimal"},
		{"http://0x7f.0.0.1/mcp", true, false, "dotted-decimal"},
		{"https://0xA9FEA9FE/mcp", false, false, "dotted-decimal"},
		{"https://169.254.169.254./mcp", false, false, "dotted-decimal"},
		{"https://017700000001/mcp", false, false, "dotted-decimal"},
		{"https://example.0x/mcp", false, false, "dotted-decimal"},
		{"https://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1/mcp", true, false, "IDNA"}, // fullwidth １２７
		{"https://①②⑦.0.0.1/mcp", true, false, "IDNA"},
		{"https://v1.example.com/mcp", false, false, ""},
		{"https://xn--bcher-kva.example/mcp", false, false, ""},
		{"https://1password.example/mcp", false, false, ""},
		// Plain HTTP off loopback needs --allow-plain-http.
		{"http://mcp.example.com/mcp", false, false, "--allow-plain-http"},
		{"http://mcp.example.com/mcp", false, true, ""},
		{"http://10.0.0.5/mcp", true, false, "--allow-plain-http"},
		{"http://10.0.0.5/mcp", true, true, ""},
		{"http://localhost.example.com/mcp", false, false, "--allow-plain-http"},
		{"HTTP://LOCALHOST/mcp", false, false, ""},
	} {
		u := Upstream{Name: "x", Kind: HTTP, URL: c.url, AllowPrivate: c.private, AllowPlainHTTP: c.plain}
		err := u.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s (private %t, plain %t): %v, want %q", c.url, c.private, c.plain, err, c.want)
		}
	}
}

// A credential in the URL is refused, and the refusal repeats neither the
// URL nor the credential.
func TestValidateURLCredentials(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	ostKey := "ost_abcdefghijklmnop_" + strings.Repeat("a", 52)
	for _, raw := range []string{
		"https://admin:" + secret + "@mcp.example.com/mcp",
		"https://" + secret + "@mcp.example.com/mcp",
		"https://mcp.example.com/mcp?token=" + secret,
		"https://mcp.example.com/mcp?region=eu&API_KEY=" + secret,
		"https://mcp.example.com/mcp?api-key=" + secret,
		"https://mcp.example.com/mcp?access_token=" + secret,
		"https://mcp.example.com/mcp?key=" + secret,
		"https://mcp.example.com/mcp?Secret=" + secret,
		"https://mcp.example.com/mcp?password=" + secret,
		"https://mcp.example.com/mcp?auth=" + secret,
		"https://mcp.example.com/mcp?sig=" + secret,
		"https://mcp.example.com/mcp?X-Amz-Signature=" + secret,
		"https://mcp.example.com/mcp?client_secret=" + secret,
		"https://mcp.example.com/mcp?q=AKIAIOSFODNN7EXAMPLE&x=" + secret,
		"https://mcp.example.com/mcp?q=" + ostKey + "&x=" + secret,
		"https://mcp.example.com/mcp?q=Bearer%20abcdefghijklmnopqrstuvwxyz&x=" + secret,
		"https://mcp.example.com/mcp?%zz=" + secret,
		"https://mcp.example.com/mcp?" + secret,
		"https://mcp.example.com/mcp?v=1&" + secret + "=",
		"https://mcp.example.com/mcp?" + secret + "=1;" + secret,
		"https://admin:" + secret + "@[::1/mcp",
		"https://mcp.example.com/mcp#" + secret,
	} {
		err := (Upstream{Name: "x", Kind: HTTP, URL: raw}).Validate()
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "AKIA") || strings.Contains(err.Error(), "ost_") || strings.Contains(err.Error(), "abcdefghijklmnop") {
			t.Errorf("the refusal repeats the credential: %v", err)
		}
	}
	if err := (Upstream{Name: "x", Kind: HTTP, URL: "https://mcp.example.com/mcp?region=eu&author=me&v=2"}).Validate(); err != nil {
		t.Errorf("an ordinary query: %v", err)
	}
}

func TestDisplayURLHidesCredentials(t *testing.T) {
	for raw, want := range map[string]string{
		"https://api.example/mcp?api_key=s3cret&region=eu": "https://api.example/mcp?api_key=%E2%80%A6&region=%E2%80%A6",
		"https://user:s3cret@api.example/mcp":              "https://api.example/mcp",
		"https://s3cret@api.example/mcp#s3cret":            "https://api.example/mcp",
		"https://user:s3cret@[::1/mcp":                     "(invalid URL)",
		"https://api.example/mcp?s3cret%zz":                "https://api.example/mcp?…",
		"https://api.example/mcp?v=1&s3cret":               "https://api.example/mcp?…",
		"http://x/mcp":                                     "http://x/mcp",
	} {
		if got := (Upstream{URL: raw}).DisplayURL(); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("DisplayURL(%q) = %q, want %q", raw, got, want)
		}
	}
}
