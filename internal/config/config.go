// Package config is Ostiary's typed configuration and its file format:
// the command line layers defaults, a file (ParseFile), environment
// (OSTIARY_*) and flags into a Config; Validate before use.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/logging"
)

// Config configures a server.
type Config struct {
	DataDir         string
	Listen          string // host:port
	LogLevel        slog.Level
	LogFormat       string // text or json
	CheckpointEvery time.Duration
	ShutdownTimeout time.Duration
	AllowedOrigins  []string // browser origins allowed to call /mcp
	TLSCert         string   // PEM certificate chain; with TLSKey, serve HTTPS
	TLSKey          string   // PEM private key
	TLSMin          string   // minimum TLS version: "1.2" (default) or "1.3"
	MasterKeyFile   string   // the vault's master key (32 bytes, hex); default DIR/keys/master.key
	// The vault's master key in an HSM, through PKCS#11: the module (a
	// shared library), the token's label and the AES key's label; the
	// PIN from PKCS11PINFile or OSTIARY_PKCS11_PIN, never a flag.
	MasterKeyPKCS11 string
	PKCS11Token     string
	PKCS11Key       string
	PKCS11PINFile   string
	PKCS11PIN       string        // from OSTIARY_PKCS11_PIN; never printed
	VaultCheckEvery time.Duration // how often overdue secrets are checked (default 1m)
	CallTimeout     time.Duration // bound on one upstream call, progress or not
	StoreTimeout    time.Duration // bound on every wait on the store: past it, a call is refused with 503 (default 2s)
	WriteStall      time.Duration // how long one write to an MCP client that does not read may block (default 30s)
	ApprovalWait    time.Duration // how long a call held for approval waits for it (0: answer at once)
	// RequireReview lists environments whose governed objects change only
	// through reviewed proposals; RequireReviewKinds lists object kinds
	// (policy, tool-version, tool-labels, all) that do; ReviewQuorum is how
	// many distinct reviewers a proposal needs (default 1).
	RequireReview      []string
	RequireReviewKinds []string
	ReviewQuorum       int
	ReplayMax          int           // recorded decisions a policy proposal's replay reads at most, shared among the tools (default 10000)
	Webhooks           []string      // approval webhook URLs ("slack:URL" for Slack's format)
	WebhookKeyFile     string        // HMAC signing key of webhooks; default DIR/keys/webhook-signing.key
	WebhookBackoff     time.Duration // first retry delay of a webhook delivery (default 1s; tests shorten it)
	Anchors            []string      // where signed checkpoints are pushed as they are made: absolute file paths or https URLs
	AnchorCA           string        // PEM CA certificates trusted for https anchors (default: the system's)
	AnchorBackoff      time.Duration // first retry delay of an anchor delivery (default 200ms; tests shorten it)
	Alerts             string        // governance alert rules and routes (YAML); empty: no alerts
	AlertsEvery        time.Duration // how often unacknowledged alerts and overdue access reviews are checked (default 10s)
	Exports            []string      // SIEM exports, FORMAT:TARGET (see internal/export)
	ExportCAFile       string        // PEM CA certificates an export's TLS server is verified against (default: the system's)
	ExportEvery        time.Duration // how often a caught-up export looks for new records (default 500ms; tests shorten it)
	RateKey            Rate          // requests per API key
	RateUser           Rate          // requests per user, over all their keys
	RateTool           Rate          // calls per tool, over all callers
	RateAuthFail       Rate          // failed authentications per source address and per presented key id
	RateAdminWrite     Rate          // admin API writes per API key
	UserSessions       int           // open 2025-era sessions per user (default 64)
	UserStreams        int           // open GET streams per user (default 16)
	UserCalls          int           // tool calls in flight per user, held ones included (default 32)
	UserPending        int           // pending approval requests per user (default 20)
	UpstreamSlots      int           // calls in flight per upstream, at most half per user and per tool (default 64)
	AuthFailWindow     time.Duration // failures over budget in this window are recorded as one aggregated record
	// StdioAllow lists the programs stdio upstreams may run: absolute
	// paths of files, or of directories (their programs directly inside,
	// interpreters excepted); none by default.
	StdioAllow []string
	// ElicitURLAllow lists the hosts a URL-mode elicitation may point the
	// user at: exact hosts, or *.domain for its subdomains; empty: any
	// https host (http only to loopback).
	ElicitURLAllow []string
	// OIDC: identity providers whose JWT access tokens authenticate beside
	// API keys (see authn.TokenAuthenticator).
	OIDC OIDC
	// MetricsListen is where Prometheus metrics are served (GET /metrics),
	// on a listener of their own; empty: not served. Plain HTTP only on
	// loopback, as Listen; with TLS, the server's certificate.
	MetricsListen string
	// OTLPEndpoint is the OTLP/HTTP URL traces are sent to; empty: no
	// tracing at all.
	OTLPEndpoint string
}

// OIDC configures sign-in with identity providers.
type OIDC struct {
	Issuers       []string      // issuer URLs, exactly as their tokens' iss
	Audience      string        // Ostiary's resource URI (RFC 8707), e.g. https://ostiary.example.com/mcp
	Scopes        []string      // scopes every token must carry
	Users         string        // "jit" (default): create users on first sign-in; "existing": only linked users
	GroupsClaim   string        // default "groups"
	UsernameClaim string        // default "preferred_username"
	Skew          time.Duration // clock skew tolerated on exp/nbf/iat (default 1m, at most 5m)
	RefreshMin    time.Duration // least time between two key-set fetches per issuer (default 1m)
}

// Enabled reports whether any identity provider is configured.
func (o OIDC) Enabled() bool { return len(o.Issuers) > 0 }

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		LogLevel:        slog.LevelInfo,
		LogFormat:       "text",
		CheckpointEvery: time.Second,
		ShutdownTimeout: 10 * time.Second,
		TLSMin:          "1.2",
		CallTimeout:     time.Minute,
		StoreTimeout:    2 * time.Second,
		ApprovalWait:    10 * time.Second,
		RateKey:         Rate{Per: 100, Burst: 200},
		RateUser:        Rate{Per: 200, Burst: 400},
		RateTool:        Rate{Per: 500, Burst: 1000},
		RateAuthFail:    Rate{Per: 2, Burst: 20},
		RateAdminWrite:  Rate{Per: 10, Burst: 50},
		AuthFailWindow:  10 * time.Second,
		UserSessions:    64,
		UserStreams:     16,
		UserCalls:       32,
		UserPending:     20,
		UpstreamSlots:   64,
		VaultCheckEvery: time.Minute,
	}
}

// TLS reports whether the server serves HTTPS.
func (c Config) TLS() bool { return c.TLSCert != "" }

// Validate checks the configuration. Until TLS is supported, the server
// listens on loopback addresses only.
// ReviewKinds are the values --require-review-kinds takes (internal/change
// keeps its kinds equal to these, but for "all": TestKindsMatchConfig).
var ReviewKinds = []string{"policy", "tool-version", "tool-labels", "user-roles", "all"}

// envName is an environment's name (authn.ValidEnvironment).
var envName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

func clipFlag(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data DIR is required (or set OSTIARY_DATA)"))
	}
	return errors.Join(append(errs, c.ValidateSettings())...)
}

// ValidateSettings checks everything Validate does but the presence of the
// data directory (which a configuration file may leave to the command
// line). The error joins one error per mistake, each naming its flag.
func (c Config) ValidateSettings() error {
	var errs []error
	switch {
	case c.OIDC.Enabled() && c.OIDC.Audience == "":
		errs = append(errs, errors.New("--oidc-issuer needs --oidc-audience, Ostiary's resource URI (e.g. https://ostiary.example.com/mcp)"))
	case !c.OIDC.Enabled() && c.OIDC.Audience != "":
		errs = append(errs, errors.New("--oidc-audience needs at least one --oidc-issuer"))
	case c.OIDC.Users != "" && c.OIDC.Users != "jit" && c.OIDC.Users != "existing":
		errs = append(errs, fmt.Errorf("--oidc-users %q: want jit or existing", c.OIDC.Users))
	}
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	case c.TLSMin != "1.2" && c.TLSMin != "1.3":
		errs = append(errs, fmt.Errorf("--tls-min %q: want 1.2 or 1.3", c.TLSMin))
	}
	if !c.TLS() {
		if err := CheckLoopback(c.Listen); err != nil {
			errs = append(errs, err)
		}
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: want HOST:PORT", c.Listen))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("--allow-origin %q: want scheme://host[:port], e.g. https://chat.example.com", o))
		}
	}
	if c.CallTimeout < time.Second || c.CallTimeout > time.Hour {
		errs = append(errs, errors.New("--call-timeout must be between 1s and 1h"))
	}
	if c.StoreTimeout < 100*time.Millisecond || c.StoreTimeout > time.Minute {
		errs = append(errs, errors.New("--store-timeout must be between 100ms and 1m"))
	}
	errs = append(errs, c.validateAnchors()...)
	for i, w := range c.Webhooks {
		if _, err := ParseWebhook(w); err != nil {
			errs = append(errs, fmt.Errorf("--approval-webhook %d: %w", i+1, err))
		}
	}
	if c.ReviewQuorum < 0 || c.ReviewQuorum > 10 {
		errs = append(errs, errors.New("--review-quorum must be between 1 and 10"))
	}
	if c.ReplayMax < 0 || c.ReplayMax > 1000000 {
		errs = append(errs, errors.New("--replay-max must be between 1 and 1000000"))
	}
	for _, list := range c.RequireReviewKinds {
		for _, k := range strings.Split(list, ",") {
			if k = strings.TrimSpace(k); k != "" && !slices.Contains(ReviewKinds, k) {
				errs = append(errs, fmt.Errorf("--require-review-kinds %q: want %s", clipFlag(k), strings.Join(ReviewKinds, ", ")))
			}
		}
	}
	for _, list := range c.RequireReview {
		for _, env := range strings.Split(list, ",") {
			if env = strings.TrimSpace(env); env != "" && !envName.MatchString(env) {
				errs = append(errs, fmt.Errorf("--require-review %q: an environment name is 1–32 lower-case letters, digits and '-'", clipFlag(env)))
			}
		}
	}
	if c.ApprovalWait < 0 || c.ApprovalWait > 10*time.Minute {
		errs = append(errs, errors.New("--approval-wait must be between 0s and 10m"))
	}
	for _, p := range c.StdioAllow {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("--stdio-allow %q: want an absolute path (OSTIARY_STDIO_ALLOW separates paths with ':')", p))
		}
	}
	if _, err := ElicitHosts(c.ElicitURLAllow); err != nil {
		errs = append(errs, err)
	}
	if c.VaultCheckEvery < 10*time.Millisecond || c.VaultCheckEvery > time.Hour {
		errs = append(errs, errors.New("the vault check interval must be between 10ms and 1h"))
	}
	if c.MasterKeyPKCS11 != "" || c.PKCS11Token != "" || c.PKCS11Key != "" || c.PKCS11PINFile != "" {
		switch {
		case c.MasterKeyPKCS11 == "" || c.PKCS11Token == "" || c.PKCS11Key == "":
			errs = append(errs, errors.New("--master-key-pkcs11 MODULE, --pkcs11-token LABEL and --pkcs11-key LABEL go together"))
		case !filepath.IsAbs(c.MasterKeyPKCS11):
			errs = append(errs, fmt.Errorf("--master-key-pkcs11 %q: want the absolute path of the PKCS#11 module", c.MasterKeyPKCS11))
		case (c.PKCS11PINFile == "") == (c.PKCS11PIN == ""):
			errs = append(errs, errors.New("the HSM's PIN comes from --pkcs11-pin-file FILE (or OSTIARY_PKCS11_PIN_FILE) or from OSTIARY_PKCS11_PIN: exactly one of them"))
		}
	} else if c.PKCS11PIN != "" {
		errs = append(errs, errors.New("OSTIARY_PKCS11_PIN is set but no HSM is configured (--master-key-pkcs11)"))
	}
	if c.CheckpointEvery < 10*time.Millisecond || c.CheckpointEvery > time.Hour {
		errs = append(errs, errors.New("--checkpoint-every must be between 10ms and 1h"))
	}
	if c.MetricsListen != "" {
		if !c.TLS() {
			if err := CheckLoopback(c.MetricsListen); err != nil {
				errs = append(errs, fmt.Errorf("--metrics-listen: %w", err))
			}
		} else if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen %q: want HOST:PORT", c.MetricsListen))
		}
		if _, port, _ := net.SplitHostPort(c.MetricsListen); c.MetricsListen == c.Listen && port != "0" {
			errs = append(errs, errors.New("--metrics-listen must differ from --listen: metrics have a listener of their own"))
		}
	}
	if c.OTLPEndpoint != "" {
		if _, err := OTLPEndpoint(c.OTLPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("--otlp-endpoint: %w", err))
		}
	}
	return errors.Join(errs...)
}

// OTLPEndpoint validates an --otlp-endpoint value: an absolute http or
// https URL with a host, without credentials (headers go in
// OTEL_EXPORTER_OTLP_HEADERS), query or fragment. It returns the URL
// traces are posted to: a URL without a path gets /v1/traces.
func OTLPEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want an http or https URL, e.g. http://127.0.0.1:4318")
	case u.Hostname() == "":
		return "", errors.New("the URL needs a host")
	case u.User != nil:
		return "", errors.New("the URL must not carry credentials (put headers in OTEL_EXPORTER_OTLP_HEADERS)")
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", errors.New("the URL must not have a query or fragment")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// CheckLoopback accepts host:port only where host is a loopback IP or
// "localhost".
func CheckLoopback(listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return fmt.Errorf("--listen %q: want HOST:PORT, e.g. 127.0.0.1:8080", listen)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %q: refusing to serve plain HTTP on a non-loopback address; use 127.0.0.1 or [::1], or give --tls-cert and --tls-key", listen)
	}
	return nil
}

// Logger builds the operational logger (never the audit log).
func (c Config) Logger(w io.Writer) *slog.Logger {
	return logging.New(w, c.LogFormat, c.LogLevel)
}
