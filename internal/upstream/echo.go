package upstream

import (
	"context"
	"errors"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// EventSecretEcho is the audit event of a request whose answers (result,
// error, notifications, questions, definitions) held a secret injected
// into it, redacted before they reached anyone: one record per request,
// naming each secret (name and version, never the value) and the
// encodings it was found in, so that the secret's owner can be told.
const EventSecretEcho = "secret-echo-redacted"

// EchoDetail is the detail of an EventSecretEcho record.
func EchoDetail(upstream string, reds []vault.Redaction) map[string]any {
	secrets := make([]any, len(reds))
	for i, r := range reds {
		secrets[i] = map[string]any{"secret": r.Secret, "version": r.Version, "encodings": r.Encodings}
	}
	return map[string]any{"upstream": upstream, "secrets": secrets}
}

// errEchoUnrecorded is the answer to a request whose redaction cannot be
// recorded: like every other record, it fails closed.
var errEchoUnrecorded = errors.New("the audit log is unavailable; the upstream's answer was withheld")

// recordEcho writes the EventSecretEcho record of c's request to u
// (target names it) if r redacted anything from its answers. It is
// written before the answer is returned, and the answer is withheld if it
// cannot be.
func (p *Pool) recordEcho(ctx context.Context, c Caller, u spec.Upstream, target string, r *Relay) error {
	reds := r.Redactions()
	if len(reds) == 0 {
		return nil
	}
	rec := audit.Record{Event: EventSecretEcho, Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID,
		Target: target, Detail: EchoDetail(u.Name, reds)}
	rec.Detail["target"] = target
	if _, err := p.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); err != nil {
		return errEchoUnrecorded
	}
	return nil
}

// completionRef names what a completion is for, for its record.
func completionRef(params *mcp.CompleteParams) string {
	if params == nil || params.Ref == nil {
		return ""
	}
	return params.Ref.Name + params.Ref.URI
}
