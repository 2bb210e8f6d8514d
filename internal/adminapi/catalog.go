package adminapi

import (
	"net/http"
	"slices"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// UpstreamView is an upstream as listed: header and environment values,
// which may be credentials, are never returned, only their names.
type UpstreamView struct {
	Name         string   `json:"name"`
	Prefix       string   `json:"prefix"`
	Kind         string   `json:"kind"`
	URL          string   `json:"url,omitempty"`
	Command      []string `json:"command,omitempty"`
	AllowPrivate bool     `json:"allow_private"`
	// AllowPlainHTTP: reached over http:// at a non-loopback address.
	AllowPlainHTTP bool      `json:"allow_plain_http"`
	TLS            TLSView   `json:"tls"`
	CallTimeout    string    `json:"call_timeout,omitempty"` // Go duration; absent: the server's
	OnChange       string    `json:"on_change"`              // refuse or keep-pinned
	HeaderNames    []string  `json:"header_names"`
	EnvNames       []string  `json:"env_names"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
	// OpenAPI: an HTTP API's document and credential (kind openapi); URL
	// is then its base URL.
	OpenAPI *OpenAPIView `json:"openapi,omitempty"`
	// TokenExchange: each caller's identity-provider token is exchanged
	// for one issued to this audience (the client secret by reference).
	TokenExchange *spec.TokenExchange `json:"token_exchange,omitempty"`
}

// OpenAPIView is an OpenAPI upstream's document and credential as listed:
// the secret's name, never a value.
type OpenAPIView struct {
	Source     string         `json:"source"` // the document's URL, or "(stored)"
	Operations []string       `json:"operations"`
	Auth       map[string]any `json:"auth,omitempty"`
}

// TLSView summarises an upstream's TLS options.
type TLSView struct {
	CustomCA           bool   `json:"custom_ca"`                     // verified against its own CA bundle, not the system roots
	ClientCertSubject  string `json:"client_cert_subject,omitempty"` // mutual TLS: the certificate presented
	ClientKeySecret    string `json:"client_key_secret,omitempty"`   // and the vault secret holding its key
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
}

// UpstreamList is GET /upstreams.
type UpstreamList struct {
	Upstreams []UpstreamView `json:"upstreams"`
}

// NewUpstream is POST /upstreams. A null or absent prefix means "the
// upstream's name"; an empty one exposes its tools unprefixed.
type NewUpstream struct {
	Name    string            `json:"name"`
	Prefix  *string           `json:"prefix"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	// Command is a stdio upstream's command as a JSON list: first the
	// absolute path of a program on the server's --stdio-allow list, then
	// each argument, passed as it is (a string is refused: nothing is
	// split or interpreted).
	Command []string `json:"command"`
	// Env holds its environment variables; names that change how programs
	// load code (LD_*, NODE_OPTIONS, PATH…) are refused.
	Env map[string]string `json:"env"`
	// AllowPrivate lets the upstream be reached at non-public addresses.
	AllowPrivate bool `json:"allow_private"`
	// AllowPlainHTTP lets an http:// upstream be reached at a non-loopback
	// address, unencrypted (refused by default; recorded).
	AllowPlainHTTP bool `json:"allow_plain_http"`
	// TLS verifies an https upstream (ca: PEM bundle; insecure_skip_verify:
	// loopback only) and may present a client certificate (client_cert:
	// PEM chain; client_key_secret: the vault secret holding its key).
	TLS spec.TLS `json:"tls"`
	// CallTimeout bounds its tool calls, as a Go duration ("30s"); the
	// server's bound still caps it.
	CallTimeout string `json:"call_timeout"`
	// OnChange is what calls of a tool whose definition changed upstream
	// do until it is reviewed: "refuse" (default) or "keep-pinned".
	OnChange string `json:"on_change"`
	// An HTTP API described by an OpenAPI document (3.0 or 3.1): the
	// document's http(s) URL, fetched at each sync (openapi), or the
	// document itself, JSON or YAML (openapi_document); the base URL its
	// operations are called at; the operations exposed (operationId or
	// "METHOD /path"; none: all); the credential from the vault.
	OpenAPI         string         `json:"openapi"`
	OpenAPIDocument string         `json:"openapi_document"`
	BaseURL         string         `json:"base_url"`
	Operations      []string       `json:"operations"`
	Auth            *spec.HTTPAuth `json:"auth"`
	// TokenExchange (HTTP upstreams): send each caller's identity-provider
	// token exchanged (RFC 8693) for one issued to audience, by Ostiary's
	// client there (client_id; client_secret a ${secret:NAME} reference).
	TokenExchange *spec.TokenExchange `json:"token_exchange"`
}

// AddedUpstream is the answer to POST /upstreams.
type AddedUpstream struct {
	Upstream UpstreamView       `json:"upstream"`
	Sync     catalog.SyncReport `json:"sync"`
}

// ToolView is a catalog entry.
type ToolView struct {
	Name         string `json:"name"`
	Upstream     string `json:"upstream"`
	UpstreamTool string `json:"upstream_tool"`
	Version      int    `json:"version"`
	Digest       string `json:"digest"`
	Pending      int    `json:"pending_versions"`
	Vanished     bool   `json:"vanished"`
	// State: ok, vanished, pending (new: no version active yet), changed
	// (calls refused until review) or changed-keep-pinned.
	State       string `json:"state"`
	CallTimeout string `json:"call_timeout,omitempty"` // its own, if set
	Description string `json:"description,omitempty"`
	// Labels are Ostiary's governance labels; null: not labelled, and
	// Hints (the upstream's annotations) stand in.
	Labels *policy.Labels `json:"labels"`
	Hints  policy.Hints   `json:"hints"`
}

// ToolLabels is POST /tools/labels: a tool's labels in full (null clears
// them).
type ToolLabels struct {
	Tool   string         `json:"tool"`
	Labels *policy.Labels `json:"labels"`
	Reason string         `json:"reason,omitempty"` // why (required when the change is a proposal)
}

// ToolList is GET /tools.
type ToolList struct {
	Tools []ToolView `json:"tools"`
}

// VersionList is GET /tools/versions.
type VersionList struct {
	Tool     string            `json:"tool"`
	Versions []catalog.Version `json:"versions"`
}

// ToolTimeout is POST /tools/timeout: a Go duration, "0" to clear.
type ToolTimeout struct {
	Tool    string `json:"tool"`
	Timeout string `json:"timeout"`
}

// Activation is POST /tools/activate.
type Activation struct {
	Tool    string `json:"tool"`
	Version int    `json:"version"`
	Reason  string `json:"reason,omitempty"` // why (required when the change is a proposal)
}

func upstreamView(u spec.Upstream) UpstreamView {
	v := UpstreamView{Name: u.Name, Prefix: u.Prefix, Kind: string(u.Kind), URL: u.DisplayURL(), Command: u.Command, AllowPrivate: u.AllowPrivate, AllowPlainHTTP: u.AllowPlainHTTP, OnChange: u.OnChange,
		HeaderNames: []string{}, EnvNames: []string{}, CreatedAt: u.CreatedAt, CreatedBy: u.CreatedBy,
		TLS: TLSView{CustomCA: u.TLS.CA != "", ClientCertSubject: u.TLS.ClientSubject(), ClientKeySecret: u.TLS.ClientKeySecret,
			InsecureSkipVerify: u.TLS.InsecureSkipVerify}}
	if u.CallTimeout > 0 {
		v.CallTimeout = u.CallTimeout.String()
	}
	if v.OnChange == "" {
		v.OnChange = spec.OnChangeRefuse
	}
	for k := range u.Headers {
		v.HeaderNames = append(v.HeaderNames, k)
	}
	for k := range u.Env {
		v.EnvNames = append(v.EnvNames, k)
	}
	slices.Sort(v.HeaderNames)
	slices.Sort(v.EnvNames)
	v.TokenExchange = u.TokenExchange
	if o := u.OpenAPI; o != nil {
		v.OpenAPI = &OpenAPIView{Source: o.DocumentSource(), Operations: append([]string{}, o.Operations...), Auth: o.Auth.Summary()}
	}
	return v
}

func (a *API) listUpstreams(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	ups, err := a.Catalog.ListUpstreams(r.Context(), p)
	out := UpstreamList{Upstreams: []UpstreamView{}}
	for _, u := range ups {
		out.Upstreams = append(out.Upstreams, upstreamView(u))
	}
	return http.StatusOK, out, err
}

func (a *API) addUpstream(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in NewUpstream
	if err := a.decode(w, r, p.Record(catalog.EventUpstreamAdd, ""), &in); err != nil {
		return 0, nil, err
	}
	u := spec.Upstream{Name: in.Name, Prefix: in.Name, URL: in.URL, Headers: in.Headers, Command: in.Command, Env: in.Env, AllowPrivate: in.AllowPrivate,
		AllowPlainHTTP: in.AllowPlainHTTP, TLS: in.TLS, OnChange: in.OnChange, TokenExchange: in.TokenExchange}
	if in.CallTimeout != "" {
		d, err := time.ParseDuration(in.CallTimeout)
		if err != nil {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(catalog.EventUpstreamAdd, "upstream:"+in.Name),
				fault.New(fault.Invalid, "call_timeout: want a duration such as 30s or 2m"))
		}
		u.CallTimeout = d
	}
	if in.Prefix != nil {
		u.Prefix = *in.Prefix
	}
	openAPI := in.OpenAPI != "" || in.OpenAPIDocument != "" || in.BaseURL != "" || len(in.Operations) > 0 || in.Auth != nil
	switch {
	case openAPI && in.URL == "" && len(in.Command) == 0:
		u.Kind, u.URL = spec.HTTPAPI, in.BaseURL
		u.OpenAPI = &spec.OpenAPI{Source: in.OpenAPI, Document: in.OpenAPIDocument, Operations: in.Operations, Auth: in.Auth}
	case openAPI:
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(catalog.EventUpstreamAdd, "upstream:"+in.Name),
			fault.New(fault.Invalid, "an OpenAPI upstream takes base_url, not url or command"))
	case in.URL != "" && len(in.Command) == 0:
		u.Kind = spec.HTTP
	case in.URL == "" && len(in.Command) > 0:
		u.Kind = spec.Stdio
	}
	u, rep, err := a.Catalog.AddUpstream(r.Context(), p, u)
	return http.StatusCreated, AddedUpstream{Upstream: upstreamView(u), Sync: rep}, err
}

func (a *API) removeUpstream(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	name := r.PathValue("name")
	err := a.Catalog.RemoveUpstream(r.Context(), p, name)
	return http.StatusOK, map[string]string{"removed": name}, err
}

func (a *API) syncUpstream(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	rep, err := a.Catalog.SyncUpstream(r.Context(), p, r.PathValue("name"))
	return http.StatusOK, rep, err
}

// OpenAPIDocument is PUT /upstreams/{name}/openapi: the new document of an
// OpenAPI upstream added with one (JSON or YAML); the answer is its sync.
type OpenAPIDocument struct {
	Document string `json:"document"`
}

func (a *API) setDocument(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in OpenAPIDocument
	name := r.PathValue("name")
	if err := a.decode(w, r, p.Record(catalog.EventUpstreamDoc, "upstream:"+name), &in); err != nil {
		return 0, nil, err
	}
	rep, err := a.Catalog.SetDocument(r.Context(), p, name, []byte(in.Document))
	return http.StatusOK, rep, err
}

func (a *API) listTools(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	entries, err := a.Catalog.ListTools(r.Context(), p, r.URL.Query().Get("as"))
	out := ToolList{Tools: []ToolView{}}
	for _, e := range entries {
		v := ToolView{Name: e.Name, Upstream: e.Upstream, UpstreamTool: e.UpstreamTool, Version: e.Version,
			Digest: e.Digest, Pending: e.Pending, Vanished: e.Vanished, State: e.State(), Labels: e.Labels, Hints: e.Hints}
		if e.Tool != nil { // nil: held for review, no version active
			v.Description = e.Tool.Description
		}
		if e.CallTimeout > 0 {
			v.CallTimeout = e.CallTimeout.String()
		}
		out.Tools = append(out.Tools, v)
	}
	return http.StatusOK, out, err
}

func (a *API) toolVersions(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	name := r.URL.Query().Get("tool")
	if name == "" {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(catalog.EventToolVersions, ""), fault.New(fault.Invalid, "the query parameter tool is required"))
	}
	vs, err := a.Catalog.Versions(r.Context(), p, name)
	if vs == nil {
		vs = []catalog.Version{}
	}
	return http.StatusOK, VersionList{Tool: name, Versions: vs}, err
}

func (a *API) activateTool(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in Activation
	if err := a.decode(w, r, p.Record(catalog.EventToolActivated, ""), &in); err != nil {
		return 0, nil, err
	}
	if code, body, done, err := a.propose(r, p, change.Request{Kind: change.KindToolVersion, Tool: in.Tool, Version: in.Version, Reason: in.Reason}); done {
		return code, body, err
	}
	err := a.Catalog.Activate(r.Context(), p, in.Tool, in.Version)
	return http.StatusOK, in, err
}

func (a *API) setToolTimeout(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in ToolTimeout
	rec := p.Record(catalog.EventToolTimeout, "")
	if err := a.decode(w, r, rec, &in); err != nil {
		return 0, nil, err
	}
	d, err := time.ParseDuration(in.Timeout)
	if in.Timeout == "0" {
		d, err = 0, nil
	}
	if err != nil {
		rec.Target = "tool:" + in.Tool
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Invalid, "timeout: want a duration such as 30s or 2m, or 0 to clear"))
	}
	err = a.Catalog.SetTimeout(r.Context(), p, in.Tool, d)
	return http.StatusOK, in, err
}

func (a *API) setToolLabels(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in ToolLabels
	if err := a.decode(w, r, p.Record(catalog.EventToolLabels, ""), &in); err != nil {
		return 0, nil, err
	}
	if code, body, done, err := a.propose(r, p, change.Request{Kind: change.KindToolLabels, Tool: in.Tool, Labels: in.Labels, Reason: in.Reason}); done {
		return code, body, err
	}
	err := a.Catalog.SetLabels(r.Context(), p, in.Tool, in.Labels)
	return http.StatusOK, in, err
}
