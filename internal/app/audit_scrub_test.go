package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// Credentials that an admin's input carries into audit records are
// replaced by keyed search tokens: the records reveal nothing, and an
// investigator holding a suspected value finds the records that held it.
func TestAuditSearchTokens(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.StdioAllow = append(c.StdioAllow, "/bin/false") })
	const awsKey = "AKIAIOSFODNN7EXAMPLE"
	const bearer = "s3cr3t-b34r3r-t0k3n-value"
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "hook", "url": "http://127.0.0.1:1/" + awsKey + "/mcp", "allow_private": true}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "tool", "command": []string{"/bin/false", "--auth", "Bearer " + bearer}}), http.StatusCreated)

	all := records(t, s, audit.Query{})
	for _, r := range all {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), awsKey) || strings.Contains(string(b), bearer) {
			t.Fatalf("a credential reached the audit log: %s", b)
		}
	}
	find := func(value, wantTarget string) {
		t.Helper()
		r := s.Do("POST", "/api/v1/audit/search-token", s.AdminKey, map[string]any{"value": value})
		mustStatus(t, r, http.StatusOK)
		var tok struct {
			Token string `json:"token"`
		}
		r.JSON(t, &tok)
		if !strings.HasPrefix(tok.Token, "hmac:") || strings.Contains(string(r.Body), value) {
			t.Fatalf("token: %s", r.Body)
		}
		r = s.Do("GET", "/api/v1/audit?event=upstream-add&contains="+url.QueryEscape(tok.Token), s.AdminKey, nil)
		mustStatus(t, r, http.StatusOK)
		var page struct {
			Records []struct {
				Target string `json:"target"`
			} `json:"records"`
		}
		r.JSON(t, &page)
		if len(page.Records) != 1 || page.Records[0].Target != wantTarget {
			t.Errorf("records holding %s: %s", tok.Token, r.Body)
		}
	}
	find(awsKey, "upstream:hook")
	find(bearer, "upstream:tool")

	// A value that was never recorded finds nothing; the lookup needs
	// read-audit and is itself recorded, without the value.
	r := s.Do("POST", "/api/v1/audit/search-token", s.AdminKey, map[string]any{"value": "AKIAAAAAAAAAAAAAAAAA"})
	var tok struct {
		Token string `json:"token"`
	}
	r.JSON(t, &tok)
	if r := s.Do("GET", "/api/v1/audit?contains="+url.QueryEscape(tok.Token)+"&event=upstream-add", s.AdminKey, nil); strings.Contains(string(r.Body), "upstream:") {
		t.Errorf("an unrelated value matched: %s", r.Body)
	}
	setup(t, s, "ops", []string{"manage-tools:*"}, "olga", false)
	key, _ := newKey(t, s, map[string]any{"user": "olga"})
	mustStatus(t, s.Do("POST", "/api/v1/audit/search-token", key, map[string]any{"value": awsKey}), http.StatusForbidden)
	if n := len(records(t, s, audit.Query{Event: "audit-search-token"})); n != 4 {
		t.Errorf("audit-search-token records: %d, want 4", n)
	}
}
