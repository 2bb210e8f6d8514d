package hsm_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/vault/hsm"
	"github.com/ostiary/ostiary/internal/vault/hsm/hsmtest"
)

// The key is generated in the HSM, non-extractable, on first use and
// found again after a restart; what one session wraps another unwraps,
// bound to its additional data; a wrong PIN, a missing token or module
// are refused plainly, without the PIN.
func TestSoftHSM(t *testing.T) {
	tok := hsmtest.New(t, "ostiary-test", "4321")
	cfg := hsm.Config{Module: tok.Module, Token: tok.Label, Key: "vault-master", PIN: tok.PIN}
	k, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Created() {
		t.Error("a new token had the key already")
	}
	data := bytes.Repeat([]byte{7}, 32)
	w, err := k.Wrap(data, []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, data) || len(w) != 12+32+16 {
		t.Errorf("wrapping of %d bytes", len(w))
	}
	w2, _ := k.Wrap(data, []byte("aad"))
	if bytes.Equal(w, w2) {
		t.Error("two wrappings are equal: the IV repeats")
	}
	k.Close()

	k, err = hsm.Open(cfg) // a restart
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if k.Created() {
		t.Error("the key was generated again")
	}
	if got, err := k.Unwrap(w, []byte("aad")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("unwrap after restart: %x, %v", got, err)
	}
	if _, err := k.Unwrap(w, []byte("other")); err == nil {
		t.Error("unwrapped with other additional data")
	}
	bad := bytes.Clone(w)
	bad[20] ^= 1
	if _, err := k.Unwrap(bad, []byte("aad")); err == nil {
		t.Error("unwrapped an altered wrapping")
	}
	other, err := hsm.Open(hsm.Config{Module: tok.Module, Token: tok.Label, Key: "another", PIN: tok.PIN})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Unwrap(w, []byte("aad")); err == nil {
		t.Error("another key unwrapped it")
	}
	other.Close()

	for name, c := range map[string]struct {
		cfg  hsm.Config
		want string
	}{
		"a wrong PIN":     {hsm.Config{Module: tok.Module, Token: tok.Label, Key: "vault-master", PIN: "9999"}, "refused the PIN"},
		"a missing token": {hsm.Config{Module: tok.Module, Token: "nope", Key: "vault-master", PIN: tok.PIN}, `no token labelled "nope"`},
		"no module":       {hsm.Config{Module: "/nonexistent/lib.so", Token: tok.Label, Key: "k", PIN: tok.PIN}, "/nonexistent/lib.so"},
		"not a module":    {hsm.Config{Module: "/etc/hostname", Token: tok.Label, Key: "k", PIN: tok.PIN}, "does not load"},
	} {
		_, err := hsm.Open(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.cfg.PIN) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BenchmarkUnwrap measures the HSM's unwrap latency (a start-up pays it
// once per data key).
func BenchmarkUnwrap(b *testing.B) {
	tok := hsmtest.New(b, "ostiary-bench", "4321")
	k, err := hsm.Open(hsm.Config{Module: tok.Module, Token: tok.Label, Key: "vault-master", PIN: tok.PIN})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	w, err := k.Wrap(bytes.Repeat([]byte{7}, 32), []byte("aad"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Unwrap(w, []byte("aad")); err != nil {
			b.Fatal(err)
		}
	}
}
