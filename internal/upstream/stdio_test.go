package upstream

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// exe writes an executable file.
func exe(t *testing.T, path string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// An upstream as a store may hold it, never validated by this version
// (LD_PRELOAD in its environment, a shell, a command line in one string),
// is not started: the refusal is recorded and is not the upstream failing.
func TestPoolRefusesStoredCommands(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	allowed := exe(t, filepath.Join(dir, "server"))
	allow, err := spec.NewStdioAllow([]string{allowed})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	rec := &recordingAuditor{}
	p, err := NewPool(PoolConfig{Signer: signer, Auditor: rec, Logger: slog.New(slog.DiscardHandler), Now: time.Now, StdioAllow: allow})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for name, u := range map[string]spec.Upstream{
		"preload":  {Command: []string{allowed}, Env: map[string]string{"LD_PRELOAD": filepath.Join(dir, "evil.so")}},
		"path":     {Command: []string{allowed}, Env: map[string]string{"path": dir}},
		"shell":    {Command: []string{"/bin/sh", "-c", "touch " + marker}},
		"one line": {Command: []string{"/bin/sh -c touch " + marker}},
	} {
		u.Name, u.Kind = "s", spec.Stdio
		_, err := p.Session(context.Background(), Caller{User: "alice"}, u)
		if _, refused := spec.RefusedCommand(err); !refused || !Refused(err) {
			t.Errorf("%s: %v, want a refused command", name, err)
		}
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("a refused command ran")
	}
	if n := rec.count(EventSpawn); n != 4 {
		t.Errorf("%d spawn records, want 4 refusals", n)
	}
}
