package app_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil/oidcop"
	"github.com/ostiary/ostiary/internal/upstream"
)

// exchangeClientSecret is Ostiary's client secret at the test provider.
const exchangeClientSecret = "xchg-8f2c1d9e7b6a5f4e3d2c1b0a"

// An upstream declared with --token-exchange gets, on each user's calls, a
// token the identity provider issued to it for that user (RFC 8693), never
// the user's own token; its tools are listed under Ostiary's client's own
// token for that audience. A caller with an API key has no token to
// exchange: refused before the upstream. An exchanged token is reused
// until shortly before it expires, is on record only as the exchange (no
// token in any record), and a wrong client secret fails closed.
func TestTokenExchangeSendsTheUpstreamItsOwnToken(t *testing.T) {
	t.Parallel()
	f := startWithIdP(t, nil)
	s := f.s
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/idp-client", s.AdminKey, map[string]any{"value": exchangeClientSecret, "upstreams": []string{"fin"}}), http.StatusOK)
	xchg := map[string]any{"audience": "fin-api", "client_id": "ostiary-gw", "client_secret": "${secret:idp-client}"}
	// The configuration is checked: a literal secret, an Authorization
	// header beside it, a stdio upstream.
	for _, bad := range []map[string]any{
		{"name": "fin", "url": up.URL, "allow_private": true, "token_exchange": map[string]any{"audience": "fin-api", "client_id": "ostiary-gw", "client_secret": exchangeClientSecret}},
		{"name": "fin", "url": up.URL, "allow_private": true, "token_exchange": xchg, "headers": map[string]string{"Authorization": "Bearer ${secret:idp-client}"}},
		{"name": "fin", "url": up.URL, "allow_private": true, "token_exchange": map[string]any{"audience": "", "client_id": "ostiary-gw", "client_secret": "${secret:idp-client}"}},
		{"name": "fin", "url": up.URL, "allow_private": true, "token_exchange": map[string]any{"audience": "fin-api", "client_id": "ostiary-gw", "client_secret": "${secret:idp-client}", "issuer": "http://idp.example.com"}},
		{"name": "fin", "url": up.URL, "allow_private": true, "token_exchange": map[string]any{"audience": "fin-api", "client_id": "ostiary-gw", "client_secret": "${secret:idp-client}", "issuer": "https://u:p@idp.example.com"}},
	} {
		if r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, bad); r.Status != http.StatusBadRequest {
			t.Errorf("%v: %d %s", bad["token_exchange"], r.Status, r.Body)
		}
	}
	r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true, "token_exchange": xchg})
	mustStatus(t, r, http.StatusCreated)
	var added adminapi.AddedUpstream
	r.JSON(t, &added)
	if len(added.Sync.Created) == 0 || added.Upstream.TokenExchange == nil || added.Upstream.TokenExchange.Audience != "fin-api" {
		t.Fatalf("added: %s", r.Body)
	}
	if strings.Contains(string(r.Body), exchangeClientSecret) {
		t.Fatal("the client secret is in the answer")
	}
	pub := func() *rsa.PublicKey { k, _ := f.op.SigningKey(); return &k.PublicKey }()
	claimsOf := func(authz string) jwt.Claims {
		t.Helper()
		raw, ok := strings.CutPrefix(authz, "Bearer ")
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
		if !ok || err != nil {
			t.Fatalf("the upstream got %.40q", authz)
		}
		var c jwt.Claims
		if err := tok.Claims(pub, &c); err != nil {
			t.Fatalf("the upstream's token is not the provider's: %v", err)
		}
		return c
	}
	listed := up.Authorizations()
	if len(listed) == 0 {
		t.Fatal("the upstream was listed without a token")
	}
	if c := claimsOf(listed[0]); c.Subject != "ostiary-gw" || !c.Audience.Contains("fin-api") {
		t.Errorf("the listing's token: sub %q aud %v, want Ostiary's client for fin-api", c.Subject, c.Audience)
	}

	mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "payer", "grants": []string{"invoke:fin.*"}}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/idp/mappings", s.AdminKey, adminapi.GroupMappingRequest{Group: "finance", Role: "payer"}), http.StatusCreated)
	now := time.Now()
	own, err := f.op.Mint(map[string]any{"iss": f.op.URL, "sub": "u-alice", "aud": f.audience, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"preferred_username": "alice", "scope": "mcp", "groups": []string{"finance"}})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := s.Client(t, own, "")
	if err != nil {
		t.Fatal(err)
	}
	before := len(up.Authorizations())
	for range 2 {
		res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "7"}})
		if err != nil || res.IsError {
			t.Fatalf("alice's call: %+v %v", res, err)
		}
	}
	sent := up.Authorizations()[before:]
	if len(sent) == 0 {
		t.Fatal("alice's calls reached the upstream without a token")
	}
	for _, a := range sent {
		if strings.Contains(a, own) {
			t.Fatal("alice's own token reached the upstream")
		}
		if c := claimsOf(a); c.Subject != "u-alice" || !c.Audience.Contains("fin-api") || c.Audience.Contains(f.audience) {
			t.Errorf("alice's calls carried sub %q aud %v, want u-alice for fin-api only", c.Subject, c.Audience)
		}
	}
	if n := f.op.Exchanges(); n != 1 {
		t.Errorf("%d exchanges for two calls with one token, want 1 (cached)", n)
	}
	// A 2025-era client (a session to the upstream) gets the same.
	legacy, err := s.Client(t, own, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	mark := len(up.Authorizations())
	if res, err := legacy.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "9"}}); err != nil || res.IsError {
		t.Fatalf("alice's 2025-era call: %+v %v", res, err)
	}
	for _, a := range up.Authorizations()[mark:] {
		if c := claimsOf(a); c.Subject != "u-alice" || !c.Audience.Contains("fin-api") {
			t.Errorf("alice's 2025-era call carried sub %q aud %v", c.Subject, c.Audience)
		}
	}
	sent = up.Authorizations()[before:]
	recs := records(t, s, audit.Query{Event: upstream.EventTokenExchange})
	var callers []string
	for _, rec := range recs {
		if rec.Outcome == audit.Success {
			callers = append(callers, rec.Actor)
		}
	}
	if strings.Join(callers, ",") != "ostiary,alice" && strings.Join(callers, ",") != "alice,ostiary" {
		t.Errorf("token-exchange records by %v, want ostiary (listing) and alice", callers)
	}
	all, _ := json.Marshal(records(t, s, audit.Query{}))
	for _, a := range sent {
		if strings.Contains(string(all), strings.TrimPrefix(a, "Bearer ")) {
			t.Fatal("an exchanged token is in the audit log")
		}
	}
	if strings.Contains(string(all), own) || strings.Contains(string(all), exchangeClientSecret) {
		t.Fatal("alice's token or the client secret is in the audit log")
	}

	// An API key has no token to exchange: refused, the upstream not asked.
	setup(t, s, "keyed", []string{"invoke:fin.*"}, "carol", false)
	key, _ := newKey(t, s, map[string]any{"user": "carol"})
	carol, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	calls := len(up.Calls())
	res, err := carol.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "7"}})
	if err == nil && !res.IsError {
		t.Fatalf("an API key called a token-exchange upstream: %+v", res)
	}
	if len(up.Calls()) != calls {
		t.Error("the upstream was called for an API key")
	}

	// A wrong client secret: the provider refuses, the call fails closed.
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/idp-client", s.AdminKey, map[string]any{"value": "xchg-wrong-0000000000000000", "upstreams": []string{"fin"}}), http.StatusOK)
	calls = len(up.Calls())
	res, err = alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "8"}})
	if err == nil && !res.IsError {
		t.Fatalf("a call with a refused exchange succeeded: %+v", res)
	}
	if len(up.Calls()) != calls {
		t.Error("the upstream was called although the exchange was refused")
	}
	if len(records(t, s, audit.Query{Event: upstream.EventTokenExchange, Outcome: audit.Failed})) == 0 {
		t.Error("the refused exchange is not on record")
	}
}

// With several trusted providers, the exchange stays at the one where
// Ostiary's client is registered (--token-exchange-issuer): a user of
// another trusted provider is refused before anything is sent, so that
// provider never receives the client's secret. Before, the exchange went to
// the caller's own provider, secret and all; here the other provider even
// knows the client, and granted the exchange.
func TestTokenExchangeStaysWithItsProvider(t *testing.T) {
	t.Parallel()
	other := oidcop.Start(t, oidcop.Config{
		Users:   []oidcop.User{{ID: "u-mallory", Username: "mallory", Groups: []string{"finance"}}},
		Clients: []oidcop.Client{{ID: "ostiary-gw", Secret: exchangeClientSecret, Exchange: []string{"fin-api"}}},
	})
	f := startWithIdP(t, func(c *config.Config) { c.OIDC.Issuers = append(c.OIDC.Issuers, other.URL) })
	s := f.s
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/idp-client", s.AdminKey, map[string]any{"value": exchangeClientSecret, "upstreams": []string{"fin"}}), http.StatusOK)
	r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"token_exchange": map[string]any{"audience": "fin-api", "client_id": "ostiary-gw", "client_secret": "${secret:idp-client}", "issuer": f.op.URL}})
	mustStatus(t, r, http.StatusCreated)
	var added adminapi.AddedUpstream
	r.JSON(t, &added)
	if len(added.Sync.Created) == 0 {
		t.Fatalf("fin's tools were not listed through its provider: %s", r.Body)
	}
	mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "payer", "grants": []string{"invoke:fin.*"}}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/idp/mappings", s.AdminKey, adminapi.GroupMappingRequest{Group: "finance", Role: "payer"}), http.StatusCreated)
	now := time.Now()
	call := func(op *oidcop.Provider, sub, name string) error {
		tok, err := op.Mint(map[string]any{"iss": op.URL, "sub": sub, "aud": f.audience, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"preferred_username": name, "scope": "mcp", "groups": []string{"finance"}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Client(t, tok, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "7"}})
		if err == nil && res.IsError {
			err = fmt.Errorf("%v", res.Content)
		}
		return err
	}
	calls := len(up.Calls())
	if err := call(other, "u-mallory", "mallory"); err == nil {
		t.Fatal("a user of the other provider called fin")
	}
	if other.Exchanges() != 0 || len(up.Calls()) != calls {
		t.Fatalf("the other provider granted %d exchanges, the upstream got %d calls", other.Exchanges(), len(up.Calls())-calls)
	}
	if err := call(f.op, "u-alice", "alice"); err != nil {
		t.Fatalf("alice, of fin's provider: %v", err)
	}
}
