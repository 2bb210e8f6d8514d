package policy

import (
	"slices"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// The CEL variables a condition sees are declared as object types with
// exactly these fields, so that a condition naming a field that does not
// exist (tool.nme) fails to compile when the policy is set or tested,
// instead of failing every evaluation and holding or denying every call.
// Only args stays dynamic: arguments follow each tool's own schema.

// principalVars is principal.
type principalVars struct {
	User        string   `cel:"user"`
	Roles       []string `cel:"roles"`
	Service     bool     `cel:"service"`
	KeyID       string   `cel:"key_id"`
	Environment string   `cel:"environment"`
	Scope       []string `cel:"scope"`
}

// toolVars is tool: its identity, its labels (effective: hints stand in
// until it is labelled) and its hints.
type toolVars struct {
	Name            string   `cel:"name"`
	Upstream        string   `cel:"upstream"`
	Version         int64    `cel:"version"`
	Labelled        bool     `cel:"labelled"`
	DataClasses     []string `cel:"data_classes"`
	Risk            string   `cel:"risk"`
	Irreversible    bool     `cel:"irreversible"`
	Egress          bool     `cel:"egress"`
	Owner           string   `cel:"owner"`
	RequireApproval bool     `cel:"require_approval"`
	AllowElicit     bool     `cel:"allow_elicitation"`
	AllowSampling   bool     `cel:"allow_sampling"`
	ReadOnly        bool     `cel:"read_only"`
	Destructive     bool     `cel:"destructive"`
	OpenWorld       bool     `cel:"open_world"`
	Idempotent      bool     `cel:"idempotent"`
}

// sessionVars is session.
type sessionVars struct {
	Classes []string             `cel:"classes"` // touched within the window
	Last    map[string]time.Time `cel:"last"`    // class → when last touched
}

// CEL type names of the variables.
const (
	typePrincipal = "ostiary.Principal"
	typeTool      = "ostiary.Tool"
	typeSession   = "ostiary.Session"
)

var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		ext.NativeTypes(
			types.NativeTypeFor[principalVars](types.NativeTypeAlias(typePrincipal), types.ParseStructTags(true)),
			types.NativeTypeFor[toolVars](types.NativeTypeAlias(typeTool), types.ParseStructTags(true)),
			types.NativeTypeFor[sessionVars](types.NativeTypeAlias(typeSession), types.ParseStructTags(true)),
		),
		cel.Variable("principal", cel.ObjectType(typePrincipal)),
		cel.Variable("tool", cel.ObjectType(typeTool)),
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("session", cel.ObjectType(typeSession)),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("risk", cel.IntType),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		ext.Strings(),
	)
	if err != nil {
		panic(err)
	}
	return env
}()

// activation binds the CEL variables without building a map of maps per
// name lookup.
type activation struct {
	principal *principalVars
	tool      *toolVars
	session   *sessionVars
	args      map[string]any
	now       time.Time
	risk      int64
	request   *requestVars // upstream_requests rules only (requests.go)
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "principal":
		return a.principal, true
	case "tool":
		return a.tool, true
	case "args":
		return a.args, true
	case "session":
		return a.session, true
	case "now":
		return a.now, true
	case "risk":
		return a.risk, true
	case "request":
		return a.request, a.request != nil
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (p *Policy) activation(in Input, l Labels, base int) *activation {
	classes := []string{}
	last := make(map[string]time.Time, len(in.Touched))
	for c, at := range in.Touched {
		if in.Now.Sub(at) <= p.window {
			classes = append(classes, c)
		}
		last[c] = at
	}
	slices.Sort(classes)
	dataClasses := l.DataClasses
	if dataClasses == nil {
		dataClasses = []string{}
	}
	return &activation{
		principal: &principalVars{User: in.User, Roles: orEmpty(in.Roles), Service: in.Service, KeyID: in.KeyID,
			Environment: in.Environment, Scope: orEmpty(in.Scope)},
		tool: &toolVars{Name: in.Tool.Name, Upstream: in.Tool.Upstream, Version: int64(in.Tool.Version),
			Labelled: in.Tool.Labels != nil, DataClasses: dataClasses, Risk: l.Risk,
			Irreversible: l.Irreversible, Egress: l.Egress, Owner: l.Owner, RequireApproval: l.RequireApproval,
			AllowElicit: l.AllowElicitation, AllowSampling: l.AllowSampling,
			ReadOnly: in.Tool.Hints.ReadOnly, Destructive: !in.Tool.Hints.ReadOnly && in.Tool.Hints.Destructive,
			OpenWorld: !in.Tool.Hints.ReadOnly && in.Tool.Hints.OpenWorld, Idempotent: in.Tool.Hints.Idempotent},
		args:    normalize(in.Args).(map[string]any),
		session: &sessionVars{Classes: classes, Last: last},
		now:     in.Now.UTC(),
		risk:    int64(base),
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
