//lint:file-ignore SA1019 sampling is deprecated as of 2026-07-28 (SEP-2577) but still in its deprecation window: an upstream may still ask for it, and the gateway governs the question.

package govern

import (
	"context"
	"fmt"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream"
)

// Governed questions. Whatever the eras, an upstream's request of the
// user's client (elicitation, sampling) is put to the client only if the
// tool's labels allow it (upstream.Gate), and each is recorded
// (upstream-request: kind, mode, tool, the URL's host, never the message).
// A session-based upstream asks during the call: the pool's relay decides
// and answers a refusal with a JSON-RPC error. A 2026-07-28 upstream asks
// with an input_required result: decided here, before the client sees it.

// maxQuestions bounds the questions of one input_required result.
const maxQuestions = 16

// toolGate is the Gate of p's call of tool e: what its labels
// allow, the policy's upstream_requests rules, and the server's URL
// allow-list.
func (pl *Pipeline) toolGate(p *authn.Principal, e *catalog.Entry) upstream.Gate {
	gate := pl.gate(p, "tool:"+e.Name, e.PolicyTool())
	if e.Labels != nil {
		gate.Elicitation, gate.Sampling = e.Labels.AllowElicitation, e.Labels.AllowSampling
	}
	return gate
}

// gate is the Gate of p's request to target (of tool t, for a tools/call):
// nothing allowed by labels (prompts and resources carry none), the policy
// in force when the question comes, the URL allow-list.
func (pl *Pipeline) gate(p *authn.Principal, target string, t policy.Tool) upstream.Gate {
	in := policyInput(p, t)
	return upstream.Gate{Tool: target, URLAllow: pl.cfg.ElicitURLAllow, Decide: func(q upstream.Question) (string, string) {
		ri := policy.RequestInput{Input: in, Kind: q.Kind, Mode: q.Mode, URLHost: q.URLHost, Target: target}
		ri.Now = pl.cfg.Now()
		effect, reason := pl.cfg.Policy.Current().DecideRequest(ri)
		return string(effect), reason
	}}
}

// inputMethod is the method of one question of an input_required result.
func inputMethod(ir mcp.InputRequest) string {
	switch ir.(type) {
	case *mcp.ElicitParams:
		return "elicitation/create"
	case *mcp.CreateMessageParams, *mcp.CreateMessageWithToolsParams:
		return "sampling/createMessage"
	case *mcp.ListRootsParams:
		return "roots/list"
	}
	return ""
}

// governQuestions decides each question of an upstream's input_required result
// under gate and records it (relayed or refused) as p's, on upstream
// uname. One refused question refuses them all: the client is asked none
// (answering some would let the upstream go on without the others). The
// upstream is not answered: a 2026-07-28 upstream keeps no request open,
// and its requestState is never continued. The error is what the client
// sees; a refusal is noted on out.
func (pl *Pipeline) governQuestions(ctx context.Context, out *audit.Record, p *authn.Principal, uname string, gate upstream.Gate, reqs mcp.InputRequestMap,
	redact func([]byte) []byte) error {
	base := p.Record(upstream.EventUpstreamRequest, "upstream:"+uname)
	if len(reqs) > maxQuestions {
		base.Outcome, base.Reason = audit.Denied, ReasonTooManyQuestions
		base.Detail = map[string]any{"tool": gate.Tool, "questions": len(reqs), "via": "input_required"}
		if err := pl.write(context.WithoutCancel(ctx), base); err != nil {
			return err
		}
		out.Outcome, out.Reason = audit.Denied, ReasonTooManyQuestions
		return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("the upstream asked more than %d questions at once: refused", maxQuestions)}
	}
	ids := make([]string, 0, len(reqs))
	for id := range reqs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var first *upstream.Refusal
	for _, id := range ids {
		method := inputMethod(reqs[id])
		q, refusal := gate.Judge(method, reqs[id])
		if method == "" {
			q, refusal = upstream.Question{Kind: "unknown"}, &upstream.Refusal{Reason: "question-unknown", Message: "the upstream asked a question of an unknown kind: refused"}
		}
		rec := base
		rec.Detail = map[string]any{"method": method, "tool": gate.Tool, "via": "input_required", "id": clip(string(redactOr(redact, id)))}
		q.Detail(rec.Detail)
		if refusal != nil {
			rec.Outcome, rec.Reason = audit.Denied, refusal.Reason
			if first == nil {
				first = refusal
			}
		}
		if err := pl.write(context.WithoutCancel(ctx), rec); err != nil {
			return err
		}
	}
	if first != nil {
		out.Outcome, out.Reason = audit.Denied, first.Reason
		return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: first.Message}
	}
	return nil
}

// redactOr is redact(s), or s if redact is nil.
func redactOr(redact func([]byte) []byte, s string) []byte {
	if redact == nil {
		return []byte(s)
	}
	return redact([]byte(s))
}

// otherGate is the Gate of p's prompts/get or resources/read of target on
// upstream uname: no labels, so only a policy rule allows a question.
func (pl *Pipeline) otherGate(p *authn.Principal, target, uname string) upstream.Gate {
	return pl.gate(p, target, policy.Tool{Upstream: uname})
}
