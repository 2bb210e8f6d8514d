package assertion

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_800_000_000, 0)
	s, err := NewSigner(priv, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Sign(Claims{Subject: "alice", Audience: "finance", Roles: []string{"clerk"}, KeyID: "k", RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, pub, "finance", now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Expiry-c.IssuedAt != 60 || c.RequestID != "r1" || c.ID == "" {
		t.Errorf("claims %+v", c)
	}
	if _, err := Verify(tok, pub, "hr", now); err == nil {
		t.Error("accepted for another audience")
	}
	if _, err := Verify(tok, pub, "finance", now.Add(Lifetime)); err == nil {
		t.Error("accepted after expiry")
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(tok, other, "finance", now); err == nil {
		t.Error("accepted under another key")
	}
	parts := strings.Split(tok, ".")
	forged, _ := json.Marshal(Claims{Issuer: Issuer, Subject: "admin", Audience: "finance", Expiry: now.Unix() + 60})
	if _, err := Verify(parts[0]+"."+base64.RawURLEncoding.EncodeToString(forged)+"."+parts[2], pub, "finance", now); err == nil {
		t.Error("accepted a swapped payload")
	}
	var jwks struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks %s", s.JWKS())
	}
	x, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0]["x"])
	if jwks.Keys[0]["crv"] != "Ed25519" || string(x) != string(pub) {
		t.Errorf("jwks key %v", jwks.Keys[0])
	}
}

// TestCompactForm: the token is header.payload.signature as RFC 7515 gives
// it, read without this package: the header names the algorithm and key,
// the signature holds over the first two parts, and no two tokens share a
// jti.
func TestCompactForm(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	s, err := NewSigner(priv, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 3 {
		tok, err := s.Sign(Claims{Subject: "alice", Audience: "finance"})
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("%d parts", len(parts))
		}
		header, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if want := `{"alg":"EdDSA","kid":"` + s.kid + `","typ":"JWT"}`; string(header) != want {
			t.Errorf("header %s, want %s", header, want)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
			t.Error("the signature does not hold over header.payload")
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c Claims
		if err := json.Unmarshal(payload, &c); err != nil || seen[c.ID] || c.Subject != "alice" {
			t.Errorf("claims %s (%v), jti seen before: %v", payload, err, seen[c.ID])
		}
		seen[c.ID] = true
	}
}

func BenchmarkSign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(nil)
	s, _ := NewSigner(priv, time.Now)
	c := Claims{Subject: "alice", Audience: "finance", Roles: []string{"clerk"}, KeyID: "k", RequestID: "r1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}
