//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still in its deprecation window, and 2025-era clients rely on it: it is relayed on purpose.

package upstream

import (
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Relay says where the notifications of one upstream call go: the inbound
// session and request that made it, and the client's own progress token.
type Relay struct {
	Session       *mcp.ServerSession
	Ctx           context.Context // the inbound request's context
	ProgressToken any             // nil if the client asked for no progress
}

func (e *pooled) track(token string, r *Relay) func() {
	e.mu.Lock()
	e.inflight[token] = r
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.inflight, token)
		e.mu.Unlock()
	}
}

// progress relays an upstream progress notification to the one inbound
// request it belongs to, under that client's own token.
func (e *pooled) progress(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
	tok, _ := req.Params.ProgressToken.(string)
	e.mu.Lock()
	r := e.inflight[tok]
	e.mu.Unlock()
	if r == nil || r.ProgressToken == nil || r.Session == nil {
		return
	}
	r.Session.NotifyProgress(r.Ctx, &mcp.ProgressNotificationParams{ProgressToken: r.ProgressToken,
		Progress: req.Params.Progress, Total: req.Params.Total, Message: req.Params.Message})
}

// logMessage relays an upstream log message to the requests in flight on
// this session. Sessions belong to one user, so a message never reaches
// another user's client.
func (e *pooled) logMessage(ctx context.Context, req *mcp.LoggingMessageRequest) {
	e.mu.Lock()
	targets := make([]*Relay, 0, len(e.inflight))
	for _, r := range e.inflight {
		targets = append(targets, r)
	}
	e.mu.Unlock()
	for _, r := range targets {
		if r.Session != nil {
			r.Session.Log(r.Ctx, req.Params)
		}
	}
}

// relayTo installs the handlers that route an upstream session's
// notifications to the inbound requests in flight on it. Over HTTP,
// notifications on a call's own response stream are relayed exactly by
// streamRelay instead, so these handlers serve stdio upstreams only.
func (e *pooled) relayTo(opts *mcp.ClientOptions) {
	opts.ProgressNotificationHandler = e.progress
	opts.LoggingMessageHandler = e.logMessage
}

// log relays one upstream log message (raw params) to this call's client.
func (r *Relay) log(params json.RawMessage) {
	var p mcp.LoggingMessageParams
	if r.Session != nil && json.Unmarshal(params, &p) == nil {
		r.Session.Log(r.Ctx, &p)
	}
}

// takeLogs asks the upstream for all its log messages: servers send none
// until a level is set, and each client's own level filters what it gets.
func (p *Pool) takeLogs(ctx context.Context, cs *mcp.ClientSession, u Upstream) {
	init := cs.InitializeResult()
	if init == nil || init.Capabilities == nil || init.Capabilities.Logging == nil {
		return
	}
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		p.cfg.Logger.Debug("upstream refused a logging level", "upstream", u.Name, "err", err)
	}
}
