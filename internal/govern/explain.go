package govern

import (
	"context"
	"encoding/json"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
)

// Users finds what a user would be as a caller, for explain (no key: no
// scope, the default environment).
type Users interface {
	PrincipalOf(ctx context.Context, user string) (*authn.Principal, error)
}

// Explanation is a decision explained, for `ostiary policy explain`.
type Explanation struct {
	User     string          `json:"user"`
	Tool     string          `json:"tool"`
	Version  int             `json:"tool_version"`
	Labels   *policy.Labels  `json:"labels"`
	Hints    policy.Hints    `json:"hints"`
	Decision policy.Decision `json:"decision"`
	Problem  string          `json:"problem,omitempty"` // why the call would fail before the policy (arguments)
}

// Explain shows the decision user would get calling tool with args, now,
// without calling anything (manage-policy:* or read-audit:*). A tool the
// user may not see is explained as denied for no-grant, like any other.
func (pl *Pipeline) Explain(ctx context.Context, asker *authn.Principal, user, tool string, raw json.RawMessage) (Explanation, error) {
	rec := asker.Record(policy.EventExplain, "tool:"+clip(tool)) // names from the request: bounded on record
	rec.Detail = map[string]any{"as": clip(user)}
	out := Explanation{User: user, Tool: tool}
	if !policy.MayExplain(asker) {
		return out, audit.Refuse(ctx, pl.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-policy or read-audit grant"))
	}
	if pl.cfg.Users == nil {
		return out, audit.Refuse(ctx, pl.cfg.Auditor, rec, fault.New(fault.Unavailable, "explain is not available"))
	}
	p, err := pl.cfg.Users.PrincipalOf(ctx, user)
	if err != nil {
		return out, audit.Refuse(ctx, pl.cfg.Auditor, rec, err)
	}
	e, ok := pl.cfg.Catalog.Snapshot().Lookup(tool)
	if !ok {
		return out, audit.Refuse(ctx, pl.cfg.Auditor, rec, fault.New(fault.NotFound, "tool %q is not in the catalog", tool))
	}
	args, err := ParseArgs(raw)
	if err != nil {
		return out, audit.Refuse(ctx, pl.cfg.Auditor, rec, fault.New(fault.Invalid, "ARGS must be a JSON object: %s", clip(err.Error())))
	}
	if e.Changed && !e.KeepPinned {
		out.Problem = "the upstream presents a definition other than the pinned one: every call is refused (" + ReasonDefinitionChanged + ") until a version is activated"
	} else if e.SchemaErr != nil {
		out.Problem = "the tool's pinned input schema is invalid: every call is refused"
	} else if err := e.Schema.Validate(args.value); err != nil {
		out.Problem = "the arguments do not match the pinned input schema, so the call would be refused before the policy: " + clip(err.Error())
	}
	out.Version, out.Labels, out.Hints = e.Version, e.Labels, e.Hints
	out.Decision = pl.decide(p, e, args.value)
	rec.Detail["args_sha256"] = args.digest
	noteDecision(&rec, out.Decision)
	if _, err := pl.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return out, err
	}
	return out, nil
}
