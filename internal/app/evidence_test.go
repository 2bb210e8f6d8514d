package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/evidence"
	"github.com/ostiary/ostiary/internal/govern"
)

// Hostile tests of evidence bundles (issue 16, item 5):
//
//	attack                                                observable that holds
//	export alice's request, bob's call beside it          bob's request id, name and arguments are not in the file
//	export without the read-audit grant                   exit 1 (forbidden); refusal on record
//	verify with the data directory gone                   exit 0: the bundle and the public key suffice
//	verify against another public key                     exit 3
//	one byte of the bundle changed                        exit 3 (every offset: internal/evidence TestBundleAnyByteChangedFails)
//	verify without --public-key                           exit 2: never trust the key a bundle names
//	verify of an endless "file" (/dev/zero, a pipe)        exit 3 after reading 32 MiB, not memory exhausted
func TestEvidenceBundleEndToEnd(t *testing.T) {
	t.Parallel()
	s, _, alice := policySetup(t)
	ctx := context.Background()
	setup(t, s, "", nil, "bob", false)
	mustStatus(t, s.Do("POST", "/api/v1/users/bob/roles", s.AdminKey, map[string]any{"roles": []string{"fin-user"}}), 200)
	bobKey, _ := newKey(t, s, map[string]any{"user": "bob"})
	bob, err := s.Client(t, bobKey, "")
	if err != nil {
		t.Fatal(err)
	}
	aliceKey, _ := newKey(t, s, map[string]any{"user": "alice"})
	for _, c := range []struct {
		cs *mcp.ClientSession
		id string
	}{{alice, "A-100"}, {bob, "BOBSECRET-77"}} {
		res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": c.id}})
		if err != nil || res.IsError {
			t.Fatalf("call: %v %+v", err, res)
		}
	}
	var aliceCall, bobCall audit.Record
	for _, r := range records(t, s, audit.Query{Event: govern.EventToolCall, Target: "tool:fin.lookup"}) {
		switch r.Actor {
		case "alice":
			aliceCall = r
		case "bob":
			bobCall = r
		}
	}
	if aliceCall.RequestID == "" || bobCall.RequestID == "" || aliceCall.RequestID == bobCall.RequestID {
		t.Fatalf("request ids: alice %q, bob %q", aliceCall.RequestID, bobCall.RequestID)
	}

	out := filepath.Join(t.TempDir(), "case.bundle")
	if code, _, stderr := runCLI(s, aliceKey, "evidence", "export", "--request-id", aliceCall.RequestID, "-o", out); code != 1 || !strings.Contains(stderr, "read-audit") {
		t.Fatalf("export without read-audit: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := runCLI(s, s.AdminKey, "evidence", "export", "--request-id", aliceCall.RequestID, "-o", out)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{bobCall.RequestID, "BOBSECRET-77", `\"actor\":\"bob\"`} {
		if bytes.Contains(b, []byte(leak)) {
			t.Errorf("the bundle holds %q of bob's record", leak)
		}
	}
	var bun evidence.Bundle
	if err := json.Unmarshal(b, &bun); err != nil {
		t.Fatal(err)
	}
	if len(bun.Records) < 2 || len(bun.Versions.Tools) != 1 || bun.Versions.Tools[0].Tool != "fin.lookup" || len(bun.Versions.Policies) != 1 {
		t.Fatalf("bundle: %d records, versions %+v", len(bun.Records), bun.Versions)
	}
	exports := records(t, s, audit.Query{Event: evidence.EventExport})
	if len(exports) != 2 || exports[0].Outcome != audit.Success || exports[0].Detail["bundle_sha256"] == nil || exports[1].Outcome != audit.Denied {
		t.Fatalf("export records: %+v", exports)
	}

	// Offline: the server stopped and its data directory gone.
	pub := filepath.Join(t.TempDir(), "audit-signing.pub")
	copyPlain(t, filepath.Join(s.Dir, "keys", "audit-signing.pub"), pub)
	s.Stop()
	if err := os.Rename(s.Dir, s.Dir+".gone"); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(s, "", "evidence", "verify", out, "--public-key", pub)
	if code != 0 || !strings.Contains(stdout, "evidence bundle OK") {
		t.Fatalf("verify offline: exit %d\n%s%s", code, stdout, stderr)
	}
	other := filepath.Join(t.TempDir(), "other.pub")
	writePub(t, other)
	if code, _, stderr := runCLI(s, "", "evidence", "verify", out, "--public-key", other); code != 3 {
		t.Fatalf("verify with another key: exit %d %s", code, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.bundle")
	b[len(b)/2] ^= 1
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCLI(s, "", "evidence", "verify", bad, "--public-key", pub); code != 3 {
		t.Fatalf("verify of a changed bundle: exit %d", code)
	}
	if code, _, _ := runCLI(s, "", "evidence", "verify", out); code != 2 {
		t.Fatalf("verify without --public-key: exit %d", code)
	}
	// A "file" whose size says nothing (a device, a pipe) is read only as
	// far as a bundle can go: an endless one is refused, not read into
	// memory until the process dies.
	if code, _, stderr := runCLI(s, "", "evidence", "verify", "/dev/zero", "--public-key", pub); code != 3 || !strings.Contains(stderr, "larger than") {
		t.Fatalf("verify of /dev/zero: exit %d %s", code, stderr)
	}
	if err := os.Rename(s.Dir+".gone", s.Dir); err != nil {
		t.Fatal(err)
	}
}

func copyPlain(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writePub(t *testing.T, path string) {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
