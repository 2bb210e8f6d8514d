package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/testutil/oidcop"
)

const resource = "http://127.0.0.1:8080/mcp"

// directory is an in-memory SubjectStore and Provisioner.
type directory struct {
	mu       sync.Mutex
	subjects map[string]authn.Subject
	names    map[string]bool
	mappings []authn.GroupRole
	lookups  atomic.Int64
}

func newDirectory() *directory {
	return &directory{subjects: map[string]authn.Subject{}, names: map[string]bool{}}
}

func (d *directory) LookupSubject(_ context.Context, iss, sub string) (authn.Subject, error) {
	d.lookups.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.subjects[iss+"#"+sub]
	if !ok {
		return s, fault.New(fault.NotFound, "no such subject")
	}
	return s, nil
}

func (d *directory) GroupRoles(context.Context) ([]authn.GroupRole, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.mappings), nil
}

func (d *directory) ProvisionSubject(_ context.Context, in authn.NewSubject) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.names[in.Name] {
		return fault.New(fault.Conflict, "user exists")
	}
	d.names[in.Name] = true
	d.subjects[in.Issuer+"#"+in.Subject] = authn.Subject{User: in.Name, Service: in.Service}
	return nil
}

func (d *directory) setDisabled(iss, sub string, disabled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.subjects[iss+"#"+sub]
	s.UserDisabled = disabled
	d.subjects[iss+"#"+sub] = s
}

type clock struct{ t atomic.Pointer[time.Time] }

func newClock() *clock {
	c := &clock{}
	now := time.Now()
	c.t.Store(&now)
	return c
}
func (c *clock) Now() time.Time { return *c.t.Load() }
func (c *clock) Add(d time.Duration) {
	t := c.Now().Add(d)
	c.t.Store(&t)
}

type fixture struct {
	op    *oidcop.Provider
	dir   *directory
	clock *clock
	ta    *authn.TokenAuthenticator
}

func newFixture(t *testing.T, mutate ...func(*authn.TokenConfig)) *fixture {
	t.Helper()
	op := oidcop.Start(t, oidcop.Config{
		Users: []oidcop.User{{ID: "u-alice", Username: "alice", Groups: []string{"finance"}}, {ID: "u-bob", Username: "bob", Groups: []string{"eng"}}},
		Clients: []oidcop.Client{{ID: "ci-bot", Secret: "s3cret-ci", Groups: []string{"automation"}},
			{ID: "cli", RedirectURIs: []string{"http://127.0.0.1/callback"}}},
	})
	f := &fixture{op: op, dir: newDirectory(), clock: newClock()}
	cfg := authn.TokenConfig{Issuers: []authn.Issuer{{URL: op.URL}}, Audience: resource, Now: f.clock.Now, Store: f.dir, Provisioner: f.dir}
	for _, m := range mutate {
		m(&cfg)
	}
	var err error
	if f.ta, err = authn.NewTokenAuthenticator(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) clientToken(t *testing.T, res string) string {
	t.Helper()
	tok, err := f.op.ClientCredentials(context.Background(), "ci-bot", "s3cret-ci", res)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// userToken runs authorization code + PKCE for username, as a native app.
func (f *fixture) userToken(t *testing.T, username, res string) string {
	t.Helper()
	ctx := context.Background()
	cfg := oauth2.Config{ClientID: "cli", Endpoint: oauth2.Endpoint{AuthURL: f.op.URL + "/authorize", TokenURL: f.op.URL + "/oauth/token",
		AuthStyle: oauth2.AuthStyleInParams}, RedirectURL: "http://127.0.0.1:9999/callback", Scopes: []string{"openid", "mcp"}}
	verifier := oauth2.GenerateVerifier()
	u, err := f.op.Browser(ctx, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", res)), username)
	if err != nil {
		t.Fatal(err)
	}
	if u.Query().Get("state") != "st4te" || u.Query().Get("code") == "" {
		t.Fatalf("redirect %s", u)
	}
	tok, err := cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", res))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// mint signs claims with the provider's own current key.
func (f *fixture) mint(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": f.op.URL, "sub": "u-alice", "aud": []string{resource}, "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "preferred_username": "alice", "groups": []string{"finance"}}
	if edit != nil {
		edit(c)
	}
	tok, err := f.op.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func reason(t *testing.T, err error) string {
	t.Helper()
	var fl *authn.Failure
	if !errors.As(err, &fl) {
		t.Fatalf("want an authentication failure, got %v", err)
	}
	if !fault.Is(err, fault.Unauthenticated) {
		t.Fatalf("failure %v is not Unauthenticated", err)
	}
	return fl.Reason
}

func TestTokenClientCredentialsServiceAccount(t *testing.T) {
	f := newFixture(t)
	p, err := f.ta.AuthenticateToken(context.Background(), f.clientToken(t, resource))
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "ci-bot" || !p.Service || p.Issuer != f.op.URL || p.Subject != "ci-bot" || p.KeyID != authn.TokenKeyID(f.op.URL, "ci-bot") {
		t.Fatalf("principal %+v", p)
	}
	iss, sub, ok := authn.ParseTokenKeyID(p.KeyID)
	if !ok || iss != f.op.URL || sub != "ci-bot" {
		t.Fatalf("key id %q does not name issuer and subject", p.KeyID)
	}
}

func TestTokenAuthorizationCodeUserAndGroups(t *testing.T) {
	f := newFixture(t)
	f.dir.mappings = []authn.GroupRole{{Group: "finance", Role: "payer", Grants: mustGrants(t, "invoke:finance.*")}}
	p, err := f.ta.AuthenticateToken(context.Background(), f.userToken(t, "alice", resource))
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "alice" || p.Service || !slices.Equal(p.Roles, []string{"payer"}) || !p.Allows(authz.Invoke, "finance.pay") || p.Allows(authz.Invoke, "eng.deploy") {
		t.Fatalf("principal %+v", p)
	}
	// Bob's group maps to nothing: he holds no grant.
	p, err = f.ta.AuthenticateToken(context.Background(), f.userToken(t, "bob", resource))
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "bob" || len(p.Roles) != 0 || p.Allows(authz.Discover, "finance.pay") {
		t.Fatalf("principal %+v", p)
	}
}

func mustGrants(t *testing.T, gs ...string) authz.Grants {
	t.Helper()
	g, err := authz.ParseGrants(gs)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestHostileTokens is the catalogue of tokens that must never authenticate,
// each with the reason recorded in audit (the client sees one 401).
func TestHostileTokens(t *testing.T) {
	f := newFixture(t)
	other := oidcop.Start(t, oidcop.Config{Clients: []oidcop.Client{{ID: "ci-bot", Secret: "s3cret-ci"}}})
	otherTok, err := other.ClientCredentials(context.Background(), "ci-bot", "s3cret-ci", resource)
	if err != nil {
		t.Fatal(err)
	}
	pubDER := publicDER(t, f)
	cases := []struct {
		name, token, want string
	}{
		{"wrong issuer: a real token of an untrusted provider", otherTok, authn.ReasonTokenIssuer},
		{"wrong issuer: our provider's key, another iss", f.mint(t, func(c map[string]any) { c["iss"] = "https://evil.example" }), authn.ReasonTokenIssuer},
		{"trusted iss, signed by another provider's key", resign(t, other, otherTok, f.op.URL), authn.ReasonTokenKeyUnknown},
		{"wrong audience: no resource asked for (aud = client id)", f.clientToken(t, ""), authn.ReasonTokenAudience},
		{"token for another resource (RFC 8707)", f.clientToken(t, "https://other.example/mcp"), authn.ReasonTokenAudience},
		{"audience a prefix of ours", f.mint(t, func(c map[string]any) { c["aud"] = "http://127.0.0.1:8080/" }), authn.ReasonTokenAudience},
		{"expired beyond the skew", f.mint(t, func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), authn.ReasonTokenExpired},
		{"no exp at all", f.mint(t, func(c map[string]any) { delete(c, "exp") }), authn.ReasonTokenExpired},
		{"not yet valid (nbf in 5 min)", f.mint(t, func(c map[string]any) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() }), authn.ReasonTokenNotYetValid},
		{"issued in the future (iat in 5 min)", f.mint(t, func(c map[string]any) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() }), authn.ReasonTokenIssuedLater},
		{"alg none", unsigned(t, f), authn.ReasonTokenAlgorithm},
		{"HS256 keyed with the provider's public key (DER)", hmacSigned(t, f, pubDER), authn.ReasonTokenAlgorithm},
		{"HS256 keyed with the provider's public key (PEM)", hmacSigned(t, f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})), authn.ReasonTokenAlgorithm},
		{"signature of another key under the provider's kid", foreignKeySameKid(t, f), authn.ReasonTokenSignature},
		{"payload altered after signing", tamper(t, f.mint(t, nil)), authn.ReasonTokenSignature},
		{"no subject", f.mint(t, func(c map[string]any) { delete(c, "sub") }), authn.ReasonTokenSubject},
		{"not a JWT", "a.b.c", authn.ReasonTokenMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.ta.AuthenticateToken(context.Background(), tc.token)
			if p != nil {
				t.Fatalf("authenticated as %+v", p)
			}
			if got := reason(t, err); got != tc.want {
				t.Fatalf("reason %s, want %s", got, tc.want)
			}
		})
	}
	// The same provider's key, inside the skew, is accepted: the cases
	// above fail for what they change, not for the key.
	if _, err := f.ta.AuthenticateToken(context.Background(), f.mint(t, func(c map[string]any) { c["exp"] = time.Now().Add(-20 * time.Second).Unix() })); err != nil {
		t.Fatalf("a token 20 s past exp, inside the 1 min skew: %v", err)
	}
}

func TestTokenRequiredScopes(t *testing.T) {
	f := newFixture(t, func(c *authn.TokenConfig) { c.Issuers[0].Scopes = []string{"mcp"} })
	_, err := f.ta.AuthenticateToken(context.Background(), f.mint(t, func(c map[string]any) { c["scope"] = "openid profile" }))
	if got := reason(t, err); got != authn.ReasonTokenScope {
		t.Fatalf("reason %s", got)
	}
	if _, err := f.ta.AuthenticateToken(context.Background(), f.mint(t, func(c map[string]any) { c["scope"] = "openid mcp" })); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ta.AuthenticateToken(context.Background(), f.userToken(t, "alice", resource)); err != nil {
		t.Fatalf("the provider's own token with scope mcp: %v", err)
	}
}

// TestUnknownKidFloodIsBounded: tokens naming key ids the provider never
// published, however many, cost at most one key-set fetch per refresh
// interval; after the interval a real rotation is picked up.
func TestUnknownKidFloodIsBounded(t *testing.T) {
	f := newFixture(t)
	if _, err := f.ta.AuthenticateToken(context.Background(), f.clientToken(t, resource)); err != nil {
		t.Fatal(err)
	}
	before := f.op.JWKSFetches()
	for i := range 200 {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tok, err := oidcop.MintWith(jose.SigningKey{Algorithm: jose.ES256, Key: key}, fmt.Sprintf("flood-%d", i), map[string]any{
			"iss": f.op.URL, "sub": "u-alice", "aud": resource, "exp": time.Now().Add(time.Minute).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ta.AuthenticateToken(context.Background(), tok); reason(t, err) != authn.ReasonTokenKeyUnknown {
			t.Fatalf("flood token %d: %v", i, err)
		}
	}
	if n := f.op.JWKSFetches() - before; n > 1 {
		t.Fatalf("200 unknown kids fetched the key set %d times; want at most 1", n)
	}
	// The provider rotates: its new key is unknown until the interval
	// has passed, then one fetch learns it.
	if err := f.op.Rotate(true); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	before = f.op.JWKSFetches()
	if _, err := f.ta.AuthenticateToken(context.Background(), f.clientToken(t, resource)); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := f.op.JWKSFetches() - before; n != 1 {
		t.Fatalf("learning the rotated key took %d fetches", n)
	}
}

// TestRotatedOutKeyRefused: once the provider drops a key and the key set
// is refetched, tokens signed with it stop authenticating.
func TestRotatedOutKeyRefused(t *testing.T) {
	f := newFixture(t)
	old := f.clientToken(t, resource)
	if _, err := f.ta.AuthenticateToken(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if err := f.op.Rotate(true); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	if _, err := f.ta.AuthenticateToken(context.Background(), f.clientToken(t, resource)); err != nil {
		t.Fatal(err)
	}
	_, err := f.ta.AuthenticateToken(context.Background(), old)
	if got := reason(t, err); got != authn.ReasonTokenKeyUnknown {
		t.Fatalf("token of a dropped key: %s", got)
	}
}

// TestDisabledAndUnmappedTakeEffectAtOnce: the token stays valid for
// minutes, but disabling its user or removing its group's mapping counts
// from the next request.
func TestDisabledAndUnmappedTakeEffectAtOnce(t *testing.T) {
	f := newFixture(t)
	f.dir.mappings = []authn.GroupRole{{Group: "finance", Role: "payer", Grants: mustGrants(t, "invoke:finance.*")}}
	tok := f.userToken(t, "alice", resource)
	p, err := f.ta.AuthenticateToken(context.Background(), tok)
	if err != nil || !p.Allows(authz.Invoke, "finance.pay") {
		t.Fatalf("%+v %v", p, err)
	}
	f.dir.mu.Lock()
	f.dir.mappings = nil
	f.dir.mu.Unlock()
	f.ta.Invalidate()
	if p, err = f.ta.AuthenticateToken(context.Background(), tok); err != nil || p.Allows(authz.Discover, "finance.pay") || len(p.Roles) != 0 {
		t.Fatalf("after unmap: %+v %v", p, err)
	}
	f.dir.setDisabled(f.op.URL, "u-alice", true)
	f.ta.Invalidate()
	_, err = f.ta.AuthenticateToken(context.Background(), tok)
	if got := reason(t, err); got != authn.ReasonDisabled {
		t.Fatalf("after disabling: %s", got)
	}
	if ok, err := f.ta.SubjectValid(context.Background(), f.op.URL, "u-alice"); ok || err != nil {
		t.Fatalf("SubjectValid of a disabled user: %v %v", ok, err)
	}
}

func TestProvisioningNeverTakesOverAName(t *testing.T) {
	f := newFixture(t)
	f.dir.names["alice"] = true // a local user, not linked to the subject
	_, err := f.ta.AuthenticateToken(context.Background(), f.userToken(t, "alice", resource))
	if got := reason(t, err); got != authn.ReasonSubjectConflict {
		t.Fatalf("reason %s", got)
	}
}

func TestExistingOnlyRefusesUnknownSubjects(t *testing.T) {
	f := newFixture(t, func(c *authn.TokenConfig) { c.Provisioning = authn.ProvisionExisting; c.Provisioner = nil })
	_, err := f.ta.AuthenticateToken(context.Background(), f.userToken(t, "alice", resource))
	if got := reason(t, err); got != authn.ReasonSubjectUnknown {
		t.Fatalf("reason %s", got)
	}
	f.dir.subjects[f.op.URL+"#u-alice"] = authn.Subject{User: "alice-local"}
	p, err := f.ta.AuthenticateToken(context.Background(), f.userToken(t, "alice", resource))
	if err != nil || p.User != "alice-local" {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestTokenConfigRefusesUnsafeSettings(t *testing.T) {
	d := newDirectory()
	for name, cfg := range map[string]authn.TokenConfig{
		"http issuer off loopback": {Issuers: []authn.Issuer{{URL: "http://idp.example.com"}}, Audience: resource},
		"skew over 5 min":          {Issuers: []authn.Issuer{{URL: "https://idp.example.com"}}, Audience: resource, Skew: time.Hour},
		"no audience":              {Issuers: []authn.Issuer{{URL: "https://idp.example.com"}}},
		"no issuer":                {Audience: resource},
	} {
		cfg.Now, cfg.Store, cfg.Provisioner = time.Now, d, d
		if _, err := authn.NewTokenAuthenticator(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func publicDER(t *testing.T, f *fixture) []byte {
	priv, _ := f.op.SigningKey()
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func segment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func claimsOf(f *fixture) map[string]any {
	return map[string]any{"iss": f.op.URL, "sub": "u-alice", "aud": resource, "exp": time.Now().Add(time.Minute).Unix(), "groups": []string{"finance"}}
}

func unsigned(t *testing.T, f *fixture) string {
	_, kid := f.op.SigningKey()
	return segment(map[string]any{"alg": "none", "kid": kid}) + "." + segment(claimsOf(f)) + "."
}

func hmacSigned(t *testing.T, f *fixture, secret []byte) string {
	_, kid := f.op.SigningKey()
	in := segment(map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + segment(claimsOf(f))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func foreignKeySameKid(t *testing.T, f *fixture) string {
	_, kid := f.op.SigningKey()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok, err := oidcop.MintWith(jose.SigningKey{Algorithm: jose.ES256, Key: key}, kid, claimsOf(f))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// resign takes another provider's token and re-signs its claims, with that
// provider's key, claiming to come from iss.
func resign(t *testing.T, other *oidcop.Provider, tok, iss string) string {
	parts := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(b, &c)
	c["iss"] = iss
	out, err := other.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(b, &c)
	c["groups"] = []string{"admins"}
	return parts[0] + "." + segment(c) + "." + parts[2]
}

// TestUnreachableProviderIsUnavailable: while the provider's keys could
// never be fetched, tokens are refused as 503 (try later), not as bad
// tokens, and the provider is not asked more than once a minute.
func TestUnreachableProviderIsUnavailable(t *testing.T) {
	d := newDirectory()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	ta, err := authn.NewTokenAuthenticator(authn.TokenConfig{Issuers: []authn.Issuer{{URL: iss}}, Audience: resource, Now: time.Now, Store: d, Provisioner: d})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok, err := oidcop.MintWith(jose.SigningKey{Algorithm: jose.ES256, Key: key}, "k1", map[string]any{"iss": iss, "sub": "x", "aud": resource, "exp": time.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := ta.AuthenticateToken(context.Background(), tok)
		var fl *authn.Failure
		if errors.As(err, &fl) || !fault.Is(err, fault.Unavailable) {
			t.Fatalf("attempt %d: %v, want unavailable", i, err)
		}
	}
	if n := ta.KeyFetches(iss); n != 1 {
		t.Fatalf("%d fetch attempts in under a minute", n)
	}
}
