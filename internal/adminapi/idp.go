package adminapi

import (
	"net/http"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// GroupMappingRequest asks for a group-to-role mapping to be added or removed.
type GroupMappingRequest struct {
	Group string `json:"group"`
	Role  string `json:"role"`
}

// GroupMappingList lists the mappings.
type GroupMappingList struct {
	Mappings []identity.GroupMapping `json:"mappings"`
}

// SubjectLinkRequest links a provider's subject to a user.
type SubjectLinkRequest struct {
	User    string `json:"user"`
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

// SubjectLinkList lists the links.
type SubjectLinkList struct {
	Links []identity.SubjectLink `json:"links"`
}

func (a *API) listGroupMappings(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	ms, err := a.Identity.ListGroupMappings(r.Context(), p)
	if ms == nil {
		ms = []identity.GroupMapping{}
	}
	return http.StatusOK, GroupMappingList{Mappings: ms}, err
}

func (a *API) mapGroup(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in GroupMappingRequest
	rec := p.Record(identity.EventIdPMap, "")
	if err := a.decode(w, r, rec, &in); err != nil {
		return 0, nil, err
	}
	if a.Changes.Required(change.KindUserRoles) { // a mapping hands a role to every member of the group, unreviewed
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Conflict,
			"users' roles are reviewed here, so identity-provider group mappings cannot be added (they would grant roles unreviewed)"))
	}
	m, err := a.Identity.MapGroup(r.Context(), p, in.Group, in.Role)
	return http.StatusCreated, m, err
}

func (a *API) unmapGroup(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in GroupMappingRequest
	if err := a.decode(w, r, p.Record(identity.EventIdPUnmap, ""), &in); err != nil {
		return 0, nil, err
	}
	err := a.Identity.UnmapGroup(r.Context(), p, in.Group, in.Role)
	return http.StatusOK, in, err
}

func (a *API) listSubjectLinks(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	ls, err := a.Identity.ListSubjectLinks(r.Context(), p)
	if ls == nil {
		ls = []identity.SubjectLink{}
	}
	return http.StatusOK, SubjectLinkList{Links: ls}, err
}

func (a *API) linkSubject(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in SubjectLinkRequest
	if err := a.decode(w, r, p.Record(identity.EventIdPLink, ""), &in); err != nil {
		return 0, nil, err
	}
	l, err := a.Identity.LinkSubject(r.Context(), p, in.User, in.Issuer, in.Subject, a.Changes.Required(change.KindUserRoles))
	return http.StatusCreated, l, err
}
