package upstream

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Governing the requests an upstream makes of the user's client during a
// call (elicitation, sampling). They are refused unless the tool's labels
// (allow_elicitation, allow_sampling) or the policy allow them: an
// upstream may not ask the user for input, nor use the user's model, on
// the strength of a call alone. A URL-mode elicitation, which shows the
// user a link to open, must name an https URL (http only to loopback)
// without credentials, and when the operator keeps an allow-list of hosts
// (serve --elicit-url-allow), one of them; no label or rule overrides
// that. Judge is a function of the question, the Gate and what the
// policy's rules say of it.

// Reason codes of refused upstream requests.
const (
	ReasonElicitNotAllowed = "elicitation-not-allowed" // the tool's labels do not allow elicitation
	ReasonSampleNotAllowed = "sampling-not-allowed"    // the tool's labels do not allow sampling
	ReasonElicitMode       = "elicitation-mode-unknown"
	ReasonElicitURL        = "elicitation-url-invalid"      // not https (or http to loopback), or with credentials
	ReasonElicitURLHost    = "elicitation-url-host-refused" // not on the operator's allow-list
)

// Gate is what decides the requests of one call's upstream: the tool (for
// the record) and what its labels allow. The zero Gate refuses both.
type Gate struct {
	Tool        string // tool:NAME, prompt:NAME or resource:URI
	Elicitation bool   // the tool's labels allow elicitation
	Sampling    bool   // the tool's labels allow sampling
	URLAllow    *spec.HostAllow
	// Decide, if set, is the policy's say on a question: "allow" or
	// "deny" with the deciding rule's reason, or "" (the labels decide).
	Decide func(Question) (effect, reason string)
}

// Question is what the record says of an upstream's request: its kind
// (elicitation, sampling, roots), the elicitation's mode (form, url) and
// the URL's host only; Rule, the policy rule that allowed it, if one did.
type Question struct {
	Kind, Mode, URLHost string
	Rule                string
}

// Detail is q for an audit record's detail.
func (q Question) Detail(d map[string]any) {
	d["kind"] = q.Kind
	if q.Mode != "" {
		d["mode"] = q.Mode
	}
	if q.URLHost != "" {
		d["url_host"] = q.URLHost
	}
	if q.Rule != "" {
		d["policy_rule"] = q.Rule
	}
}

// Judge says whether method, with params (as the upstream sent them, or
// their JSON), may be put to the client under g: nil, or the refusal with
// its reason. It returns the Question for the record either way.
func (g Gate) Judge(method string, params any) (Question, *Refusal) {
	switch method {
	case "sampling/createMessage":
		return g.permit(method, Question{Kind: "sampling"}, g.Sampling)
	case "elicitation/create":
		q, refusal := g.elicitation(method, params)
		if refusal != nil {
			return q, refusal
		}
		return g.permit(method, q, g.Elicitation)
	default:
		return Question{Kind: Capability(method)}, nil
	}
}

// permit asks the policy, then the label: a deny rule refuses, an allow
// rule or the label lets q through.
func (g Gate) permit(method string, q Question, labelled bool) (Question, *Refusal) {
	if g.Decide != nil {
		switch effect, reason := g.Decide(q); effect {
		case "deny":
			return q, &Refusal{Reason: reason, Message: method + " refused by policy (" + reason + ")"}
		case "allow":
			q.Rule = reason
			return q, nil
		}
	}
	if labelled {
		return q, nil
	}
	if q.Kind == "sampling" {
		return q, &Refusal{Reason: ReasonSampleNotAllowed, Message: method + " refused: the tool is not labelled to allow sampling"}
	}
	return q, &Refusal{Reason: ReasonElicitNotAllowed, Message: method + " refused: the tool is not labelled to allow elicitation"}
}

// elicitation reads an elicitation's mode and URL: an unknown mode, or a
// URL the user may not be shown, is refused whatever allows elicitation.
func (g Gate) elicitation(method string, params any) (Question, *Refusal) {
	q := Question{Kind: "elicitation"}
	p, ok := params.(*mcp.ElicitParams)
	if !ok || p == nil {
		p = new(mcp.ElicitParams)
		b, err := json.Marshal(params)
		if err == nil {
			err = json.Unmarshal(b, p)
		}
		if err != nil {
			return q, &Refusal{Reason: ReasonElicitMode, Message: method + " refused: its parameters are malformed"}
		}
	}
	switch {
	case p.Mode == "url" || (p.Mode == "" && p.URL != ""):
		q.Mode = "url"
	case p.Mode == "" || p.Mode == "form":
		q.Mode = "form"
	default:
		return q, &Refusal{Reason: ReasonElicitMode, Message: method + " refused: unknown elicitation mode"}
	}
	if p.URL == "" && q.Mode == "form" {
		return q, nil
	}
	host, ok := elicitHost(p.URL)
	if !ok {
		return q, &Refusal{Reason: ReasonElicitURL, Message: method + " refused: the URL must be https:// (http:// only to loopback), without credentials"}
	}
	q.URLHost = host
	if g.URLAllow != nil && !g.URLAllow.Allows(host) {
		return q, &Refusal{Reason: ReasonElicitURLHost, Message: method + " refused: the URL's host is not on this server's allow-list"}
	}
	return q, nil
}

// elicitHost returns the lower-cased host of a URL the user may be shown:
// absolute, https (or http to loopback), no user information, an ASCII
// host. A URL that fails is never quoted: it may carry a credential.
func elicitHost(raw string) (string, bool) {
	if len(raw) > 8192 {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" || strings.IndexFunc(host, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return "", false
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !spec.LoopbackHost(host) {
			return "", false
		}
	default:
		return "", false
	}
	return host, true
}
