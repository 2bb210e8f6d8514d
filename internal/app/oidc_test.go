package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/testutil/oidcop"
)

// idpFixture: a real OpenID provider with alice (group finance), bob
// (group eng), the service client ci-bot (group automation) and the public
// MCP client "mcp-client"; Ostiary trusts it, with its /mcp as audience.
type idpFixture struct {
	s        *apptest.Server
	op       *oidcop.Provider
	audience string
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startWithIdP(t *testing.T, tune func(*config.Config)) *idpFixture {
	t.Helper()
	op := oidcop.Start(t, oidcop.Config{
		Users: []oidcop.User{{ID: "u-alice", Username: "alice", Groups: []string{"finance"}}, {ID: "u-bob", Username: "bob", Groups: []string{"eng"}}},
		Clients: []oidcop.Client{{ID: "ci-bot", Secret: "s3cret-ci", Groups: []string{"automation"}},
			{ID: "ostiary-gw", Secret: exchangeClientSecret, Exchange: []string{"fin-api"}},
			{ID: "mcp-client", RedirectURIs: []string{"http://127.0.0.1/callback"}}},
	})
	addr := freePort(t)
	f := &idpFixture{op: op, audience: "http://" + addr + "/mcp"}
	f.s = apptest.StartWith(t, func(c *config.Config) {
		c.Listen = addr
		c.OIDC = config.OIDC{Issuers: []string{op.URL}, Audience: f.audience, Scopes: []string{"mcp"}}
		if tune != nil {
			tune(c)
		}
	})
	return f
}

// mapGroups registers the upstream "fin" and maps finance → payer (lookup,
// pay), eng and automation → reader (lookup).
func (f *idpFixture) mapGroups(t *testing.T) *apptest.Upstream {
	t.Helper()
	s := f.s
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "payer", "grants": []string{"invoke:fin.lookup", "invoke:fin.pay"}}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "reader", "grants": []string{"invoke:fin.lookup"}}), http.StatusCreated)
	for _, m := range [][2]string{{"finance", "payer"}, {"eng", "reader"}, {"automation", "reader"}} {
		mustStatus(t, s.Do("POST", "/api/v1/idp/mappings", s.AdminKey, adminapi.GroupMappingRequest{Group: m[0], Role: m[1]}), http.StatusCreated)
	}
	return up
}

// oauthClient connects the official SDK client the way an MCP host does:
// no credential at first; on the 401 it reads Ostiary's protected resource
// metadata, finds the provider, runs authorization code + PKCE with the
// resource parameter (the "browser" signs username in), and retries.
func (f *idpFixture) oauthClient(t *testing.T, username string) *mcp.ClientSession {
	t.Helper()
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient: &oauthex.ClientCredentials{ClientID: "mcp-client"},
		RedirectURL:         "http://127.0.0.1:47001/callback",
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			u, err := f.op.Browser(ctx, args.URL, username)
			if err != nil {
				return nil, err
			}
			q := u.Query()
			if q.Get("code") == "" {
				return nil, fmt.Errorf("no code in %s", u)
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
		AcceptUnadvertisedIss: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	transport := &mcp.StreamableClientTransport{Endpoint: f.s.URL + "/mcp", OAuthHandler: h, MaxRetries: -1}
	client := mcp.NewClient(&mcp.Implementation{Name: "oauth-client", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connect as %s: %v", username, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func decodeJSON(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func TestOIDCResourceMetadataNamesTheProvider(t *testing.T) {
	t.Parallel()
	f := startWithIdP(t, nil)
	r := f.s.Do("POST", "/mcp", "", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
	mustStatus(t, r, http.StatusUnauthorized)
	req, _ := http.NewRequest("GET", f.s.URL+"/.well-known/oauth-protected-resource/mcp", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta oauthex.ProtectedResourceMetadata
	if err := decodeJSON(resp, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Resource != f.audience || !slices.Equal(meta.AuthorizationServers, []string{f.op.URL}) || !slices.Equal(meta.ScopesSupported, []string{"mcp"}) {
		t.Fatalf("metadata %+v", meta)
	}
}

// TestOIDCEndToEnd: two people sign in through a real MCP client's OAuth
// flow; each sees and calls the tools of their group's role, as themself.
func TestOIDCEndToEnd(t *testing.T) {
	t.Parallel()
	f := startWithIdP(t, nil)
	up := f.mapGroups(t)
	alice := f.oauthClient(t, "alice")
	if got := toolNames(t, alice); !slices.Contains(got, "fin.pay") || !slices.Contains(got, "fin.lookup") || slices.Contains(got, "fin.delete_all") {
		t.Fatalf("alice sees %v", got)
	}
	bob := f.oauthClient(t, "bob")
	if got := toolNames(t, bob); slices.Contains(got, "fin.pay") || !slices.Contains(got, "fin.lookup") {
		t.Fatalf("bob sees %v", got)
	}
	res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 12, "to": "acme"}})
	if err != nil || res.IsError {
		t.Fatalf("alice's call: %v %+v", err, res)
	}
	res, err = bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 12, "to": "acme"}})
	if err == nil && !res.IsError {
		t.Fatal("bob called fin.pay")
	}
	calls := up.Calls()
	if len(calls) != 1 || calls[0].Tool != "pay" || calls[0].Identity.Subject != "alice" {
		t.Fatalf("upstream calls %+v", calls)
	}
	for _, a := range up.Authorizations() {
		if strings.Count(a, ".") == 2 && !strings.Contains(a, calls[0].Identity.Audience) {
			t.Fatalf("upstream received a bearer that is not Ostiary's assertion: %.40s…", a)
		}
	}
	// Every record of alice's requests names her issuer and subject.
	recs := records(t, f.s, audit.Query{Actor: "alice"})
	if len(recs) == 0 {
		t.Fatal("no records of alice")
	}
	for _, rec := range recs {
		if rec.KeyID != authn.TokenKeyID(f.op.URL, "u-alice") {
			t.Fatalf("record %s names %q", rec.Event, rec.KeyID)
		}
	}
	// Her user was created on first sign-in, on record with the subject.
	prov := records(t, f.s, audit.Query{Event: identity.EventIdPProvision})
	if len(prov) != 2 || prov[len(prov)-1].Detail["subject"] != "u-alice" || prov[len(prov)-1].Detail["issuer"] != f.op.URL {
		t.Fatalf("provision records %+v", prov)
	}
}

// TestOIDCChangesTakeEffectOnTheNextRequest: the service account's token
// is valid for minutes; unmapping its group, disabling it and a kill switch
// on it count from the very next request.
func TestOIDCChangesTakeEffectOnTheNextRequest(t *testing.T) {
	t.Parallel()
	f := startWithIdP(t, nil)
	f.mapGroups(t)
	s := f.s
	tok, err := f.op.ClientCredentials(context.Background(), "ci-bot", "s3cret-ci", f.audience, "mcp")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.Client(t, tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, cs); !slices.Contains(got, "fin.lookup") {
		t.Fatalf("ci-bot sees %v", got)
	}
	var who adminapi.Whoami
	r := s.Do("GET", "/api/v1/whoami", tok, nil)
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &who)
	if who.User != "ci-bot" || !who.Service || who.Issuer != f.op.URL || who.Subject != "ci-bot" {
		t.Fatalf("whoami %+v", who)
	}
	mustStatus(t, s.Do("POST", "/api/v1/idp/mappings/remove", s.AdminKey, adminapi.GroupMappingRequest{Group: "automation", Role: "reader"}), http.StatusOK)
	if got := toolNames(t, cs); slices.Contains(got, "fin.lookup") {
		t.Fatalf("after unmap ci-bot still sees %v", got)
	}
	if rec := records(t, s, audit.Query{Event: identity.EventIdPUnmap}); len(rec) != 1 || rec[0].Actor != "admin" || rec[0].Detail["group"] != "automation" {
		t.Fatalf("unmap record %+v", rec)
	}
	mustStatus(t, s.Do("POST", "/api/v1/users/ci-bot/disable", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", tok, nil), http.StatusUnauthorized)
	if rec := lastRecord(t, s); rec.Event != audit.EventAuthnFailure || rec.Reason != authn.ReasonDisabled || rec.KeyID != authn.TokenKeyID(f.op.URL, "ci-bot") {
		t.Fatalf("refusal recorded as %+v", rec)
	}
	mustStatus(t, s.Do("POST", "/api/v1/users/ci-bot/enable", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", tok, nil), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/idp/mappings", s.AdminKey, adminapi.GroupMappingRequest{Group: "automation", Role: "reader"}), http.StatusCreated)
	if got := toolNames(t, cs); !slices.Contains(got, "fin.lookup") {
		t.Fatalf("after enabling and mapping again ci-bot sees %v", got)
	}
	mustStatus(t, s.Do("POST", "/api/v1/killswitches", s.AdminKey, map[string]any{"kind": "user", "target": "ci-bot", "reason": "incident 7"}), http.StatusCreated)
	if _, err := cs.ListTools(context.Background(), nil); err == nil {
		t.Fatal("a killed user's token still lists tools")
	}
	// API keys keep working beside tokens.
	mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
}

// TestOIDCHostileTokensAtTheDoor: refused tokens get the one 401 every
// failed authentication gets; the reason is in the audit record only.
func TestOIDCHostileTokensAtTheDoor(t *testing.T) {
	t.Parallel()
	f := startWithIdP(t, nil)
	now := time.Now()
	good := map[string]any{"iss": f.op.URL, "sub": "u-alice", "aud": f.audience, "exp": now.Add(time.Minute).Unix(), "preferred_username": "alice", "scope": "mcp"}
	mint := func(edit func(map[string]any)) string {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		edit(c)
		tok, err := f.op.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	other, err := f.op.ClientCredentials(context.Background(), "ci-bot", "s3cret-ci", "https://other.example/mcp", "mcp")
	if err != nil {
		t.Fatal(err)
	}
	// The control: the same claims unchanged sign alice in.
	mustStatus(t, f.s.Do("GET", "/api/v1/whoami", mint(func(map[string]any) {}), nil), http.StatusOK)
	var body string
	for _, tc := range []struct{ name, token, reason string }{
		{"expired", mint(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), authn.ReasonTokenExpired},
		{"another resource", other, authn.ReasonTokenAudience},
		{"wrong issuer", mint(func(c map[string]any) { c["iss"] = "https://evil.example" }), authn.ReasonTokenIssuer},
		{"not yet valid", mint(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), authn.ReasonTokenNotYetValid},
		{"alg none", unsignedToken(good), authn.ReasonTokenAlgorithm},
		// A new subject whose username claim names the bootstrap admin
		// must not become the admin.
		{"a taken name", mint(func(c map[string]any) { c["sub"], c["preferred_username"] = "u-mallory", "Admin@corp.example" }), authn.ReasonSubjectConflict},
	} {
		r := f.s.Do("POST", "/mcp", tc.token, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
		mustStatus(t, r, http.StatusUnauthorized)
		if body == "" {
			body = string(r.Body)
		} else if string(r.Body) != body {
			t.Errorf("%s: answer %s differs from %s", tc.name, r.Body, body)
		}
		if rec := lastRecord(t, f.s); rec.Event != audit.EventAuthnFailure || rec.Reason != tc.reason {
			t.Errorf("%s recorded as %s/%s", tc.name, rec.Event, rec.Reason)
		}
	}
	var links adminapi.SubjectLinkList
	f.s.Do("GET", "/api/v1/idp/links", f.s.AdminKey, nil).JSON(t, &links)
	for _, l := range links.Links {
		if l.User == "admin" || l.Subject == "u-mallory" {
			t.Fatalf("link %+v", l)
		}
	}
}

func unsignedToken(claims map[string]any) string {
	seg := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return seg(map[string]any{"alg": "none"}) + "." + seg(claims) + "."
}

// TestOIDCExistingUsersOnly: with --oidc-users existing, a subject signs
// in only once an admin linked it to a user.
func TestOIDCExistingUsersOnly(t *testing.T) {
	t.Parallel()
	f := startWithIdP(t, func(c *config.Config) { c.OIDC.Users = "existing" })
	s := f.s
	tok, err := f.op.ClientCredentials(context.Background(), "ci-bot", "s3cret-ci", f.audience, "mcp")
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, s.Do("GET", "/api/v1/whoami", tok, nil), http.StatusUnauthorized)
	if rec := lastRecord(t, s); rec.Reason != authn.ReasonSubjectUnknown {
		t.Fatalf("recorded %+v", rec)
	}
	setup(t, s, "", nil, "deployer", true)
	mustStatus(t, s.Do("POST", "/api/v1/idp/links", s.AdminKey, adminapi.SubjectLinkRequest{User: "deployer", Issuer: f.op.URL, Subject: "ci-bot"}), http.StatusCreated)
	var who adminapi.Whoami
	r := s.Do("GET", "/api/v1/whoami", tok, nil)
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &who)
	if who.User != "deployer" {
		t.Fatalf("whoami %+v", who)
	}
}

// TestOIDCMappingNeedsTheRolesGrants: an identity manager who does not
// hold admin cannot hand admin out to a group.
func TestOIDCMappingNeedsTheRolesGrants(t *testing.T) {
	t.Parallel()
	f := startWithIdP(t, nil)
	s := f.s
	setup(t, s, "idm", []string{"manage-identities:*"}, "carol", false)
	key, _ := newKey(t, s, map[string]any{"user": "carol"})
	r := s.Do("POST", "/api/v1/idp/mappings", key, adminapi.GroupMappingRequest{Group: "eng", Role: "admin"})
	mustStatus(t, r, http.StatusForbidden)
	var l adminapi.GroupMappingList
	s.Do("GET", "/api/v1/idp/mappings", s.AdminKey, nil).JSON(t, &l)
	if len(l.Mappings) != 0 {
		t.Fatalf("mappings %+v", l.Mappings)
	}
}
