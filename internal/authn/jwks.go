package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds a JWKS document; real ones are a few KiB.
const maxJWKSBytes = 1 << 20

// errKeyUnknown: the token names a key the issuer does not publish (after
// the refresh the bound allows, if any).
var errKeyUnknown = errors.New("signing key unknown")

// errNotDiscovered: the issuer's keys could never be fetched yet.
var errNotDiscovered = errors.New("identity provider not reachable yet")

func (k *issuerKeys) neverFetched() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fetchedAt.IsZero()
}

// issuerKeys discovers one issuer (OpenID Connect discovery, through
// go-oidc, which checks that the document names the issuer it was fetched
// for) and caches its signing keys. A token naming a key id the cache lacks
// may prompt a refetch, but at most one per refreshMin however many such
// tokens arrive, so a flood of made-up key ids costs the identity provider
// one request per refreshMin. Keys older than maxAge are refetched on use.
type issuerKeys struct {
	issuer     string
	http       *http.Client
	now        func() time.Time
	refreshMin time.Duration
	maxAge     time.Duration

	fetchMu sync.Mutex // one fetch at a time; waiters then read its result

	mu        sync.Mutex
	jwksURI   string
	tokenURI  string                       // the token endpoint, from discovery ("" if it names none)
	keys      map[string][]jose.JSONWebKey // by kid ("" for keys without one)
	fetchedAt time.Time                    // last successful fetch
	triedAt   time.Time                    // last attempt, successful or not
	fetches   int                          // attempts, for tests and metrics
}

func newIssuerKeys(issuer string, hc *http.Client, now func() time.Time, refreshMin, maxAge time.Duration) *issuerKeys {
	return &issuerKeys{issuer: issuer, http: hc, now: now, refreshMin: refreshMin, maxAge: maxAge}
}

// key returns the public keys published under kid, fetching the key set
// when it has never been fetched, is older than maxAge, or lacks kid and
// the last attempt is at least refreshMin old.
func (k *issuerKeys) key(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if ks, ok, due := k.cached(kid); ok && !due {
		return ks, nil
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	ks, ok, due := k.cached(kid) // a fetch may have finished while this one waited
	if ok && !due {
		return ks, nil
	}
	if !k.mayFetch() {
		if ok {
			return ks, nil
		}
		if k.neverFetched() {
			return nil, errNotDiscovered // the provider has been unreachable so far: unavailable, not a bad token
		}
		return nil, errKeyUnknown
	}
	if err := k.fetch(ctx); err != nil {
		if ok { // keep serving what was known when the provider is briefly away
			return ks, nil
		}
		if k.neverFetched() {
			return nil, fmt.Errorf("%w: %w", errNotDiscovered, err)
		}
		return nil, errKeyUnknown
	}
	if ks, ok, _ := k.cached(kid); ok {
		return ks, nil
	}
	return nil, errKeyUnknown
}

// cached returns kid's keys, whether there are any, and whether the set is
// due for a refresh because of its age.
func (k *issuerKeys) cached(kid string) ([]jose.JSONWebKey, bool, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ks, ok := k.keys[kid]
	due := k.fetchedAt.IsZero() || k.now().Sub(k.fetchedAt) >= k.maxAge
	return ks, ok, due
}

// mayFetch applies the bound: a first fetch is always allowed, every later
// one only refreshMin after the previous attempt. A known key that is
// merely old is refreshed under the same bound.
func (k *issuerKeys) mayFetch() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.triedAt.IsZero() || k.now().Sub(k.triedAt) >= k.refreshMin
}

// Fetches is how many times the key set (or discovery) was fetched.
func (k *issuerKeys) Fetches() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fetches
}

func (k *issuerKeys) fetch(ctx context.Context) error {
	k.mu.Lock()
	k.triedAt = k.now()
	k.fetches++
	uri := k.jwksURI
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if uri == "" {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, k.http), k.issuer)
		if err != nil {
			return fmt.Errorf("oidc discovery of %s: %w", k.issuer, err)
		}
		var meta struct {
			JWKSURI       string `json:"jwks_uri"`
			TokenEndpoint string `json:"token_endpoint"`
		}
		if err := p.Claims(&meta); err != nil {
			return fmt.Errorf("oidc discovery of %s: %w", k.issuer, err)
		}
		if err := checkFetchURL(meta.JWKSURI); err != nil {
			return fmt.Errorf("oidc discovery of %s: jwks_uri: %w", k.issuer, err)
		}
		uri = meta.JWKSURI
		if meta.TokenEndpoint != "" && checkFetchURL(meta.TokenEndpoint) == nil {
			k.mu.Lock()
			k.tokenURI = meta.TokenEndpoint
			k.mu.Unlock()
		}
	}
	keys, err := k.fetchKeys(ctx, uri)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.jwksURI, k.keys, k.fetchedAt = uri, keys, k.now()
	k.mu.Unlock()
	return nil
}

func (k *issuerKeys) fetchKeys(ctx context.Context, uri string) (map[string][]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks of %s: %w", k.issuer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks of %s: status %d", k.issuer, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks of %s: %w", k.issuer, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch jwks of %s: document over %d bytes", k.issuer, maxJWKSBytes)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("fetch jwks of %s: %w", k.issuer, err)
	}
	keys := map[string][]jose.JSONWebKey{}
	for _, key := range set.Keys {
		// Only public signature keys: a symmetric ("oct") key in a JWKS
		// would let anyone who read the document sign tokens with it.
		if !key.Valid() || !key.IsPublic() || (key.Use != "" && key.Use != "sig") {
			continue
		}
		keys[key.KeyID] = append(keys[key.KeyID], key)
	}
	return keys, nil
}

// checkFetchURL accepts https URLs, and http ones only to a loopback host
// (a provider on the same machine, or a test).
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && loopbackName(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q: https required (http only to a loopback host)", raw)
}
