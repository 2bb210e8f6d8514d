package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ostiary/ostiary/internal/config"
)

const exampleFile = "../../ostiary.example.yaml"

// serveSettings are the flags of serve a file and the environment can set.
func serveSettings(t *testing.T) []*pflag.Flag {
	t.Helper()
	cmd, _ := (&env{getenv: func(string) string { return "" }}).newServe()
	var out []*pflag.Flag
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !notSettings[f.Name] {
			out = append(out, f)
		}
	})
	if len(out) < 20 {
		t.Fatalf("only %d serve flags", len(out))
	}
	return out
}

// uncomment turns every '#key: value' and '#  - item' line of the
// example into a setting.
func uncomment(s string) string {
	return regexp.MustCompile(`(?m)^#([a-z0-9-]+:|\s+- )`).ReplaceAllString(s, "$1")
}

// The example file names every flag of serve, so a flag added without an
// example line fails here; as shipped and with every setting uncommented
// it is valid, and uncommented it sets every flag: each flag is
// configurable from a file.
func TestExampleConfigCoversEveryServeFlag(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range serveSettings(t) {
		if !regexp.MustCompile(`(?m)^#?` + regexp.QuoteMeta(f.Name) + `:`).Match(data) {
			t.Errorf("%s names no key %s: add an example line for --%s", exampleFile, f.Name, f.Name)
		}
	}
	if r := run(nil, "config", "check", exampleFile); r.code != ExitOK || !strings.Contains(r.stdout, "valid") {
		t.Errorf("the example as shipped: %+v", r)
	}
	full := filepath.Join(t.TempDir(), "full.yaml")
	if err := os.WriteFile(full, []byte(uncomment(string(data))), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(nil, "config", "check", full); r.code != ExitOK {
		t.Fatalf("the example with every setting uncommented: %+v", r)
	}
	settings, err := config.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{getenv: func(string) string { return "" }}
	cmd, _ := e.newServe()
	if err := e.applySettings(cmd, full, settings); err != nil {
		t.Fatal(err)
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !notSettings[f.Name] && !f.Changed {
			t.Errorf("the uncommented example does not set --%s", f.Name)
		}
	})
}

// Precedence: flags, then environment, then file, then defaults; a
// repeatable flag takes a list, its variable a separated list; the
// variables documented before they were derived from the flags still work.
func TestSettingsPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ostiary.yaml")
	os.WriteFile(file, []byte(`
data: /from/file
listen: 127.0.0.1:9000
call-timeout: 5s
store-timeout: 3s
stdio-allow: [/file/a, /file/b]
allow-origin:
  - https://file.example
log-level: debug
`), 0o600)
	vars := map[string]string{
		"OSTIARY_LISTEN":          "127.0.0.1:9100",
		"OSTIARY_CALL_TIMEOUT":    "7s",
		"OSTIARY_STDIO_ALLOW":     "/env/a:/env/b",
		"OSTIARY_ALLOWED_ORIGINS": "https://env.example,https://env2.example",
	}
	e := &env{getenv: func(k string) string { return vars[k] }}
	cmd, flags := e.newServe()
	if err := cmd.ParseFlags([]string{"--listen", "127.0.0.1:9200"}); err != nil {
		t.Fatal(err)
	}
	settings, err := config.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.applySettings(cmd, file, settings); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.serverConfig(cmd, *flags)
	if err != nil {
		t.Fatal(err)
	}
	def := config.Default()
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"listen (flag over env and file)", cfg.Listen, "127.0.0.1:9200"},
		{"call-timeout (env over file)", cfg.CallTimeout, 7 * time.Second},
		{"store-timeout (file over default)", cfg.StoreTimeout, 3 * time.Second},
		{"data (file)", cfg.DataDir, "/from/file"},
		{"checkpoint-every (default)", cfg.CheckpointEvery, def.CheckpointEvery},
		{"log-level (file)", cfg.LogLevel.String(), "DEBUG"},
		{"stdio-allow (env, ':'-separated)", strings.Join(cfg.StdioAllow, " "), "/env/a /env/b"},
		{"allow-origin (older variable name)", strings.Join(cfg.AllowedOrigins, " "), "https://env.example https://env2.example"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

// A file is strict: every mistake is refused with exit 2 and its line.
func TestConfigCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "listen: 127.0.0.1:8080\nlisen: x\n", `:2: unknown key "lisen"`},
		{"a near miss is named", "call-timout: 5s\n", "did you mean call-timeout"},
		{"a key in capitals", "Listen: 127.0.0.1:8080\n", `:1: unknown key "Listen"`},
		{"the help flag", "help: true\n", `unknown key "help"`},
		{"the config flag itself", "config: other.yaml\n", `unknown key "config"`},
		{"duplicate key", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", ":2: listen is set twice (first on line 1)"},
		{"bad duration", "data: /d\ncall-timeout: soon\n", ":2: call-timeout:"},
		{"bad rate", "rate-key: fast\n", ":1: rate-key:"},
		{"bad number", "max-calls-per-user: many\n", ":1: max-calls-per-user:"},
		{"bad log level", "log-level: loud\n", ":1: log-level:"},
		{"a list for one value", "listen: [127.0.0.1:1]\n", ":1: listen takes one value, not a list"},
		{"one value for a list", "stdio-allow: /bin/x\n", ":1: stdio-allow is repeatable: give a list"},
		{"nested mapping", "listen:\n  host: x\n", ":2: listen: want a value or a list"},
		{"list of lists", "stdio-allow:\n  - [/a]\n", ":2: stdio-allow: a list holds plain values"},
		{"empty value", "listen:\n", "listen: no value"},
		{"alias", "data: &d /x\nlisten: *d\n", ":1: data: anchors are not allowed"},
		{"alias alone", "x: &a 1\n", "anchors"},
		{"merge key", "<<: {listen: 127.0.0.1:1}\n", ":1: merge keys"},
		{"custom tag", "listen: !env LISTEN\n", ":1: listen: tag !env is not allowed"},
		{"binary tag", "data: !!binary aGVsbG8=\n", "tag !!binary is not allowed"},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "a second YAML document"},
		{"not a mapping", "- listen\n", ":1: want a mapping"},
		{"syntax error", "listen: [127.0.0.1\n", ":1: did not find expected"},
		{"quoted key", "\"listen\": 127.0.0.1:1\n", ":1: a key must be a plain"},
		{"invalid together, at the line", "data: /d\nlisten: 0.0.0.0:80\n", ":2: --listen"},
		{"relative stdio path", "stdio-allow:\n  - ./x\n", ":1: --stdio-allow"},
		{"tabs", "listen:\t127.0.0.1:1\n\tdata: x\n", ":2: found a tab"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(dir, "c"+string(rune('a'+i))+".yaml")
			if err := os.WriteFile(f, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(nil, "config", "check", f)
			if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, c.want)
			}
		})
	}
	if r := run(nil, "config", "check", filepath.Join(dir, "missing.yaml")); r.code != ExitUsage {
		t.Errorf("a missing file: %+v", r)
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, []byte("# nothing set\n"), 0o600)
	if r := run(nil, "config", "check", empty); r.code != ExitOK {
		t.Errorf("a file of comments: %+v", r)
	}
	// serve refuses the same file the same way, before opening anything.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("data: /d\nlisen: x\n"), 0o600)
	if r := run(nil, "serve", "--config", bad); r.code != ExitUsage || !strings.Contains(r.stderr, "bad.yaml:2: unknown key") {
		t.Errorf("serve --config with a mistake: %+v", r)
	}
	if r := run(map[string]string{"OSTIARY_CONFIG": bad}, "serve"); r.code != ExitUsage || !strings.Contains(r.stderr, "bad.yaml:2") {
		t.Errorf("OSTIARY_CONFIG with a mistake: %+v", r)
	}
	// A bad value in a derived variable names the variable.
	if r := run(map[string]string{"OSTIARY_CALL_TIMEOUT": "soon"}, "serve", "--data", dir); r.code != ExitUsage || !strings.Contains(r.stderr, "OSTIARY_CALL_TIMEOUT") {
		t.Errorf("a bad OSTIARY_CALL_TIMEOUT: %+v", r)
	}
}

// A flag whose value is secret (a PIN, a password) is configurable like
// any other, but a refused value is never quoted back.
func TestSettingsHideSecretValues(t *testing.T) {
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().Int("hsm-pin", 0, "")
	cmd.Flags().Int("workers", 0, "")
	for _, src := range []string{"file", "env"} {
		vars := map[string]string{}
		var settings []config.Setting
		if src == "env" {
			vars["OSTIARY_HSM_PIN"] = "s3cr3t-987654"
		} else {
			settings = []config.Setting{{Key: "hsm-pin", Values: []string{"s3cr3t-987654"}, Line: 3}}
		}
		e := &env{getenv: func(k string) string { return vars[k] }}
		err := e.applySettings(cmd, "f.yaml", settings)
		if err == nil || strings.Contains(err.Error(), "s3cr3t-987654") || !strings.Contains(err.Error(), "hsm-pin") && !strings.Contains(err.Error(), "HSM_PIN") {
			t.Errorf("%s: %v", src, err)
		}
	}
	// An ordinary flag's value is quoted, to help.
	e := &env{getenv: func(string) string { return "" }}
	err := e.applySettings(cmd, "f.yaml", []config.Setting{{Key: "workers", Values: []string{"lots"}, Line: 1}})
	if err == nil || !strings.Contains(err.Error(), "lots") {
		t.Errorf("workers: %v", err)
	}
}

// serve --config runs the server the file describes.
func TestServeWithConfigFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	run(nil, "init", "--data", dir).mustOK(t)
	file := filepath.Join(t.TempDir(), "ostiary.yaml")
	os.WriteFile(file, []byte("data: "+dir+"\nlisten: 127.0.0.1:0\nlog-format: json\ncheckpoint-every: 50ms\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuf{}, &syncBuf{}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"serve", "--config", file}, nil, out, errb, func(string) string { return "" })
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "serving on http://127.0.0.1:") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve --config did not start: %s %s", out, errb)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("serve exited %d: %s", code, errb)
	}
	if !strings.Contains(out.String(), "(data "+dir+")") {
		t.Errorf("serve did not use the file's data directory: %s", out)
	}
	lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(errb.String()), "\n"), func(s string) bool { return s == "" })
	if len(lines) == 0 {
		t.Fatal("no log lines")
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			t.Errorf("log-format json from the file, yet: %q", l)
		}
	}
}
