package spec

import (
	"strings"
	"testing"
)

func TestValidToolName(t *testing.T) {
	for _, ok := range []string{"fin.pay", "a", "github/issues.read", "x_y-z.1"} {
		if !ValidToolName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "fin pay", "fin.pay\x00", "fіn.pay" /* Cyrillic і */, "fin.pay\n", strings.Repeat("a", MaxToolName+1), "ﬁn"} {
		if ValidToolName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzValidToolName(f *testing.F) {
	f.Add("fin.pay")
	f.Add("fіn.pay")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidToolName(s) {
			return
		}
		for _, r := range s {
			if r > 0x7e || r < 0x21 {
				t.Fatalf("accepted %q with %U", s, r)
			}
		}
	})
}

func TestUpstreamValidate(t *testing.T) {
	good := []Upstream{
		{Name: "fin", Prefix: "fin", Kind: HTTP, URL: "https://fin.example/mcp", Headers: map[string]string{"X-Tenant": "acme"}},
		{Name: "local", Kind: Stdio, Command: []string{"/usr/bin/server", "--stdio"}, Env: map[string]string{"TOKEN": "${secret:tok}", "MODE": "fast"}},
		{Name: "fin", Kind: HTTP, URL: "https://fin.example/mcp", Headers: map[string]string{"Authorization": "Bearer ${secret:fin-key}",
			"Cookie": "session=${secret:sess}", "X-Api-Key": "${secret:k}"}},
	}
	for _, u := range good {
		if err := u.Validate(); err != nil {
			t.Errorf("%+v: %v", u, err)
		}
	}
	bad := map[string]Upstream{
		"dotted name":         {Name: "fin.x", Kind: HTTP, URL: "http://x/mcp"},
		"no scheme":           {Name: "fin", Kind: HTTP, URL: "fin.example/mcp"},
		"credentials in URL":  {Name: "fin", Kind: HTTP, URL: "https://u:p@fin.example/mcp"},
		"file URL":            {Name: "fin", Kind: HTTP, URL: "file:///etc/passwd"},
		"reserved header":     {Name: "fin", Kind: HTTP, URL: "https://x/mcp", Headers: map[string]string{"ostiary-identity": "forged"}},
		"header injection":    {Name: "fin", Kind: HTTP, URL: "https://x/mcp", Headers: map[string]string{"X-A": "1\r\nX-B: 2"}},
		"stdio with URL":      {Name: "fin", Kind: Stdio, URL: "http://x", Command: []string{"x"}},
		"empty command":       {Name: "fin", Kind: Stdio},
		"bad env name":        {Name: "fin", Kind: Stdio, Command: []string{"x"}, Env: map[string]string{"A=B": "c"}},
		"no kind":             {Name: "fin"},
		"literal bearer":      {Name: "fin", Kind: HTTP, URL: "https://x/mcp", Headers: map[string]string{"Authorization": "Bearer abc"}},
		"bearer beside ref":   {Name: "fin", Kind: HTTP, URL: "https://x/mcp", Headers: map[string]string{"Authorization": "Bearer 12345${secret:k}"}},
		"literal api key":     {Name: "fin", Kind: HTTP, URL: "https://x/mcp", Headers: map[string]string{"x-api-key": "k-123"}},
		"token in any header": {Name: "fin", Kind: HTTP, URL: "https://x/mcp", Headers: map[string]string{"X-Forward": "Bearer abcdefghijklmnopqrstuvwxyz"}},
		"aws key in env":      {Name: "fin", Kind: Stdio, Command: []string{"x"}, Env: map[string]string{"AWS_KEY_ID": "AKIAABCDEFGHIJKLMNOP"}},
		"literal env token":   {Name: "fin", Kind: Stdio, Command: []string{"x"}, Env: map[string]string{"GITHUB_TOKEN": "ghp_x"}},
		"literal password":    {Name: "fin", Kind: Stdio, Command: []string{"x"}, Env: map[string]string{"DB_PASSWORD": "hunter2"}},
	}
	for name, u := range bad {
		if err := u.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
