package spec

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/ostiary/ostiary/internal/vault"
)

// OpenAPI is an HTTP API described by an OpenAPI document, whose
// operations are tools: how the document is had and which operations are
// exposed, and the credential every request carries. The API's base URL
// is the upstream's URL, under the same address rules, TLS options and
// static headers as an MCP server's.
type OpenAPI struct {
	// Source is the http(s) URL the document is fetched from at each sync
	// (through the upstream's address policy); "" when it was given as a
	// file, stored in Document.
	Source string `json:"source,omitempty"`
	// Document is the document as last given by an admin (Source ""), the
	// contract reviewed: JSON or YAML.
	Document string `json:"document,omitempty"`
	// Operations selects the operations exposed, each by its operationId or
	// as "METHOD /path"; none: every operation.
	Operations []string `json:"operations,omitempty"`
	// Auth is the credential each request carries, from the vault.
	Auth *HTTPAuth `json:"auth,omitempty"`
}

// BindingMetaKey is the _meta key of an OpenAPI tool's binding, pinned
// with its definition.
const BindingMetaKey = "io.ostiary/openapi"

// MaxDocument bounds an OpenAPI document, given or fetched.
const MaxDocument = 4 << 20

// The kinds of HTTPAuth.
const (
	AuthBearer      = "bearer" // Authorization: Bearer SECRET
	AuthBasic       = "basic"  // Authorization: Basic base64(USER:SECRET)
	AuthHeader      = "header" // NAME: SECRET (an API key header)
	AuthQuery       = "query"  // ?NAME=SECRET (an API key in the query)
	AuthOAuth2      = "oauth2" // OAuth 2.0 client credentials at TokenURL; SECRET is the client secret
	authSecretRules = "a vault secret name (letters, digits, '_', '.', '-')"
)

// HTTPAuth is the credential an OpenAPI upstream's requests carry. Only
// the names of secrets are configured; their values come from the vault
// per call, in the caller's environment, and are redacted from whatever
// comes back.
type HTTPAuth struct {
	Type     string   `json:"type"`
	Secret   string   `json:"secret"`              // the vault secret: token, key, password or client secret
	Name     string   `json:"name,omitempty"`      // header: the header; query: the parameter
	User     string   `json:"user,omitempty"`      // basic: the user name
	TokenURL string   `json:"token_url,omitempty"` // oauth2
	ClientID string   `json:"client_id,omitempty"` // oauth2
	Scopes   []string `json:"scopes,omitempty"`    // oauth2
}

var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ParseAuth reads the CLI's --auth: bearer:SECRET, basic:USER:SECRET,
// header:NAME:SECRET, query:NAME:SECRET or
// oauth2:CLIENT_ID:SECRET@TOKEN_URL[#SCOPE,SCOPE].
func ParseAuth(s string) (*HTTPAuth, error) {
	typ, rest, _ := strings.Cut(s, ":")
	a := &HTTPAuth{Type: typ}
	switch typ {
	case AuthBearer:
		a.Secret = rest
	case AuthBasic:
		a.User, a.Secret, _ = strings.Cut(rest, ":")
	case AuthHeader, AuthQuery:
		a.Name, a.Secret, _ = strings.Cut(rest, ":")
	case AuthOAuth2:
		var tokenURL string
		a.ClientID, rest, _ = strings.Cut(rest, ":")
		a.Secret, tokenURL, _ = strings.Cut(rest, "@")
		tokenURL, scopes, _ := strings.Cut(tokenURL, "#")
		a.TokenURL = tokenURL
		if scopes != "" {
			a.Scopes = strings.Split(scopes, ",")
		}
	default:
		return nil, errors.New("--auth: want bearer:SECRET, basic:USER:SECRET, header:NAME:SECRET, query:NAME:SECRET or oauth2:CLIENT_ID:SECRET@TOKEN_URL[#SCOPES], where SECRET names a vault secret")
	}
	return a, a.validate(false)
}

// validate checks the credential's configuration; allowPrivate is the
// upstream's, which also governs where its token URL may be.
func (a *HTTPAuth) validate(allowPrivate bool) error {
	if !secretNameRE.MatchString(a.Secret) {
		return fmt.Errorf("auth %s: the secret must be %s, not a value: store it with 'ostiary secrets set NAME --upstream UPSTREAM'", clip(a.Type), authSecretRules)
	}
	tokenish := func(what, v string) error {
		if v == "" || len(v) > 128 || strings.ContainsAny(v, "\r\n\x00:") || vault.LooksLikeCredential(v) || tokenShaped(v) {
			return fmt.Errorf("auth %s: invalid %s (1–128 characters, no ':', no line break, not a credential)", a.Type, what)
		}
		return nil
	}
	switch a.Type {
	case AuthBearer:
	case AuthBasic:
		return tokenish("user name", a.User)
	case AuthHeader:
		if a.Name == "" || len(a.Name) > 128 || strings.ContainsFunc(a.Name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
		}) {
			return fmt.Errorf("auth header: invalid header name %q", clip(a.Name))
		}
		if c := http.CanonicalHeaderKey(a.Name); reservedHeaders[c] || c == "Cookie" || c == "Proxy-Authorization" {
			return fmt.Errorf("auth header: header %s is set by Ostiary or HTTP and cannot carry the credential", c)
		}
	case AuthQuery:
		if err := tokenish("parameter name", a.Name); err != nil || url.QueryEscape(a.Name) != a.Name {
			return errors.New("auth query: invalid parameter name (letters, digits, '_', '-', '.')")
		}
	case AuthOAuth2:
		if err := tokenish("client id", a.ClientID); err != nil {
			return err
		}
		for _, s := range a.Scopes {
			if s == "" || len(s) > 128 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' }) {
				return errors.New("auth oauth2: invalid scope")
			}
		}
		tu := Upstream{URL: a.TokenURL, AllowPrivate: allowPrivate}
		if err := tu.checkURL(); err != nil {
			return fmt.Errorf("auth oauth2: token URL: %w", err)
		}
		if pu, _ := url.Parse(a.TokenURL); pu != nil && pu.RawQuery != "" {
			return errors.New("auth oauth2: the token URL takes no query")
		}
	default:
		return fmt.Errorf("unknown auth type %q: want bearer, basic, header, query or oauth2", clip(a.Type))
	}
	return nil
}

// TokenPolicy is where an OAuth 2.0 token URL may be dialled: the
// upstream's private-address permission, never plain HTTP off loopback.
func (a *HTTPAuth) TokenPolicy(allowPrivate bool) DialPolicy {
	return Upstream{URL: a.TokenURL, AllowPrivate: allowPrivate}.DialPolicy()
}

// Summary is the credential as recorded and listed: its kind and names,
// never a value.
func (a *HTTPAuth) Summary() map[string]any {
	if a == nil {
		return nil
	}
	m := map[string]any{"type": a.Type, "secret": a.Secret}
	if a.Name != "" {
		m["name"] = a.Name
	}
	if a.User != "" {
		m["user"] = a.User
	}
	if a.TokenURL != "" {
		m["token_url"] = Upstream{URL: a.TokenURL}.DisplayURL()
		m["client_id"] = a.ClientID
	}
	return m
}

// validOpenAPI checks an OpenAPI upstream: a base URL under the HTTP
// rules, a document given or a URL to fetch it from (under the same
// rules), the selected operations and the credential. Whether the
// document maps to tools is the connector's to say (Admit, the sync).
func (u Upstream) validOpenAPI() error {
	o := u.OpenAPI
	if o == nil {
		return errors.New("an OpenAPI upstream needs --openapi")
	}
	if len(u.Command) > 0 || len(u.Env) > 0 {
		return errors.New("an OpenAPI upstream takes --base-url and --header, not --command or --env")
	}
	if u.URL == "" {
		return errors.New("an OpenAPI upstream needs --base-url: where its operations are called")
	}
	if err := u.checkURL(); err != nil {
		return fmt.Errorf("base URL: %w", err)
	}
	if pu, _ := url.Parse(u.URL); pu != nil && pu.RawQuery != "" {
		return errors.New("base URL: an OpenAPI upstream's base URL takes no query")
	}
	switch {
	case (o.Source == "") == (o.Document == ""):
		return errors.New("give the OpenAPI document as a file or as a URL, one of them")
	case len(o.Document) > MaxDocument:
		return fmt.Errorf("the OpenAPI document is larger than %d MiB", MaxDocument>>20)
	case o.Source != "":
		src := Upstream{URL: o.Source, AllowPrivate: u.AllowPrivate, AllowPlainHTTP: u.AllowPlainHTTP}
		if err := src.checkURL(); err != nil {
			return fmt.Errorf("document URL: %w", err)
		}
	}
	if len(o.Operations) > 1000 {
		return errors.New("at most 1000 operations may be selected")
	}
	for _, op := range o.Operations {
		if op == "" || len(op) > 512 || strings.ContainsAny(op, "\r\n\x00") {
			return fmt.Errorf("invalid operation %q: an operationId or \"METHOD /path\"", clip(op))
		}
	}
	for k, v := range u.Headers {
		if err := validHeader(k, v); err != nil {
			return err
		}
		if err := notLiteralCredential("header "+http.CanonicalHeaderKey(k), credentialHeaders[http.CanonicalHeaderKey(k)], v); err != nil {
			return err
		}
	}
	if o.Auth != nil {
		if err := o.Auth.validate(u.AllowPrivate); err != nil {
			return err
		}
		if o.Auth.Type == AuthHeader && u.Headers[o.Auth.Name] != "" {
			return fmt.Errorf("header %s is both a static header and the credential", o.Auth.Name)
		}
	}
	return u.TLS.validate(u.URL)
}

// DocumentSource is the document's origin as shown: its URL's display
// form, or "(stored)".
func (o *OpenAPI) DocumentSource() string {
	if o == nil {
		return ""
	}
	if o.Source != "" {
		return Upstream{URL: o.Source}.DisplayURL()
	}
	return "(stored)"
}
