package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

var (
	_ catalog.Store   = (*Store)(nil)
	_ catalog.TxStore = (*Tx)(nil)
)

func (s queries) ListUpstreams(ctx context.Context) ([]spec.Upstream, error) {
	return s.upstreams(ctx, "")
}

func (s queries) UpstreamByName(ctx context.Context, name string) (spec.Upstream, error) {
	ups, err := s.upstreams(ctx, "WHERE name = ?", name)
	if err != nil {
		return spec.Upstream{}, err
	}
	if len(ups) == 0 {
		return spec.Upstream{}, fault.New(fault.NotFound, "upstream %q does not exist", name)
	}
	return ups[0], nil
}

func (s queries) upstreams(ctx context.Context, where string, args ...any) ([]spec.Upstream, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT name, prefix, kind, url, headers, command, env, allow_private, allow_plain_http, tls, call_timeout_ms, on_change, created_at, created_by, synced_at, openapi, token_exchange
		FROM upstreams `+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, classify("list upstreams", err)
	}
	defer rows.Close()
	var out []spec.Upstream
	for rows.Next() {
		var u spec.Upstream
		var kind, headers, command, env, tlsOpts, oa, tx string
		var created, timeout int64
		var synced sql.NullInt64
		if err := rows.Scan(&u.Name, &u.Prefix, &kind, &u.URL, &headers, &command, &env, &u.AllowPrivate, &u.AllowPlainHTTP, &tlsOpts, &timeout, &u.OnChange, &created, &u.CreatedBy, &synced, &oa, &tx); err != nil {
			return nil, classify("list upstreams", err)
		}
		u.Kind, u.CreatedAt, u.CallTimeout = spec.Kind(kind), time.UnixMicro(created).UTC(), time.Duration(timeout)*time.Millisecond
		u.SyncedAt = fromMicros(synced)
		if err := jsonFields(headers, &u.Headers, command, &u.Command, env, &u.Env, tlsOpts, &u.TLS); err != nil {
			return nil, classify("list upstreams", err)
		}
		if oa != "" {
			u.Kind, u.OpenAPI = spec.HTTPAPI, &spec.OpenAPI{}
			if err := json.Unmarshal([]byte(oa), u.OpenAPI); err != nil {
				return nil, classify("list upstreams", err)
			}
		}
		if tx != "" {
			u.TokenExchange = &spec.TokenExchange{}
			if err := json.Unmarshal([]byte(tx), u.TokenExchange); err != nil {
				return nil, classify("list upstreams", err)
			}
		}
		out = append(out, u)
	}
	return out, classify("list upstreams", rows.Err())
}

// jsonFields decodes stored JSON texts into their destinations, given as
// text, destination pairs. (Not a map keyed by text: two columns holding
// the same text, "{}" say, must both be decoded.)
func jsonFields(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := json.Unmarshal([]byte(pairs[i].(string)), pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (s queries) CatalogTools(ctx context.Context) ([]catalog.ToolState, error) {
	rows, err := s.q.QueryContext(ctx, `
		SELECT u.name, t.name, t.vanished_at IS NOT NULL, t.call_timeout_ms, t.labels, t.labelled_at, coalesce(t.labelled_by, ''),
			coalesce(t.presented_digest, ''), coalesce(t.reviewed_digest, ''), t.changed_at,
			v.version, v.digest, v.definition, v.status, v.seen_at, v.activated_at, coalesce(v.activated_by, ''), v.flags
		FROM catalog_tools t JOIN upstreams u ON u.id = t.upstream_id JOIN tool_versions v ON v.tool_id = t.id
		ORDER BY u.name, t.name, v.version`)
	if err != nil {
		return nil, classify("catalog", err)
	}
	defer rows.Close()
	var out []catalog.ToolState
	for rows.Next() {
		var up, tool, status, def, flags, presented, reviewed string
		var vanished bool
		var v catalog.Version
		var seen, timeout int64
		var activated, labelledAt, changed sql.NullInt64
		var labels sql.NullString
		var labelledBy string
		if err := rows.Scan(&up, &tool, &vanished, &timeout, &labels, &labelledAt, &labelledBy, &presented, &reviewed, &changed,
			&v.Version, &v.Digest, &def, &status, &seen, &activated, &v.ActivatedBy, &flags); err != nil {
			return nil, classify("catalog", err)
		}
		v.Upstream, v.Tool, v.Definition, v.Status = up, tool, json.RawMessage(def), catalog.Status(status)
		v.SeenAt, v.ActivatedAt = time.UnixMicro(seen).UTC(), fromMicros(activated)
		if err := json.Unmarshal([]byte(flags), &v.Flags); err != nil {
			return nil, classify("catalog", err)
		}
		if n := len(out); n == 0 || out[n-1].Upstream != up || out[n-1].Tool != tool {
			st := catalog.ToolState{Upstream: up, Tool: tool, Vanished: vanished, CallTimeout: time.Duration(timeout) * time.Millisecond,
				LabelledAt: fromMicros(labelledAt), LabelledBy: labelledBy, Presented: presented, Reviewed: reviewed, ChangedAt: fromMicros(changed)}
			if labels.Valid {
				st.Labels = &policy.Labels{}
				if err := json.Unmarshal([]byte(labels.String), st.Labels); err != nil {
					return nil, classify("catalog", err)
				}
			}
			out = append(out, st)
		}
		out[len(out)-1].Versions = append(out[len(out)-1].Versions, v)
	}
	return out, classify("catalog", rows.Err())
}

func (s queries) UserGrants(ctx context.Context, user string) (authz.Grants, error) {
	var grants string
	err := s.q.QueryRowContext(ctx, `SELECT (SELECT json_group_array(DISTINCT g.grant_text) FROM user_roles ur
		JOIN role_grants g ON g.role_id = ur.role_id WHERE ur.user_id = u.id) FROM users u WHERE u.name = ?`, user).Scan(&grants)
	if err != nil {
		if fault.Is(classify("", err), fault.NotFound) {
			return nil, fault.New(fault.NotFound, "user %q does not exist", user)
		}
		return nil, classify("user grants", err)
	}
	return grantList(grants)
}

func (t *Tx) InsertUpstream(ctx context.Context, u spec.Upstream) error {
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	headers, env, command := u.Headers, u.Env, u.Command
	if headers == nil {
		headers = map[string]string{}
	}
	if env == nil {
		env = map[string]string{}
	}
	if command == nil {
		command = []string{}
	}
	onChange := u.OnChange
	if onChange == "" {
		onChange = spec.OnChangeRefuse
	}
	kind, oa, tokenExchange := string(u.Kind), "", ""
	if u.TokenExchange != nil {
		tokenExchange = enc(u.TokenExchange)
	}
	if u.Kind == spec.HTTPAPI { // see migration 0017
		if u.OpenAPI == nil {
			return fault.New(fault.Invalid, "an OpenAPI upstream needs its document")
		}
		kind, oa = string(spec.HTTP), enc(u.OpenAPI)
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO upstreams (name, prefix, kind, url, headers, command, env, allow_private, allow_plain_http, tls, call_timeout_ms, on_change, created_at, created_by, openapi, token_exchange)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.Name, u.Prefix, kind, u.URL, enc(headers), enc(command), enc(env),
		u.AllowPrivate, u.AllowPlainHTTP, enc(u.TLS), u.CallTimeout.Milliseconds(), onChange, micros(u.CreatedAt), u.CreatedBy, oa, tokenExchange)
	if isUnique(err) {
		return fault.New(fault.Conflict, "upstream %q already exists", u.Name)
	}
	return classify("insert upstream", err)
}

func (t *Tx) SetUpstreamOpenAPI(ctx context.Context, name string, o spec.OpenAPI) error {
	b, err := json.Marshal(o)
	if err != nil {
		return classify("set upstream document", err)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE upstreams SET openapi = ? WHERE name = ? AND openapi != ''`, string(b), name)
	if err != nil {
		return classify("set upstream document", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fault.New(fault.NotFound, "upstream %q is not an OpenAPI upstream", name)
	}
	return nil
}

func (t *Tx) SetToolTimeout(ctx context.Context, upstreamName, tool string, d time.Duration) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE catalog_tools SET call_timeout_ms = ?
		WHERE name = ? AND upstream_id = (SELECT id FROM upstreams WHERE name = ?)`, d.Milliseconds(), tool, upstreamName)
	if err != nil {
		return classify("set tool timeout", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fault.New(fault.NotFound, "tool %s of upstream %s is not in the catalog", tool, upstreamName)
	}
	return nil
}

func (t *Tx) SetToolLabels(ctx context.Context, upstreamName, tool string, l *policy.Labels, at time.Time, by string) error {
	var labels, labelledBy sql.NullString
	var labelledAt any
	if l != nil {
		labelledAt = micros(at)
		b, err := json.Marshal(l)
		if err != nil {
			return classify("set tool labels", err)
		}
		labels, labelledBy = sql.NullString{String: string(b), Valid: true}, sql.NullString{String: by, Valid: true}
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE catalog_tools SET labels = ?, labelled_at = ?, labelled_by = ?
		WHERE name = ? AND upstream_id = (SELECT id FROM upstreams WHERE name = ?)`, labels, labelledAt, labelledBy, tool, upstreamName)
	if err != nil {
		return classify("set tool labels", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fault.New(fault.NotFound, "tool %s of upstream %s is not in the catalog", tool, upstreamName)
	}
	return nil
}

func (t *Tx) DeleteUpstream(ctx context.Context, name string) error {
	res, err := t.tx.ExecContext(ctx, "DELETE FROM upstreams WHERE name = ?", name)
	if err != nil {
		return classify("delete upstream", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "upstream %q does not exist", name)
	}
	return nil
}

func (t *Tx) InsertToolVersion(ctx context.Context, v catalog.Version) error {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO catalog_tools (upstream_id, name) SELECT id, ? FROM upstreams WHERE name = ?
		ON CONFLICT (upstream_id, name) DO NOTHING`, v.Tool, v.Upstream); err != nil {
		return classify("insert tool", err)
	}
	var by any
	if v.ActivatedBy != "" {
		by = v.ActivatedBy
	}
	flags := v.Flags
	if flags == nil {
		flags = []string{}
	}
	flagsJSON, err := json.Marshal(flags)
	if err != nil {
		return classify("insert tool version", err)
	}
	res, err := t.tx.ExecContext(ctx, `INSERT INTO tool_versions (tool_id, version, digest, definition, status, seen_at, activated_at, activated_by, flags)
		SELECT t.id, ?, ?, ?, ?, ?, ?, ?, ? FROM catalog_tools t JOIN upstreams u ON u.id = t.upstream_id WHERE u.name = ? AND t.name = ?`,
		v.Version, v.Digest, string(v.Definition), string(v.Status), micros(v.SeenAt), micros(v.ActivatedAt), by, string(flagsJSON), v.Upstream, v.Tool)
	if isUnique(err) {
		return fault.New(fault.Conflict, "version %d of %s already exists", v.Version, v.Tool)
	}
	if err != nil {
		return classify("insert tool version", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "upstream %q does not exist", v.Upstream)
	}
	return nil
}

const toolIDQuery = `(SELECT t.id FROM catalog_tools t JOIN upstreams u ON u.id = t.upstream_id WHERE u.name = ? AND t.name = ?)`

func (t *Tx) SetToolVanished(ctx context.Context, upstreamName, tool string, at time.Time) error {
	_, err := t.tx.ExecContext(ctx, "UPDATE catalog_tools SET vanished_at = ? WHERE id = "+toolIDQuery, micros(at), upstreamName, tool)
	return classify("set tool vanished", err)
}

func (t *Tx) SetToolPresented(ctx context.Context, upstreamName, tool, digest string, changed time.Time) error {
	var changedAt any
	if !changed.IsZero() {
		changedAt = micros(changed)
	}
	_, err := t.tx.ExecContext(ctx, "UPDATE catalog_tools SET presented_digest = ?, changed_at = coalesce(changed_at, ?) WHERE id = "+toolIDQuery,
		digest, changedAt, upstreamName, tool)
	return classify("set tool presented", err)
}

func (t *Tx) MarkUpstreamSynced(ctx context.Context, name string, at time.Time) error {
	_, err := t.tx.ExecContext(ctx, "UPDATE upstreams SET synced_at = ? WHERE name = ? AND synced_at IS NULL", micros(at), name)
	return classify("mark upstream synced", err)
}

func (t *Tx) ActivateToolVersion(ctx context.Context, upstreamName, tool string, version int, at time.Time, by string) error {
	if _, err := t.tx.ExecContext(ctx, "UPDATE catalog_tools SET reviewed_digest = presented_digest, changed_at = NULL WHERE id = "+toolIDQuery,
		upstreamName, tool); err != nil {
		return classify("activate tool version", err)
	}
	if _, err := t.tx.ExecContext(ctx, "UPDATE tool_versions SET status = 'superseded' WHERE status = 'active' AND tool_id = "+toolIDQuery,
		upstreamName, tool); err != nil {
		return classify("activate tool version", err)
	}
	res, err := t.tx.ExecContext(ctx, "UPDATE tool_versions SET status = 'active', activated_at = ?, activated_by = ? WHERE version = ? AND tool_id = "+toolIDQuery,
		micros(at), by, version, upstreamName, tool)
	if err != nil {
		return classify("activate tool version", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "tool %s has no version %d", tool, version)
	}
	return nil
}
