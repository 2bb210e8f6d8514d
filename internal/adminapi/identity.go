package adminapi

import (
	"net/http"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

func (a *API) whoami(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	if _, err := a.Auditor.Write(r.Context(), audit.Entry{Record: p.Record(audit.EventWhoami, "user:"+p.User)}); err != nil {
		return 0, nil, err
	}
	v := Whoami{User: p.User, Service: p.Service, Roles: p.Roles, KeyID: p.KeyID, Environment: p.Environment, Grants: p.Perms.Roles.Strings(),
		Issuer: p.Issuer, Subject: p.Subject}
	if p.Perms.Scope != nil {
		v.Scope = p.Perms.Scope.Strings()
	}
	return http.StatusOK, v, nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	users, err := a.Identity.ListUsers(r.Context(), p)
	if users == nil {
		users = []identity.User{}
	}
	return http.StatusOK, UserList{Users: users}, err
}

func (a *API) showUser(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	u, err := a.Identity.GetUser(r.Context(), p, r.PathValue("name"))
	return http.StatusOK, u, err
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in identity.NewUser
	rec := p.Record(audit.EventUserCreate, "")
	if err := a.decode(w, r, rec, &in); err != nil {
		return 0, nil, err
	}
	if len(in.Roles) > 0 && a.Changes.Required(change.KindUserRoles) {
		rec.Target = "user:" + clip(in.Name, 64)
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Conflict,
			"a user's roles are reviewed here: create the user without roles, then 'users set-roles' opens a proposal"))
	}
	u, err := a.Identity.CreateUser(r.Context(), p, in)
	return http.StatusCreated, u, err
}

func (a *API) disableUser(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	u, err := a.Identity.SetDisabled(r.Context(), p, r.PathValue("name"), true)
	return http.StatusOK, u, err
}

func (a *API) enableUser(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	u, err := a.Identity.SetDisabled(r.Context(), p, r.PathValue("name"), false)
	return http.StatusOK, u, err
}

// SetRoles is POST /users/{name}/roles: the user's roles from now on.
type SetRoles struct {
	Roles  []string `json:"roles"`
	Reason string   `json:"reason,omitempty"` // why (required when the change is a proposal)
}

func (a *API) setUserRoles(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in SetRoles
	if err := a.decode(w, r, p.Record(identity.EventUserRoles, "user:"+r.PathValue("name")), &in); err != nil {
		return 0, nil, err
	}
	if code, body, done, err := a.propose(r, p, change.Request{Kind: change.KindUserRoles, User: r.PathValue("name"), Roles: in.Roles, Reason: in.Reason}); done {
		return code, body, err
	}
	u, err := a.Identity.SetRoles(r.Context(), p, r.PathValue("name"), in.Roles)
	return http.StatusOK, u, err
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	roles, err := a.Identity.ListRoles(r.Context(), p)
	out := RoleList{Roles: []RoleView{}}
	for _, role := range roles {
		out.Roles = append(out.Roles, roleView(role))
	}
	return http.StatusOK, out, err
}

func (a *API) createRole(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in identity.NewRole
	if err := a.decode(w, r, p.Record(audit.EventRoleCreate, ""), &in); err != nil {
		return 0, nil, err
	}
	role, err := a.Identity.CreateRole(r.Context(), p, in)
	return http.StatusCreated, roleView(role), err
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	keys, err := a.Identity.ListKeys(r.Context(), p, r.URL.Query().Get("user"))
	now := a.Now()
	out := KeyList{Keys: []KeyView{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyView(k, now))
	}
	return http.StatusOK, out, err
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in identity.NewKeyRequest
	if err := a.decode(w, r, p.Record(audit.EventKeyCreate, ""), &in); err != nil {
		return 0, nil, err
	}
	k, text, err := a.Identity.CreateKey(r.Context(), p, in)
	return http.StatusCreated, CreatedKey{Key: keyView(k, a.Now()), APIKey: text}, err
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	k, err := a.Identity.RevokeKey(r.Context(), p, r.PathValue("id"))
	return http.StatusOK, keyView(k, a.Now()), err
}

func (a *API) notFound(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	rec := p.Record(audit.EventAdminRequest, "")
	rec.Detail = map[string]any{"method": clip(r.Method, 16), "path": clip(r.URL.Path, 200)}
	return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.NotFound, "no such endpoint: %s %s", clip(r.Method, 16), clip(r.URL.Path, 200)))
}

// SetConsolePassword is PUT /users/{name}/console-password. The password is never recorded.
type SetConsolePassword struct {
	Password string `json:"password"`
}

func (a *API) setConsolePassword(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in SetConsolePassword
	name := r.PathValue("name")
	if err := a.decode(w, r, p.Record(identity.EventConsolePassword, "user:"+clip(name, 64)), &in); err != nil {
		return 0, nil, err
	}
	if err := a.Identity.SetConsolePassword(r.Context(), p, name, in.Password); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"user": name, "console_password": "set"}, nil
}
