// Package hsmtest gives a test a SoftHSM2 token of its own: a token
// directory in its temporary directory, initialised with softhsm2-util.
// Without SoftHSM2 installed (Debian's softhsm2 package) the test is
// skipped, unless OSTIARY_REQUIRE_SOFTHSM2 is set (CI sets it), which
// makes the absence a failure.
package hsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Token is a SoftHSM2 token.
type Token struct {
	Module string // the PKCS#11 module
	Label  string
	PIN    string
	Conf   string // the SOFTHSM2_CONF the test's environment now names
}

// Modules are where Debian and others install SoftHSM2's module.
var Modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// Module returns SoftHSM2's module, skipping (or, under
// OSTIARY_REQUIRE_SOFTHSM2, failing) the test when it is not installed.
func Module(t testing.TB) string {
	t.Helper()
	for _, m := range Modules {
		if _, err := os.Stat(m); err == nil {
			if _, err := exec.LookPath("softhsm2-util"); err == nil {
				return m
			}
		}
	}
	msg := "SoftHSM2 is not installed (no libsofthsm2.so or softhsm2-util): apt-get install softhsm2"
	if os.Getenv("OSTIARY_REQUIRE_SOFTHSM2") != "" {
		t.Fatal(msg + "; OSTIARY_REQUIRE_SOFTHSM2 is set, so this is a failure")
	}
	t.Skip(msg)
	return ""
}

// New initialises a token labelled label with user PIN pin in a fresh
// token directory, and points SOFTHSM2_CONF at it for the rest of the
// test (child processes inherit it).
func New(t testing.TB, label, pin string) Token {
	t.Helper()
	mod := Module(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "so-"+pin).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return Token{Module: mod, Label: label, PIN: pin, Conf: conf}
}
