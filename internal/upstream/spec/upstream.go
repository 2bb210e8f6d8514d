// Package spec is what an upstream is: an admin's configuration of one MCP
// server behind Ostiary (Upstream) and its validation, what the server
// lists (Listing), and the operator's limits on what any upstream may be:
// the addresses it may be reached at, the programs a stdio upstream may run
// (StdioAllow), the hosts a URL-mode elicitation may point at (HostAllow).
// Connecting to one is the upstream package's part.
package spec

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/vault"
)

// Kind is how an upstream is reached.
type Kind string

const (
	HTTP  Kind = "http"  // MCP over Streamable HTTP
	Stdio Kind = "stdio" // MCP over the stdin/stdout of a command an admin fixed
	// HTTPAPI is an HTTP API whose operations, as its OpenAPI document
	// describes them, are tools (openapi.go); URL is its base URL.
	HTTPAPI Kind = "openapi"
)

// Upstream is one configured MCP server.
type Upstream struct {
	Name    string            `json:"name"`
	Prefix  string            `json:"prefix"` // namespace of its tools; "" exposes them as they are
	Kind    Kind              `json:"kind"`
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"-"` // values may be credentials: never returned
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"-"`
	// OpenAPI describes an OpenAPI upstream's document, operations and
	// credential (Kind HTTPAPI only).
	OpenAPI *OpenAPI `json:"openapi,omitempty"`
	// TokenExchange, if set, sends each caller's identity-provider token
	// exchanged for one issued to this upstream (Kind HTTP only).
	TokenExchange *TokenExchange `json:"token_exchange,omitempty"`
	// AllowPrivate lets an HTTP upstream be reached at loopback, private,
	// link-local and other non-public addresses (off by default: SSRF).
	AllowPrivate bool `json:"allow_private"`
	// AllowPlainHTTP lets an http:// upstream be reached at an address
	// other than loopback, where calls cross the network unencrypted (off
	// by default). It is recorded with the upstream and in its audit record.
	AllowPlainHTTP bool `json:"allow_plain_http"`
	// TLS verifies an https upstream and may identify Ostiary to it.
	TLS TLS `json:"tls"`
	// CallTimeout bounds a tool call on this upstream (0: the server's
	// bound, which also caps it).
	CallTimeout time.Duration `json:"call_timeout,omitempty"`
	// OnChange says what a tool whose definition changed upstream does
	// until it is reviewed: OnChangeRefuse ("" too) or OnChangeKeepPinned.
	OnChange  string    `json:"on_change,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// SyncedAt is its first successful sync (zero: none yet).
	SyncedAt time.Time `json:"synced_at,omitzero"`
}

// What calls of a tool do while the upstream presents a definition that
// differs from the pinned one and nobody has reviewed it.
const (
	OnChangeRefuse     = "refuse"      // refused (tool-definition-changed): the default
	OnChangeKeepPinned = "keep-pinned" // run under the pinned definition, recorded as such
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// ValidName checks an upstream name or prefix: a namespace cannot contain
// the separator '.'.
func ValidName(what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("invalid %s %q: use 1–32 lowercase letters, digits, '_' or '-', starting with a letter or digit", what, clip(s))
	}
	return nil
}

// reservedHeaders are set by Ostiary itself or by HTTP and cannot be
// configured.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Accept": true, "Connection": true,
	"Transfer-Encoding": true, "Te": true, "Upgrade": true, "Mcp-Session-Id": true,
	"Mcp-Protocol-Version": true, "Mcp-Method": true, "Mcp-Name": true, "Last-Event-Id": true,
	"Ostiary-Identity": true, "Traceparent": true, "X-Request-Id": true,
}

// Validate checks the configuration; errors are safe to show. Whether a
// stdio upstream's program may run is the server's allow-list's to say
// (StdioAllow), checked when it is added and again at every start.
func (u Upstream) Validate() error {
	if err := ValidName("upstream name", u.Name); err != nil {
		return err
	}
	if u.Prefix != "" {
		if err := ValidName("prefix", u.Prefix); err != nil {
			return err
		}
	}
	if err := ValidTimeout(u.CallTimeout); err != nil {
		return err
	}
	if u.OnChange != "" && u.OnChange != OnChangeRefuse && u.OnChange != OnChangeKeepPinned {
		return fmt.Errorf("invalid on_change %q: want %q (the default) or %q", clip(u.OnChange), OnChangeRefuse, OnChangeKeepPinned)
	}
	if u.TokenExchange != nil {
		if err := u.TokenExchange.validate(u); err != nil {
			return err
		}
	}
	if u.Kind != HTTPAPI && u.OpenAPI != nil {
		return fmt.Errorf("--openapi makes an OpenAPI upstream: give --base-url, not --url or --command")
	}
	switch u.Kind {
	case HTTPAPI:
		return u.validOpenAPI()
	case HTTP:
		if len(u.Command) > 0 || len(u.Env) > 0 {
			return fmt.Errorf("an HTTP upstream takes --url and --header, not --command or --env")
		}
		if err := u.checkURL(); err != nil {
			return err
		}
		for k, v := range u.Headers {
			if err := validHeader(k, v); err != nil {
				return err
			}
			if err := notLiteralCredential("header "+http.CanonicalHeaderKey(k), credentialHeaders[http.CanonicalHeaderKey(k)], v); err != nil {
				return err
			}
		}
		if err := u.TLS.validate(u.URL); err != nil {
			return err
		}
	case Stdio:
		if u.URL != "" || len(u.Headers) > 0 || !u.TLS.IsZero() {
			return fmt.Errorf("a stdio upstream takes --command and --env, not --url, --header or TLS options")
		}
		if err := u.ValidStdio(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("an upstream needs --url (HTTP) or --command (stdio)")
	}
	return nil
}

// credentialHeaders carry credentials by convention: their values must
// come from the vault.
var credentialHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true,
	"X-Api-Key": true, "Api-Key": true, "X-Auth-Token": true, "Private-Token": true, "X-Access-Token": true}

// credentialEnvRE matches environment variable names that carry credentials
// by convention.
var credentialEnvRE = regexp.MustCompile(`(?i)(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_KEY|CREDENTIAL|ACCESS_KEY)`)

// framing is what may surround a secret reference in a credential-bearing
// value: a scheme word ("Bearer "), a cookie name ("session="), no digits.
var framing = regexp.MustCompile(`^[A-Za-z _=;:-]{0,20}$`)

// notLiteralCredential keeps upstream credentials in the vault: a value
// that looks like a credential is refused wherever it is written, and a
// credential-bearing header or variable must take its credential from a
// ${secret:NAME} reference, around which only framing is allowed.
func notLiteralCredential(what string, bearing bool, v string) error {
	literal := vault.RefRE.ReplaceAllString(v, "")
	hint := "store it with 'ostiary secrets set NAME --upstream UPSTREAM' (value on standard input) and write ${secret:NAME} here"
	if vault.LooksLikeCredential(literal) {
		return fmt.Errorf("%s holds what looks like a credential: %s", what, hint)
	}
	if bearing && (literal == v || !framing.MatchString(literal)) {
		return fmt.Errorf("%s carries a credential, which must come from the vault: %s", what, hint)
	}
	return nil
}

// MaxCallTimeout bounds any configured call timeout.
const MaxCallTimeout = 24 * time.Hour

// ValidTimeout checks a per-upstream or per-tool call timeout: 0 (not
// set) or 100 ms to 24 h.
func ValidTimeout(d time.Duration) error {
	if d != 0 && (d < 100*time.Millisecond || d > MaxCallTimeout) {
		return fmt.Errorf("a call timeout must be between 100ms and 24h (or 0 for none), not %s", d)
	}
	return nil
}

var envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func validHeader(k, v string) error {
	if k == "" || strings.IndexFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}) >= 0 {
		return fmt.Errorf("invalid header name %q", clip(k))
	}
	if reservedHeaders[http.CanonicalHeaderKey(k)] {
		return fmt.Errorf("header %s is set by Ostiary and cannot be configured", http.CanonicalHeaderKey(k))
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("header %s: value contains a line break or NUL", http.CanonicalHeaderKey(k))
	}
	return nil
}

// DisplayURL is the URL as shown in listings and audit records: without
// user information or fragment, query values and token-shaped path
// segments masked (any may be a credential), nothing of a query that does not parse or has a name
// without a value, and nothing of a URL that does not parse.
func (u Upstream) DisplayURL() string {
	pu, err := url.Parse(u.URL)
	if err != nil {
		return "(invalid URL)"
	}
	pu.User = nil
	if pu.RawQuery != "" {
		q, err := url.ParseQuery(pu.RawQuery)
		for k, vs := range q {
			if strings.Join(vs, "") == "" { // a bare name may be a token itself
				err = errBadURL
			}
			q[k] = []string{"…"}
		}
		pu.RawQuery = q.Encode()
		if err != nil {
			pu.RawQuery = "…"
		}
	}
	pu.Fragment, pu.RawFragment = "", ""
	if segs := strings.Split(pu.Path, "/"); len(segs) > 0 {
		for i, seg := range segs {
			for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == ';' || r == '=' || r == ',' }) {
				if tokenShaped(part) {
					segs[i] = "…"
					break
				}
			}
		}
		pu.Path, pu.RawPath = strings.Join(segs, "/"), ""
	}
	return pu.String()
}

// Expose returns the name a client sees for the upstream tool name.
func (u Upstream) Expose(tool string) string {
	if u.Prefix == "" {
		return tool
	}
	return u.Prefix + "." + tool
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
