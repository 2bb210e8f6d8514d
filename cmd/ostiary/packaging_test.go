package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The container image is what the Dockerfile promises: built by 'make
// static' (the build CI runs, so its flags are checked on every change)
// with cgo off, on a distroless or scratch base, running as a non-root
// user, with the data directory a volume.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms, users []string
	var volume, static bool
	for _, l := range strings.Split(string(df), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
			users = nil // a USER before the last FROM does not apply
		case "USER":
			users = append(users, f[1])
		case "VOLUME":
			volume = volume || strings.Contains(l, `"/data"`) || strings.Contains(l, " /data")
		case "RUN":
			static = static || strings.Contains(l, "make static")
		}
	}
	if len(froms) < 2 || !regexp.MustCompile(`^(scratch|gcr\.io/distroless/static\S*)$`).MatchString(froms[len(froms)-1]) {
		t.Errorf("the image's base is %v, want scratch or distroless/static after a build stage", froms)
	}
	if len(users) == 0 || regexp.MustCompile(`^(0|root)(:|$)`).MatchString(users[len(users)-1]) {
		t.Errorf("the image runs as %v, want a non-root user", users)
	}
	if !volume || !static {
		t.Errorf("VOLUME /data: %v; built by make static: %v", volume, static)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^static:.*\n\tCGO_ENABLED=0 \$\(GO\) build -trimpath`).Match(mk) {
		t.Error("make static does not build with CGO_ENABLED=0 -trimpath")
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil || !regexp.MustCompile(`(?m)^make static$`).Match(ci) {
		t.Errorf(".ci/run does not run make static (%v)", err)
	}
	compose, err := os.ReadFile("../../compose.yaml")
	if err != nil || !strings.Contains(string(compose), "PostgreSQL") || !strings.Contains(string(compose), "demo") {
		t.Errorf("compose.yaml must run the demo and say where PostgreSQL stands (%v)", err)
	}
}

// A local data directory (keys!) never reaches a commit.
func TestGitignoreKeepsDataOut(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	for _, p := range []string{"data/keys/master.key", "data/ostiary.db", "certs/key.pem", "ostiary.yaml"} {
		if err := exec.Command("git", "-C", "../..", "check-ignore", "-q", p).Run(); err != nil {
			t.Errorf("%s is not ignored by .gitignore: %v", p, err)
		}
	}
	if err := exec.Command("git", "-C", "../..", "check-ignore", "-q", "ostiary.example.yaml").Run(); err == nil {
		t.Error("the example configuration is ignored")
	}
}
