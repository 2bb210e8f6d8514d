package identity

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Audit events of sign-in with an identity provider.
const (
	EventIdPMap       = "idp-map"
	EventIdPUnmap     = "idp-unmap"
	EventIdPMappings  = "idp-mapping-list"
	EventIdPLink      = "idp-link"
	EventIdPLinks     = "idp-link-list"
	EventIdPProvision = "idp-user-provision"
)

// GroupMapping gives the members of an identity-provider group a role.
type GroupMapping struct {
	Group     string    `json:"group"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// SubjectLink ties an identity provider's subject to an Ostiary user.
type SubjectLink struct {
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	User      string    `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// IdPReader is the read side of mappings and links.
type IdPReader interface {
	ListGroupMappings(ctx context.Context) ([]GroupMapping, error)
	ListSubjectLinks(ctx context.Context) ([]SubjectLink, error)
}

// IdPTx is the write side, inside an audit transaction.
type IdPTx interface {
	InsertSubjectLink(ctx context.Context, l SubjectLink) error
	InsertGroupMapping(ctx context.Context, m GroupMapping) error
	DeleteGroupMapping(ctx context.Context, group, role string) error
}

// ValidGroup checks a group name as a token may carry it: 1–256 printable
// characters (group names are the provider's: paths, GUIDs, e-mail-like).
func ValidGroup(g string) error {
	if g == "" || len(g) > 256 || !utf8.ValidString(g) || strings.ContainsFunc(g, func(r rune) bool { return !unicode.IsPrint(r) }) || strings.TrimSpace(g) != g {
		return fmt.Errorf("invalid group %q: 1–256 printable characters, no leading or trailing space", clip(g))
	}
	return nil
}

func idpTx(tx audit.Tx) (IdPTx, TxStore, error) {
	it, ok := tx.(IdPTx)
	if !ok {
		return nil, nil, fmt.Errorf("identity: store transaction %T lacks identity-provider operations", tx)
	}
	ts, err := txStore(tx)
	return it, ts, err
}

func (s *Service) idpReader() (IdPReader, error) {
	r, ok := s.store.(IdPReader)
	if !ok {
		return nil, fmt.Errorf("identity: store %T lacks identity-provider reads", s.store)
	}
	return r, nil
}

// MapGroup gives members of group the role, from their next request on.
// The caller must hold every grant the role carries: mapping a group is
// handing the role out.
func (s *Service) MapGroup(ctx context.Context, p *authn.Principal, group, role string) (GroupMapping, error) {
	rec := p.Record(EventIdPMap, target("role", role))
	rec.Detail = map[string]any{"group": group, "role": role}
	if err := ValidGroup(group); err != nil {
		return GroupMapping{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	if err := ValidName("role", role); err != nil {
		return GroupMapping{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	m := GroupMapping{Group: group, Role: role, CreatedAt: s.now().UTC(), CreatedBy: p.User}
	err := s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, _ *audit.Record) error {
		it, ok := tx.(IdPTx)
		if !ok {
			return fmt.Errorf("identity: store transaction %T lacks identity-provider operations", tx)
		}
		gs, err := grantsOf(ctx, tx, []string{role})
		if err != nil {
			return err
		}
		if err := mayHandOut(p, gs, "mapping group "+group+" to role "+role); err != nil {
			return err
		}
		return it.InsertGroupMapping(ctx, m)
	})
	return m, err
}

// UnmapGroup removes a mapping; members lose the role on their next
// request, whatever their token's lifetime. Like disabling a user, it
// needs the grants the role carries.
func (s *Service) UnmapGroup(ctx context.Context, p *authn.Principal, group, role string) error {
	rec := p.Record(EventIdPUnmap, target("role", role))
	rec.Detail = map[string]any{"group": group, "role": role}
	return s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, _ *audit.Record) error {
		it, ok := tx.(IdPTx)
		if !ok {
			return fmt.Errorf("identity: store transaction %T lacks identity-provider operations", tx)
		}
		gs, err := grantsOf(ctx, tx, []string{role})
		if err != nil {
			return err
		}
		if err := mayHandOut(p, gs, "unmapping role "+role); err != nil {
			return err
		}
		return it.DeleteGroupMapping(ctx, group, role)
	})
}

// ListGroupMappings lists every mapping.
func (s *Service) ListGroupMappings(ctx context.Context, p *authn.Principal) ([]GroupMapping, error) {
	r, err := s.idpReader()
	if err != nil {
		return nil, err
	}
	return read(ctx, s, p, p.Record(EventIdPMappings, ""), authz.ManageIdentities, func() ([]GroupMapping, error) {
		return r.ListGroupMappings(ctx)
	})
}

// ListSubjectLinks lists which subjects are linked to which users.
func (s *Service) ListSubjectLinks(ctx context.Context, p *authn.Principal) ([]SubjectLink, error) {
	r, err := s.idpReader()
	if err != nil {
		return nil, err
	}
	return read(ctx, s, p, p.Record(EventIdPLinks, ""), authz.ManageIdentities, func() ([]SubjectLink, error) {
		return r.ListSubjectLinks(ctx)
	})
}

// LinkSubject ties (issuer, subject) to an existing user: how a
// pre-created user signs in with --oidc-users existing, or how an account
// whose name a new subject would have taken is given to it on purpose.
// With roleless (users' roles are reviewed), a user who holds roles is
// refused: whoever signs in as the subject would get them unreviewed.
func (s *Service) LinkSubject(ctx context.Context, p *authn.Principal, user, issuer, subject string, roleless bool) (SubjectLink, error) {
	rec := p.Record(EventIdPLink, target("user", user))
	rec.Detail = map[string]any{"issuer": issuer, "subject": subject}
	if issuer == "" || subject == "" || len(subject) > 255 || len(issuer) > 2048 {
		return SubjectLink{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "an issuer URL and a subject (at most 255 characters) are required"))
	}
	l := SubjectLink{Issuer: issuer, Subject: subject, User: user, CreatedAt: s.now().UTC(), CreatedBy: p.User}
	err := s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, _ *audit.Record) error {
		it, ok := tx.(IdPTx)
		if !ok {
			return fmt.Errorf("identity: store transaction %T lacks identity-provider operations", tx)
		}
		u, err := tx.UserByName(ctx, user)
		if err != nil {
			return err
		}
		if roleless && len(u.Roles) > 0 {
			return fault.New(fault.Conflict, "users' roles are reviewed here, and %s holds roles: a subject linked to them would get those roles unreviewed "+
				"(link a user without roles, then 'users set-roles' opens a proposal)", user)
		}
		// Whoever signs in as the subject will act as this user: the
		// caller must hold what the user holds.
		gs, err := grantsOf(ctx, tx, u.Roles)
		if err != nil {
			return err
		}
		if err := mayHandOut(p, gs, "linking user "+user); err != nil {
			return err
		}
		return it.InsertSubjectLink(ctx, l)
	})
	return l, err
}

// ProvisionSubject creates a user for a subject seen for the first time
// (just-in-time) and links it, in the transaction of its audit record,
// which names the issuer and subject. It holds no role of its own: its
// groups' mappings give it what it may do. A taken name is a Conflict,
// never a link to the existing user.
func (s *Service) ProvisionSubject(ctx context.Context, in authn.NewSubject) error {
	if err := ValidName("user", in.Name); err != nil {
		return fault.New(fault.Invalid, "%s", err)
	}
	now := s.now().UTC()
	rec := audit.Record{Event: EventIdPProvision, Outcome: audit.Success, Actor: "system", KeyID: authn.TokenKeyID(in.Issuer, in.Subject),
		Target: target("user", in.Name), Detail: map[string]any{"issuer": in.Issuer, "subject": in.Subject, "service": in.Service}}
	_, err := s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		it, ts, err := idpTx(tx)
		if err != nil {
			return err
		}
		if err := ts.InsertUser(ctx, User{Name: in.Name, Service: in.Service, CreatedAt: now, CreatedBy: "idp"}); err != nil {
			return err
		}
		return it.InsertSubjectLink(ctx, SubjectLink{Issuer: in.Issuer, Subject: in.Subject, User: in.Name, CreatedAt: now, CreatedBy: "idp"})
	}})
	s.cache.Invalidate()
	return err
}
