package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

var (
	_ authn.SubjectStore = (*Store)(nil)
	_ identity.IdPTx     = (*Tx)(nil)
	_ identity.IdPReader = (*Store)(nil)
)

// LookupSubject reads the user linked to (issuer, subject), with the
// user's roles and their grants, in one query.
func (s *Store) LookupSubject(ctx context.Context, issuer, subject string) (authn.Subject, error) {
	var out authn.Subject
	var roles, grants string
	err := s.r.QueryRowContext(ctx, `
		SELECT u.name, u.service, u.owner, u.disabled,
		       (SELECT json_group_array(r.name ORDER BY r.name) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id),
		       (SELECT json_group_array(DISTINCT g.grant_text) FROM user_roles ur JOIN role_grants g ON g.role_id = ur.role_id WHERE ur.user_id = u.id)
		FROM idp_subjects i JOIN users u ON u.id = i.user_id WHERE i.issuer = ? AND i.subject = ?`, issuer, subject).
		Scan(&out.User, &out.Service, &out.Owner, &out.UserDisabled, &roles, &grants)
	if err == sql.ErrNoRows {
		return out, fault.New(fault.NotFound, "no user is linked to this subject")
	}
	if err != nil {
		return out, classify("lookup subject", err)
	}
	if out.Roles, err = stringList(roles); err != nil {
		return out, classify("lookup subject", err)
	}
	if out.RoleGrants, err = grantList(grants); err != nil {
		return out, classify("lookup subject", err)
	}
	return out, nil
}

// GroupRoles lists every group mapping with the mapped role's grants.
func (s *Store) GroupRoles(ctx context.Context) ([]authn.GroupRole, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT m.grp, r.name, (SELECT json_group_array(g.grant_text) FROM role_grants g WHERE g.role_id = r.id)
		FROM idp_group_roles m JOIN roles r ON r.id = m.role_id ORDER BY m.grp, r.name`)
	if err != nil {
		return nil, classify("group roles", err)
	}
	defer rows.Close()
	var out []authn.GroupRole
	for rows.Next() {
		var gr authn.GroupRole
		var grants string
		if err := rows.Scan(&gr.Group, &gr.Role, &grants); err != nil {
			return nil, classify("group roles", err)
		}
		if gr.Grants, err = grantList(grants); err != nil {
			return nil, classify("group roles", err)
		}
		out = append(out, gr)
	}
	return out, classify("group roles", rows.Err())
}

func (s queries) ListGroupMappings(ctx context.Context) ([]identity.GroupMapping, error) {
	rows, err := s.q.QueryContext(ctx, `
		SELECT m.grp, r.name, m.created_at, m.created_by FROM idp_group_roles m JOIN roles r ON r.id = m.role_id ORDER BY m.grp, r.name`)
	if err != nil {
		return nil, classify("list group mappings", err)
	}
	defer rows.Close()
	var out []identity.GroupMapping
	for rows.Next() {
		var m identity.GroupMapping
		var created int64
		if err := rows.Scan(&m.Group, &m.Role, &created, &m.CreatedBy); err != nil {
			return nil, classify("list group mappings", err)
		}
		m.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, m)
	}
	return out, classify("list group mappings", rows.Err())
}

func (s queries) ListSubjectLinks(ctx context.Context) ([]identity.SubjectLink, error) {
	rows, err := s.q.QueryContext(ctx, `
		SELECT i.issuer, i.subject, u.name, i.created_at, i.created_by FROM idp_subjects i JOIN users u ON u.id = i.user_id ORDER BY u.name, i.issuer, i.subject`)
	if err != nil {
		return nil, classify("list subject links", err)
	}
	defer rows.Close()
	var out []identity.SubjectLink
	for rows.Next() {
		var l identity.SubjectLink
		var created int64
		if err := rows.Scan(&l.Issuer, &l.Subject, &l.User, &created, &l.CreatedBy); err != nil {
			return nil, classify("list subject links", err)
		}
		l.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, l)
	}
	return out, classify("list subject links", rows.Err())
}

func (t *Tx) InsertSubjectLink(ctx context.Context, l identity.SubjectLink) error {
	res, err := t.tx.ExecContext(ctx, "INSERT INTO idp_subjects (issuer, subject, user_id, created_at, created_by) SELECT ?, ?, id, ?, ? FROM users WHERE name = ?",
		l.Issuer, l.Subject, micros(l.CreatedAt), l.CreatedBy, l.User)
	if isUnique(err) {
		return fault.New(fault.Conflict, "this subject is already linked to a user")
	}
	if err != nil {
		return classify("link subject", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "user %q does not exist", l.User)
	}
	return nil
}

func (t *Tx) InsertGroupMapping(ctx context.Context, m identity.GroupMapping) error {
	res, err := t.tx.ExecContext(ctx, "INSERT INTO idp_group_roles (grp, role_id, created_at, created_by) SELECT ?, id, ?, ? FROM roles WHERE name = ?",
		m.Group, micros(m.CreatedAt), m.CreatedBy, m.Role)
	if isUnique(err) {
		return fault.New(fault.Conflict, "group %q is already mapped to role %q", m.Group, m.Role)
	}
	if err != nil {
		return classify("map group", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "role %q does not exist", m.Role)
	}
	return nil
}

func (t *Tx) DeleteGroupMapping(ctx context.Context, group, role string) error {
	res, err := t.tx.ExecContext(ctx, "DELETE FROM idp_group_roles WHERE grp = ? AND role_id = (SELECT id FROM roles WHERE name = ?)", group, role)
	if err != nil {
		return classify("unmap group", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "group %q is not mapped to role %q", group, role)
	}
	return nil
}
