package authn_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/testutil/oidcop"
)

// FuzzAuthenticateToken: whatever the bytes, AuthenticateToken never
// panics, and it authenticates only the token the provider's key really
// signed (a fuzzer cannot forge RS256, so any other success is a bypass).
func FuzzAuthenticateToken(f *testing.F) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	var iss string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": iss + "/keys", "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token"})
		case "/keys":
			json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	iss = srv.URL
	d := newDirectory()
	ta, err := authn.NewTokenAuthenticator(authn.TokenConfig{Issuers: []authn.Issuer{{URL: iss}}, Audience: resource, Now: time.Now, Store: d, Provisioner: d})
	if err != nil {
		f.Fatal(err)
	}
	valid, err := oidcop.MintWith(jose.SigningKey{Algorithm: jose.RS256, Key: priv}, "k1", map[string]any{"iss": iss, "sub": "u-1",
		"aud": resource, "exp": time.Now().Add(time.Hour).Unix(), "preferred_username": "fuzz", "groups": []string{"g"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := ta.AuthenticateToken(context.Background(), tok)
		if err != nil {
			return
		}
		if p.User != "fuzz" || p.Subject != "u-1" {
			t.Fatalf("authenticated as %+v", p)
		}
		// The payload and signature must be the signed ones (base64url
		// has no second spelling go-jose accepts for them).
		vp, tp := strings.Split(valid, "."), strings.Split(tok, ".")
		if len(tp) != 3 || tp[1] != vp[1] || tp[2] != vp[2] {
			t.Fatalf("a token other than the signed one authenticated: %q", tok)
		}
	})
}
