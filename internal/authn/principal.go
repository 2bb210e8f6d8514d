package authn

import (
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authz"
)

// Principal is the authenticated caller of one request.
type Principal struct {
	User      string
	Service   bool     // a service account rather than a human
	Roles     []string // role names, for display and audit
	KeyID     string
	Perms     authz.Permissions
	RequestID string // correlation id
	Remote    string // client address
}

// Allows reports whether the principal may perform action on resource.
func (p *Principal) Allows(a authz.Action, resource string) bool { return p.Perms.Allows(a, resource) }

// Record starts an audit record of event on target, attributed to p.
func (p *Principal) Record(event, target string) audit.Record {
	return audit.Record{Event: event, Outcome: audit.Success, Actor: p.User, KeyID: p.KeyID,
		RequestID: p.RequestID, Remote: p.Remote, Target: target}
}
