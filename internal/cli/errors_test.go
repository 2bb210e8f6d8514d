package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
)

// A call to a stopped upstream says the connection was refused, and once
// the upstream's circuit opens, calls say until when; neither names the
// upstream's address.
func TestUpstreamFailureText(t *testing.T) {
	s := apptest.Start(t)
	env := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	up := apptest.NewUpstream(t, s, "fin", false)
	front := httptest.NewServer(reverseProxy(t, up.URL))
	run(env, "upstreams", "add", "fin", "--url", front.URL+"/mcp", "--allow-private").mustOK(t)
	run(env, "roles", "create", "clerk", "--grant", "invoke:fin.*").mustOK(t)
	as := map[string]map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		run(env, "users", "create", u, "--role", "clerk").mustOK(t)
		var k adminapi.CreatedKey
		if err := json.Unmarshal([]byte(run(env, "keys", "create", "--user", u, "--json").mustOK(t).stdout), &k); err != nil {
			t.Fatal(err)
		}
		as[u] = map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": k.APIKey}
	}
	run(as["alice"], "mcp", "call", "fin.lookup", `{"id":"C-1"}`).mustOK(t)

	front.Close() // the upstream stops: its port refuses connections
	addr := strings.TrimPrefix(front.URL, "http://")
	r := run(as["alice"], "mcp", "call", "fin.lookup", `{"id":"C-1"}`)
	if r.code != ExitError || !strings.Contains(r.stdout, "upstream fin did not answer the call: connection refused") || strings.Contains(r.stdout+r.stderr, addr) {
		t.Fatalf("a stopped upstream: %+v", r)
	}
	// Failures of two users open the circuit; a bounded number of calls.
	open := regexp.MustCompile(`upstream fin is failing: its circuit is open until (\S+), calls are refused until then`)
	var m []string
	for i := 0; i < 20 && m == nil; i++ {
		r = run(as[[]string{"bob", "alice"}[i%2]], "mcp", "call", "fin.lookup", `{"id":"C-1"}`)
		if r.code != ExitError || strings.Contains(r.stdout+r.stderr, addr) {
			t.Fatalf("call %d: %+v", i, r)
		}
		m = open.FindStringSubmatch(r.stdout)
	}
	if m == nil {
		t.Fatalf("the circuit never opened: %+v", r)
	}
	until, err := time.Parse(time.RFC3339, m[1])
	if err != nil || !until.After(s.Clock.Now()) || until.After(s.Clock.Now().Add(time.Minute)) {
		t.Errorf("circuit open until %q (now %s): %v", m[1], s.Clock.Now(), err)
	}
}

// reverseProxy forwards to the server of target (a URL).
func reverseProxy(t *testing.T, target string) http.Handler {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
}
