package spec

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/ostiary/ostiary/internal/vault"
)

// errBadURL never quotes the URL: it may hold a credential.
var errBadURL = errors.New("invalid URL: want http(s)://host[:port]/path, without credentials or fragment")

// credentialHint says where an upstream credential goes instead of its URL.
const credentialHint = "store it with 'ostiary secrets set NAME --upstream UPSTREAM' (value on standard input) and send it in a header: --header 'Authorization=Bearer ${secret:NAME}'"

// checkURL checks an HTTP upstream's URL: its form, that it carries no
// credential, and that its host is allowed. Errors never repeat the URL,
// nor any part of it that may be a credential.
func (u Upstream) checkURL() error {
	pu, err := url.Parse(u.URL)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.Opaque != "" || pu.Fragment != "" {
		return errBadURL
	}
	if pu.User != nil {
		return fmt.Errorf("the URL carries a user name or password (user:password@host), which would be stored, listed and audited in clear: %s", credentialHint)
	}
	if err := queryCredential(pu.RawQuery); err != nil {
		return err
	}
	for _, seg := range strings.FieldsFunc(pu.Path, func(r rune) bool { return r == '/' || r == ';' || r == '=' || r == ',' }) {
		if tokenShaped(seg) {
			return fmt.Errorf("the URL's path holds what looks like a credential, which would be stored, listed and audited in clear: %s", credentialHint)
		}
	}
	host := pu.Hostname()
	if strings.IndexFunc(host, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		// IDNA mapping would turn fullwidth or circled digits into an
		// address only the dialer sees: the check must read what is dialled.
		return errors.New("the URL's host is not ASCII: write the name in its IDNA form (xn--…)")
	}
	if err := numericHost(host); err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err == nil { // a name is judged when dialled, on each address it resolves to
		switch v := judge(ip); {
		case v.reach == never:
			return fmt.Errorf("the URL points at %s, a %s address, which no upstream may reach", ip, v.class)
		case v.reach == private && !u.AllowPrivate:
			return fmt.Errorf("the URL points at %s, a %s address: give --allow-private if that is intended", ip, v.class)
		}
	}
	if pu.Scheme == "http" && !u.AllowPlainHTTP && !LoopbackHost(host) {
		return fmt.Errorf("the URL is plain http:// to %s, which is not a loopback address: anyone on the path reads and rewrites the calls; use https://, or give --allow-plain-http if that is intended", clip(host))
	}
	return nil
}

// credentialParams are query parameter names (lower case, without '-'
// and '_') that carry credentials by convention; credentialWords, parts of
// such names.
var (
	credentialParams = map[string]bool{"key": true, "auth": true, "sig": true, "pwd": true, "pass": true, "jwt": true,
		"bearer": true, "session": true}
	credentialWords = []string{"token", "secret", "passw", "apikey", "accesskey", "privatekey", "signature", "credential", "sessionid", "authorization"}
)

// queryCredential refuses a query that holds a credential: a parameter
// named like one, a value shaped like one, or a name without a value (a
// bare token, which listings and records would show as a name). Only a parameter's name is
// quoted, and only when it is not itself credential-shaped.
func queryCredential(raw string) error {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return errors.New("the URL's query is malformed")
	}
	for name, values := range q {
		shown := "a query parameter"
		if len(name) <= 32 && !vault.LooksLikeCredential(name) {
			shown = fmt.Sprintf("the query parameter %q", name)
		}
		if credentialName(name) {
			return fmt.Errorf("the URL's %s carries a credential, which would be stored, listed and audited in clear: %s", shown, credentialHint)
		}
		if strings.Join(values, "") == "" {
			return errors.New("the URL's query has a parameter without a value (?VALUE), which is how a bare token is passed: write it as name=value, or send a credential in a header: " + credentialHint)
		}
		for _, v := range values {
			if vault.LooksLikeCredential(v) || vault.LooksLikeCredential(name+"="+v) || tokenShaped(v) {
				return fmt.Errorf("the URL's %s holds what looks like a credential: %s", shown, credentialHint)
			}
		}
	}
	return nil
}

func credentialName(name string) bool {
	n := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(name))
	if credentialParams[n] {
		return true
	}
	for _, w := range credentialWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return vault.LooksLikeCredential(name)
}

// numericHost refuses a host that is an IPv4 address in a spelling other
// than dotted decimal: inet_aton's hexadecimal (0x7f000001), octal
// (0177.0.0.1), integer (2130706433) and shortened (127.1) forms, which
// some resolvers and URL parsers accept and netip does not. As in the
// WHATWG URL standard, a host whose last label is a number is an IPv4
// address, so it must be one in the form everyone reads alike.
func numericHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil || host == "" {
		return nil
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := strings.ToLower(labels[len(labels)-1])
	numeric := last != "" && strings.Trim(last, "0123456789") == ""
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		numeric = strings.Trim(h, "0123456789abcdef") == ""
	}
	if numeric {
		return fmt.Errorf("host %q ends in a number, so it is read as an IPv4 address, and not in its usual form: use the dotted-decimal form (such as 192.0.2.1), or a name", clip(host))
	}
	return nil
}

// LoopbackHost reports whether host is a literal loopback address or the
// name localhost (RFC 6761), where plain HTTP never leaves the machine.
// The dial-time guard still checks that it resolves to loopback.
func LoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// tokenPrefixes are how well-known services' tokens begin (GitHub, GitLab,
// Slack, Stripe, OpenAI-style, Google API keys, JWTs).
var tokenPrefixes = []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-",
	"sk_live_", "sk_test_", "rk_live_", "pk_live_", "sk-", "AIza", "eyJ"}

// tokenShaped reports whether s looks like a token: a well-known token
// prefix followed by at least 16 more characters, or 32 or more characters
// of a token alphabet mixing letters and digits (a random secret, not a
// word or a path a person would write).
func tokenShaped(s string) bool {
	for _, p := range tokenPrefixes {
		if strings.HasPrefix(s, p) && len(s) >= len(p)+16 {
			return true
		}
	}
	if len(s) < 32 {
		return false
	}
	var lower, upper, digit bool
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r == '-' || r == '_' || r == '.' || r == '~' || r == '+':
		default:
			return false
		}
	}
	return digit && (lower || upper) && (lower && upper || strings.ContainsAny(s, "0123456789"))
}

// ScrubURL replaces u's URL, wherever it appears in s (an error of the
// HTTP client quotes the URL it failed on), with its display form, so
// nothing of a URL that slipped through reaches a record or a log.
func ScrubURL(u Upstream, s string) string {
	if u.URL == "" {
		return s
	}
	return strings.ReplaceAll(s, u.URL, u.DisplayURL())
}
