package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/lru"
)

// Reason codes of refused identity-provider tokens (recorded, never shown).
const (
	ReasonTokenMalformed   = "token-malformed"
	ReasonTokenAlgorithm   = "token-algorithm-refused"
	ReasonTokenIssuer      = "token-issuer-unknown"
	ReasonTokenKeyUnknown  = "token-key-unknown"
	ReasonTokenSignature   = "token-signature-invalid"
	ReasonTokenAudience    = "token-audience-mismatch"
	ReasonTokenExpired     = "token-expired"
	ReasonTokenNotYetValid = "token-not-yet-valid"
	ReasonTokenIssuedLater = "token-issued-in-future"
	ReasonTokenSubject     = "token-subject-invalid"
	ReasonTokenScope       = "token-scope-insufficient"
	ReasonSubjectUnknown   = "idp-user-unknown"
	ReasonSubjectConflict  = "idp-user-conflict"
)

// SignatureAlgorithms is the allow-list of token signature algorithms:
// asymmetric only. "none" and every HMAC algorithm are refused before any
// key is looked at, so a token "signed" with an issuer's public key as an
// HMAC secret never reaches a verifier.
var SignatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// Issuer is one trusted identity provider.
type Issuer struct {
	URL           string   // exactly the iss its tokens carry
	Scopes        []string // scopes every token must carry; none: no requirement
	GroupsClaim   string   // default "groups"
	UsernameClaim string   // names just-in-time users; default "preferred_username"
	keys          *issuerKeys
}

// Provisioning says what happens to a subject the directory has not seen.
type Provisioning string

const (
	ProvisionJIT      Provisioning = "jit"      // create a user named by the username claim, linked to the subject
	ProvisionExisting Provisioning = "existing" // refuse: an admin links subjects to users beforehand
)

// Subject is an identity-provider subject resolved to an Ostiary user.
type Subject struct {
	User         string
	Service      bool
	Owner        string
	UserDisabled bool
	Roles        []string
	RoleGrants   authz.Grants
}

// GroupRole maps an identity-provider group to an Ostiary role.
type GroupRole struct {
	Group  string
	Role   string
	Grants authz.Grants // the role's grants
}

// SubjectStore is what the TokenAuthenticator reads.
type SubjectStore interface {
	// LookupSubject resolves (issuer, subject) to its linked user, or an
	// error of kind fault.NotFound.
	LookupSubject(ctx context.Context, issuer, subject string) (Subject, error)
	// GroupRoles lists every group-to-role mapping.
	GroupRoles(ctx context.Context) ([]GroupRole, error)
}

// NewSubject asks for a user to be created for an unseen subject.
type NewSubject struct {
	Issuer, Subject, Name string
	Service               bool // the token was issued to a client for itself (client credentials)
}

// Provisioner creates and links a user for a new subject, audited. It
// answers fault.Conflict if the name is taken.
type Provisioner interface {
	ProvisionSubject(ctx context.Context, in NewSubject) error
}

// TokenConfig configures a TokenAuthenticator.
type TokenConfig struct {
	Issuers      []Issuer
	Audience     string        // Ostiary's resource identifier (RFC 8707): every token's aud must hold it
	Skew         time.Duration // tolerated clock difference on exp, nbf and iat; default 1m, at most 5m
	RefreshMin   time.Duration // least time between two key-set fetches of one issuer; default 1m
	KeysMaxAge   time.Duration // keys are refetched once this old; default 1h
	Provisioning Provisioning  // default ProvisionJIT
	HTTP         *http.Client  // for discovery and JWKS; default a 10 s-timeout client
	Now          func() time.Time
	Store        SubjectStore
	Provisioner  Provisioner // required with ProvisionJIT
}

// TokenAuthenticator verifies JWT access tokens of trusted identity
// providers and resolves their subjects to Ostiary users. Users and group
// mappings are cached by generation, like API keys: Invalidate after any
// identity change, so that disabling a user or removing a mapping takes
// effect on the next request whatever the token's lifetime.
type TokenAuthenticator struct {
	cfg     TokenConfig
	issuers map[string]*Issuer

	gen      atomic.Uint64
	mu       sync.Mutex
	subjects *lru.Map[string, cachedSubject]
	mappings *cachedMappings
}

type cachedSubject struct {
	s   Subject
	gen uint64
}

type cachedMappings struct {
	byGroup map[string][]GroupRole
	gen     uint64
}

// MaxSkew bounds TokenConfig.Skew.
const MaxSkew = 5 * time.Minute

// NewTokenAuthenticator checks cfg and returns the authenticator. It does
// not contact the providers: discovery happens on the first token.
func NewTokenAuthenticator(cfg TokenConfig) (*TokenAuthenticator, error) {
	if cfg.Store == nil || cfg.Now == nil {
		return nil, errors.New("authn: token authenticator needs a store and a clock")
	}
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("authn: token authenticator needs an issuer")
	}
	if u, err := url.Parse(cfg.Audience); err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" {
		return nil, fmt.Errorf("authn: audience %q: want Ostiary's resource URI, e.g. https://ostiary.example.com/mcp", cfg.Audience)
	}
	if cfg.Skew == 0 {
		cfg.Skew = time.Minute
	}
	if cfg.Skew < 0 || cfg.Skew > MaxSkew {
		return nil, fmt.Errorf("authn: clock skew %s: at most %s", cfg.Skew, MaxSkew)
	}
	if cfg.RefreshMin <= 0 {
		cfg.RefreshMin = time.Minute
	}
	if cfg.KeysMaxAge <= 0 {
		cfg.KeysMaxAge = time.Hour
	}
	if cfg.Provisioning == "" {
		cfg.Provisioning = ProvisionJIT
	}
	if cfg.Provisioning != ProvisionJIT && cfg.Provisioning != ProvisionExisting {
		return nil, fmt.Errorf("authn: provisioning %q: want jit or existing", cfg.Provisioning)
	}
	if cfg.Provisioning == ProvisionJIT && cfg.Provisioner == nil {
		return nil, errors.New("authn: just-in-time provisioning needs a provisioner")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	t := &TokenAuthenticator{cfg: cfg, issuers: map[string]*Issuer{}, subjects: lru.New[string, cachedSubject](maxCached)}
	for _, is := range cfg.Issuers {
		if err := checkFetchURL(is.URL); err != nil {
			return nil, fmt.Errorf("authn: issuer: %w", err)
		}
		if _, dup := t.issuers[is.URL]; dup {
			return nil, fmt.Errorf("authn: issuer %s given twice", is.URL)
		}
		if is.GroupsClaim == "" {
			is.GroupsClaim = "groups"
		}
		if is.UsernameClaim == "" {
			is.UsernameClaim = "preferred_username"
		}
		is.keys = newIssuerKeys(is.URL, cfg.HTTP, cfg.Now, cfg.RefreshMin, cfg.KeysMaxAge)
		t.issuers[is.URL] = &is
	}
	return t, nil
}

// Issuers lists the trusted issuers' URLs, for the protected resource
// metadata.
func (t *TokenAuthenticator) Issuers() []string {
	var out []string
	for _, is := range t.cfg.Issuers {
		out = append(out, is.URL)
	}
	return out
}

// Audience is Ostiary's resource identifier.
func (t *TokenAuthenticator) Audience() string { return t.cfg.Audience }

// Scopes is the union of the scopes the issuers require.
func (t *TokenAuthenticator) Scopes() []string {
	var out []string
	for _, is := range t.cfg.Issuers {
		out = append(out, is.Scopes...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// KeyFetches is how many times the issuer's discovery or key set was
// fetched (the bound on unknown key ids is tested with it).
func (t *TokenAuthenticator) KeyFetches(issuer string) int {
	if is, ok := t.issuers[issuer]; ok {
		return is.keys.Fetches()
	}
	return 0
}

// TokenEndpoint returns the token endpoint of a trusted issuer, from its
// discovery document (discovering it if no token of it was seen yet).
// issuer "" names the only trusted issuer.
func (t *TokenAuthenticator) TokenEndpoint(ctx context.Context, issuer string) (string, error) {
	if issuer == "" {
		if len(t.cfg.Issuers) != 1 {
			return "", fault.New(fault.Invalid, "several identity providers are trusted: name the one to exchange tokens with")
		}
		issuer = t.cfg.Issuers[0].URL
	}
	is, ok := t.issuers[issuer]
	if !ok {
		return "", fault.New(fault.Invalid, "%s is not a trusted identity provider", issuer)
	}
	is.keys.mu.Lock()
	uri, known := is.keys.tokenURI, is.keys.jwksURI != ""
	is.keys.mu.Unlock()
	if !known {
		if err := is.keys.fetch(ctx); err != nil {
			return "", fault.Wrap(fault.Unavailable, "discover the token endpoint", err)
		}
		is.keys.mu.Lock()
		uri = is.keys.tokenURI
		is.keys.mu.Unlock()
	}
	if uri == "" {
		return "", fault.New(fault.Unavailable, "identity provider %s names no token endpoint (https, or http on loopback)", issuer)
	}
	return uri, nil
}

// Invalidate drops cached subjects and mappings.
func (t *TokenAuthenticator) Invalidate() {
	t.gen.Add(1)
	t.mu.Lock()
	t.subjects.Clear()
	t.mappings = nil
	t.mu.Unlock()
}

// LooksLikeJWT tells a compact JWS (three base64url parts) from an API key.
func LooksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2 && !strings.HasPrefix(token, keyPrefix)
}

// TokenKeyID is the key id of a principal authenticated by a token: it
// names the issuer and the subject, so every audit record of its requests
// does (an issuer URL holds no '#', RFC 3986 fragments being forbidden in
// OpenID issuers, so the first '#' splits it).
func TokenKeyID(issuer, subject string) string { return "oidc:" + issuer + "#" + subject }

// ParseTokenKeyID splits a TokenKeyID.
func ParseTokenKeyID(id string) (issuer, subject string, ok bool) {
	rest, ok := strings.CutPrefix(id, "oidc:")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "#")
}

// claims are the members of an access token Ostiary reads.
type claims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Azp      string `json:"azp"`
	Scope    any    `json:"scope"` // RFC 9068: space-separated string; some providers send an array
	Scp      any    `json:"scp"`
}

// AuthenticateToken verifies a JWT access token and returns its principal.
func (t *TokenAuthenticator) AuthenticateToken(ctx context.Context, raw string) (*Principal, error) {
	alg, kid, iss, err := peek(raw)
	if err != nil {
		return nil, &Failure{Reason: ReasonTokenMalformed}
	}
	if !slices.Contains(SignatureAlgorithms, jose.SignatureAlgorithm(alg)) {
		return nil, &Failure{Reason: ReasonTokenAlgorithm}
	}
	is, ok := t.issuers[iss]
	if !ok {
		return nil, &Failure{Reason: ReasonTokenIssuer}
	}
	tok, err := jwt.ParseSigned(raw, SignatureAlgorithms)
	if err != nil {
		return nil, &Failure{Reason: ReasonTokenMalformed}
	}
	keys, err := is.keys.key(ctx, kid)
	if errors.Is(err, errKeyUnknown) {
		return nil, &Failure{Reason: ReasonTokenKeyUnknown}
	}
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, "authenticate token", err)
	}
	var c claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if tok.Claims(k.Key, &c, &all) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, &Failure{Reason: ReasonTokenSignature}
	}
	if err := t.check(is, &c); err != nil {
		return nil, err
	}
	p, err := t.principal(ctx, is, &c, all)
	if err != nil {
		return nil, err
	}
	p.Token, p.TokenExpires = HeldToken(raw), c.Expiry.Time()
	return p, nil
}

// check validates the verified claims: issuer, audience, times, subject,
// scopes. A subject-bearing failure names the issuer and subject.
func (t *TokenAuthenticator) check(is *Issuer, c *claims) error {
	fail := func(reason string) error {
		f := &Failure{Reason: reason}
		if c.Subject != "" && len(c.Subject) <= maxSubject {
			f.KeyID = TokenKeyID(is.URL, c.Subject)
		}
		return f
	}
	now, skew := t.cfg.Now(), t.cfg.Skew
	switch {
	case c.Issuer != is.URL:
		return &Failure{Reason: ReasonTokenIssuer}
	case c.Subject == "" || len(c.Subject) > maxSubject || strings.ContainsFunc(c.Subject, isControl):
		return &Failure{Reason: ReasonTokenSubject}
	case !c.Audience.Contains(t.cfg.Audience):
		return fail(ReasonTokenAudience)
	case c.Expiry == nil || !now.Before(c.Expiry.Time().Add(skew)):
		return fail(ReasonTokenExpired)
	case c.NotBefore != nil && now.Add(skew).Before(c.NotBefore.Time()):
		return fail(ReasonTokenNotYetValid)
	case c.IssuedAt != nil && now.Add(skew).Before(c.IssuedAt.Time()):
		return fail(ReasonTokenIssuedLater)
	}
	have := append(stringsOf(c.Scope, true), stringsOf(c.Scp, true)...)
	for _, need := range is.Scopes {
		if !slices.Contains(have, need) {
			return fail(ReasonTokenScope)
		}
	}
	return nil
}

const maxSubject = 255

// userNameRE is identity's rule for user names.
var userNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// principal resolves the subject (provisioning it when allowed) and adds
// the roles its groups map to.
func (t *TokenAuthenticator) principal(ctx context.Context, is *Issuer, c *claims, all map[string]any) (*Principal, error) {
	keyID := TokenKeyID(is.URL, c.Subject)
	s, err := t.subject(ctx, is.URL, c.Subject)
	if fault.Is(err, fault.NotFound) {
		if t.cfg.Provisioning != ProvisionJIT {
			return nil, &Failure{Reason: ReasonSubjectUnknown, KeyID: keyID}
		}
		name := usernameOf(all, is.UsernameClaim, c.Subject)
		if name == "" {
			return nil, &Failure{Reason: ReasonSubjectUnknown, KeyID: keyID}
		}
		service := c.ClientID != "" && c.ClientID == c.Subject
		perr := t.cfg.Provisioner.ProvisionSubject(ctx, NewSubject{Issuer: is.URL, Subject: c.Subject, Name: name, Service: service})
		if fault.Is(perr, fault.Conflict) {
			// The name belongs to a user not linked to this subject: a
			// token never takes over an account by its name.
			return nil, &Failure{Reason: ReasonSubjectConflict, KeyID: keyID, User: name}
		}
		if perr != nil {
			return nil, fault.Wrap(fault.Unavailable, "provision user", perr)
		}
		s, err = t.subject(ctx, is.URL, c.Subject)
	}
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, "authenticate token", err)
	}
	if s.UserDisabled {
		return nil, &Failure{Reason: ReasonDisabled, KeyID: keyID, User: s.User}
	}
	byGroup, err := t.groupRoles(ctx)
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, "authenticate token", err)
	}
	roles := slices.Clone(s.Roles)
	grants := slices.Clone(s.RoleGrants)
	for _, g := range stringsOf(all[is.GroupsClaim], false) {
		for _, m := range byGroup[g] {
			if !slices.Contains(roles, m.Role) {
				roles = append(roles, m.Role)
				grants = append(grants, m.Grants...)
			}
		}
	}
	slices.Sort(roles)
	return &Principal{User: s.User, Service: s.Service, Owner: s.Owner, Roles: roles, KeyID: keyID, Environment: DefaultEnvironment,
		Issuer: is.URL, Subject: c.Subject, Perms: authz.Permissions{Roles: grants}}, nil
}

// SubjectValid reports whether (issuer, subject) still names an enabled
// user: the streams of a token principal end when it stops.
func (t *TokenAuthenticator) SubjectValid(ctx context.Context, issuer, subject string) (bool, error) {
	s, err := t.subject(ctx, issuer, subject)
	if fault.Is(err, fault.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !s.UserDisabled, nil
}

func (t *TokenAuthenticator) subject(ctx context.Context, issuer, subject string) (Subject, error) {
	gen := t.gen.Load()
	key := issuer + "\x00" + subject
	t.mu.Lock()
	c, ok := t.subjects.Get(key)
	t.mu.Unlock()
	if ok && c.gen == gen {
		return c.s, nil
	}
	s, err := t.cfg.Store.LookupSubject(ctx, issuer, subject)
	if err != nil {
		return s, err
	}
	t.mu.Lock()
	t.subjects.Put(key, cachedSubject{s: s, gen: gen})
	t.mu.Unlock()
	return s, nil
}

func (t *TokenAuthenticator) groupRoles(ctx context.Context) (map[string][]GroupRole, error) {
	gen := t.gen.Load()
	t.mu.Lock()
	m := t.mappings
	t.mu.Unlock()
	if m != nil && m.gen == gen {
		return m.byGroup, nil
	}
	list, err := t.cfg.Store.GroupRoles(ctx)
	if err != nil {
		return nil, err
	}
	byGroup := map[string][]GroupRole{}
	for _, gr := range list {
		byGroup[gr.Group] = append(byGroup[gr.Group], gr)
	}
	t.mu.Lock()
	t.mappings = &cachedMappings{byGroup: byGroup, gen: gen}
	t.mu.Unlock()
	return byGroup, nil
}

// peek reads the header's alg and kid and the payload's iss without
// verifying anything: they only choose which issuer's keys to try.
func peek(raw string) (alg, kid, iss string, err error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || len(raw) > 16<<10 {
		return "", "", "", errors.New("not a compact JWS")
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var p struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(parts[0], &h); err != nil {
		return "", "", "", err
	}
	if err := decodeSegment(parts[1], &p); err != nil {
		return "", "", "", err
	}
	return h.Alg, h.Kid, p.Iss, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// stringsOf reads a claim that is a string or an array of strings; split
// divides a string at spaces (scope).
func stringsOf(v any, split bool) []string {
	switch x := v.(type) {
	case string:
		if split {
			return strings.Fields(x)
		}
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// usernameOf names a just-in-time user: the username claim (its local
// part, for an e-mail address), lower-cased, else the subject, if either
// is a valid Ostiary user name.
func usernameOf(all map[string]any, claim, subject string) string {
	for _, cand := range []string{stringClaim(all, claim), subject} {
		cand = strings.ToLower(cand)
		if at := strings.IndexByte(cand, '@'); at > 0 {
			cand = cand[:at]
		}
		if userNameRE.MatchString(cand) {
			return cand
		}
	}
	return ""
}

func stringClaim(all map[string]any, name string) string {
	s, _ := all[name].(string)
	return s
}

func loopbackName(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}
