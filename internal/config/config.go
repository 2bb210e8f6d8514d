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
	Webhooks        []string      // approval webhook URLs ("slack:URL" for Slack's format)
	WebhookKeyFile  string        // HMAC signing key of webhooks; default DIR/keys/webhook-signing.key
	WebhookBackoff  time.Duration // first retry delay of a webhook delivery (default 1s; tests shorten it)
	Alerts          string        // governance alert rules and routes (YAML); empty: no alerts
	AlertsEvery     time.Duration // how often unacknowledged alerts and overdue access reviews are checked (default 10s)
	Exports         []string      // SIEM exports, FORMAT:TARGET (see internal/export)
	ExportCAFile    string        // PEM CA certificates an export's TLS server is verified against (default: the system's)
	ExportEvery     time.Duration // how often a caught-up export looks for new records (default 500ms; tests shorten it)
	RateKey         Rate          // requests per API key
	RateUser        Rate          // requests per user, over all their keys
	RateTool        Rate          // calls per tool, over all callers
	RateAuthFail    Rate          // failed authentications per source address and per presented key id
	RateAdminWrite  Rate          // admin API writes per API key
	UserSessions    int           // open 2025-era sessions per user (default 64)
	UserStreams     int           // open GET streams per user (default 16)
	UserCalls       int           // tool calls in flight per user, held ones included (default 32)
	UserPending     int           // pending approval requests per user (default 20)
	UpstreamSlots   int           // calls in flight per upstream, at most half per user and per tool (default 64)
	AuthFailWindow  time.Duration // failures over budget in this window are recorded as one aggregated record
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
	for i, w := range c.Webhooks {
		if _, err := ParseWebhook(w); err != nil {
			errs = append(errs, fmt.Errorf("--approval-webhook %d: %w", i+1, err))
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
	return errors.Join(errs...)
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
