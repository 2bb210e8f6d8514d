package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8080", "[::1]:0", "localhost:9", "127.1.2.3:80"} {
		if err := CheckLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{":8080", "0.0.0.0:8080", "10.0.0.1:80", "[::]:80", "example.com:80", "127.0.0.1", "nonsense"} {
		if err := CheckLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	c := Default()
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("missing data dir: %v", err)
	}
	c.DataDir = "/tmp/x"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.Listen = "0.0.0.0:80"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Errorf("non-loopback: %v", err)
	}
	// ValidateSettings is Validate without the data directory.
	c.DataDir = ""
	if err := c.ValidateSettings(); err == nil || strings.Contains(err.Error(), "--data") || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("ValidateSettings: %v", err)
	}
}

// The store timeout defaults to 2s and is refused outside 100ms–1m.
func TestValidateStoreTimeout(t *testing.T) {
	c := Default()
	c.DataDir = "/tmp/x"
	if c.StoreTimeout != 2*time.Second {
		t.Errorf("default store timeout %v", c.StoreTimeout)
	}
	for _, d := range []time.Duration{0, 50 * time.Millisecond, 2 * time.Minute} {
		c.StoreTimeout = d
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--store-timeout") {
			t.Errorf("store timeout %v: %v", d, err)
		}
	}
}

func TestValidateTLS(t *testing.T) {
	c := Default()
	c.DataDir, c.Listen = "/tmp/x", "0.0.0.0:8443"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("plain HTTP on a public address: %v", err)
	}
	c.TLSCert, c.TLSKey = "cert.pem", "key.pem"
	if err := c.Validate(); err != nil {
		t.Errorf("TLS on a public address: %v", err)
	}
	c.TLSKey = ""
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("certificate without key: %v", err)
	}
	c.TLSKey, c.TLSMin = "key.pem", "1.1"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--tls-min") {
		t.Errorf("TLS 1.1 minimum: %v", err)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"10/s":         {Per: 10, Burst: 20},
		"120/m":        {Per: 2, Burst: 4},
		"5/s,burst=50": {Per: 5, Burst: 50},
		"off":          {},
		"0.5/s":        {Per: 0.5, Burst: 1},
	} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"10", "10/h", "-1/s", "x/s", "10/s,burst=-2", ""} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

// --elicit-url-allow takes host names, addresses and *.domain; anything
// else is refused at start.
func TestValidateElicitURLAllow(t *testing.T) {
	c := Default()
	c.DataDir = "/tmp/x"
	c.ElicitURLAllow = []string{"login.example.com", "*.corp.example"}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.ElicitURLAllow = []string{"https://login.example.com/"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--elicit-url-allow") {
		t.Errorf("a URL as a host: %v", err)
	}
}

// ElicitHosts refuses what is not a host name, an address or *.domain,
// and gives the rest in the one form the allow-list compares.
func TestElicitHosts(t *testing.T) {
	for _, bad := range []string{"", "*", "*.", "https://x.test", "x.test/path", "u@x.test", "x.test:443", "*.1.2.3.4", "ex ample.test", "é.test"} {
		if _, err := ElicitHosts([]string{bad}); err == nil || !strings.Contains(err.Error(), "--elicit-url-allow") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	got, err := ElicitHosts([]string{"X.test.", "[::1]", "10.0.0.1", " *.Corp.test"})
	if want := []string{"x.test", "::1", "10.0.0.1", "*.corp.test"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("%q %v, want %q", got, err, want)
	}
	if got, err := ElicitHosts(nil); got != nil || err != nil {
		t.Errorf("no entries: %q %v", got, err)
	}
}

// A webhook is https, or http to loopback, with "slack:" for Slack's
// format; errors never quote the URL's path or credentials.
func TestParseWebhook(t *testing.T) {
	for in, want := range map[string]Webhook{
		"https://hooks.example.com/x":            {URL: "https://hooks.example.com/x"},
		"slack:https://hooks.slack.com/services": {URL: "https://hooks.slack.com/services", Slack: true},
		"http://127.0.0.1:9/hook":                {URL: "http://127.0.0.1:9/hook"},
		"http://[::1]:9/hook":                    {URL: "http://[::1]:9/hook"},
	} {
		if tg, err := ParseWebhook(in); err != nil || tg != want {
			t.Errorf("%s: %+v %v", in, tg, err)
		}
	}
	for _, in := range []string{"http://hooks.example.com/T0/secret", "ftp://x", "https://user:pw@x/", "slack:", "nonsense"} {
		_, err := ParseWebhook(in)
		if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// The HSM's flags go together, its module is an absolute path, and its PIN
// comes from exactly one of a file and the environment; OSTIARY_PKCS11_PIN
// is read, and a PIN without an HSM is refused (a mistake, not ignored).
func TestValidateHSM(t *testing.T) {
	base := Default()
	base.DataDir = "/tmp/x"
	ok := func(c *Config) {
		c.MasterKeyPKCS11, c.PKCS11Token, c.PKCS11Key, c.PKCS11PINFile = "/usr/lib/softhsm/libsofthsm2.so", "ostiary", "vault-master", "/etc/ostiary/pin"
	}
	for name, c := range map[string]struct {
		tune func(*Config)
		want string // "" for valid
	}{
		"complete":                 {ok, ""},
		"PIN from the environment": {func(c *Config) { ok(c); c.PKCS11PINFile, c.PKCS11PIN = "", "1234" }, ""},
		"no token":                 {func(c *Config) { ok(c); c.PKCS11Token = "" }, "go together"},
		"no key":                   {func(c *Config) { ok(c); c.PKCS11Key = "" }, "go together"},
		"a token without a module": {func(c *Config) { c.PKCS11Token = "t" }, "go together"},
		"a relative module":        {func(c *Config) { ok(c); c.MasterKeyPKCS11 = "libsofthsm2.so" }, "absolute path"},
		"no PIN":                   {func(c *Config) { ok(c); c.PKCS11PINFile = "" }, "exactly one"},
		"two PINs":                 {func(c *Config) { ok(c); c.PKCS11PIN = "1234" }, "exactly one"},
		"a PIN without an HSM":     {func(c *Config) { c.PKCS11PIN = "1234" }, "no HSM is configured"},
	} {
		cfg := base
		c.tune(&cfg)
		err := cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "1234") {
			t.Errorf("%s: the PIN is in the error: %v", name, err)
		}
	}
}

// --otlp-endpoint: an http(s) URL with a host; never credentials in it
// (they would be in process lists and logs), no query or fragment; a URL
// without a path gets the OTLP traces path.
func TestOTLPEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":             "http://127.0.0.1:4318/v1/traces",
		"https://otel.example.com/":         "https://otel.example.com/v1/traces",
		"https://otel.example.com/v1/spans": "https://otel.example.com/v1/spans",
	} {
		if got, err := OTLPEndpoint(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:4318", "grpc://otel:4317", "https://user:pass@otel.example.com", "https://:4318",
		"https://otel.example.com/v1/traces?token=x", "https://otel.example.com/#x", "file:///etc/passwd", "http:opaque"} {
		c := Default()
		c.DataDir, c.OTLPEndpoint = "/tmp/x", bad
		if bad == "" {
			if err := c.Validate(); err != nil {
				t.Errorf("no endpoint: %v", err)
			}
			continue
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--otlp-endpoint") {
			t.Errorf("%q accepted: %v", bad, err)
		} else if strings.Contains(err.Error(), "pass") {
			t.Errorf("%q: the error repeats the credential: %v", bad, err)
		}
	}
}

// --metrics-listen: loopback only without TLS, any HOST:PORT with it,
// never the main listener's address.
func TestValidateMetricsListen(t *testing.T) {
	c := Default()
	c.DataDir = "/tmp/x"
	for addr, ok := range map[string]bool{"127.0.0.1:9464": true, "[::1]:9464": true, "127.0.0.1:0": true, "0.0.0.0:9464": false,
		"10.1.2.3:9464": false, "9464": false, "127.0.0.1:8080": false} {
		c.MetricsListen = addr
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("--metrics-listen %s: %v", addr, err)
		}
	}
	c.TLSCert, c.TLSKey, c.Listen, c.MetricsListen = "cert.pem", "key.pem", "0.0.0.0:8443", "0.0.0.0:9464"
	if err := c.Validate(); err != nil {
		t.Errorf("--metrics-listen 0.0.0.0:9464 with TLS: %v", err)
	}
}
