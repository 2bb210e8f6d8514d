package adminapi

import "github.com/ostiary/ostiary/internal/evidence"

// routes lists every endpoint of /api/v1 with the handler that serves it.
// Each handler authorizes and audits through the services it calls.
func (a *API) routes() {
	m := a.mux
	m.HandleFunc("GET /api/v1/whoami", a.handle(a.whoami))

	m.HandleFunc("GET /api/v1/users", a.handle(a.listUsers))
	m.HandleFunc("POST /api/v1/users", a.handle(a.createUser))
	m.HandleFunc("GET /api/v1/users/{name}", a.handle(a.showUser))
	m.HandleFunc("POST /api/v1/users/{name}/disable", a.handle(a.disableUser))
	m.HandleFunc("POST /api/v1/users/{name}/enable", a.handle(a.enableUser))
	m.HandleFunc("POST /api/v1/users/{name}/roles", a.handle(a.setUserRoles))
	m.HandleFunc("PUT /api/v1/users/{name}/console-password", a.handle(a.setConsolePassword))

	m.HandleFunc("GET /api/v1/roles", a.handle(a.listRoles))
	m.HandleFunc("POST /api/v1/roles", a.handle(a.createRole))

	m.HandleFunc("GET /api/v1/idp/mappings", a.handle(a.listGroupMappings))
	m.HandleFunc("POST /api/v1/idp/mappings", a.handle(a.mapGroup))
	m.HandleFunc("POST /api/v1/idp/mappings/remove", a.handle(a.unmapGroup))
	m.HandleFunc("GET /api/v1/idp/links", a.handle(a.listSubjectLinks))
	m.HandleFunc("POST /api/v1/idp/links", a.handle(a.linkSubject))

	m.HandleFunc("GET /api/v1/keys", a.handle(a.listKeys))
	m.HandleFunc("POST /api/v1/keys", a.handle(a.createKey))
	m.HandleFunc("POST /api/v1/keys/{id}/revoke", a.handle(a.revokeKey))

	m.HandleFunc("GET /api/v1/audit", a.handle(a.queryAudit))
	m.HandleFunc("POST /api/v1/audit/search-token", a.handle(a.searchToken))
	m.HandleFunc("GET /api/v1/audit/approval_records", a.handle(a.evidence(evidence.KindApproval)))
	m.HandleFunc("GET /api/v1/audit/exception_records", a.handle(a.evidence(evidence.KindException)))
	m.HandleFunc("GET /api/v1/evidence/bundle", a.handle(a.exportBundle))
	m.HandleFunc("GET /api/v1/audit/version_log", a.handle(a.evidence(evidence.KindVersionLog)))
	m.HandleFunc("GET /api/v1/audit/access_reviews", a.handle(a.evidence(evidence.KindAccessReview)))

	m.HandleFunc("GET /api/v1/upstreams", a.handle(a.listUpstreams))
	m.HandleFunc("POST /api/v1/upstreams", a.handle(a.addUpstream))
	m.HandleFunc("DELETE /api/v1/upstreams/{name}", a.handle(a.removeUpstream))
	m.HandleFunc("POST /api/v1/upstreams/{name}/sync", a.handle(a.syncUpstream))
	m.HandleFunc("PUT /api/v1/upstreams/{name}/openapi", a.handle(a.setDocument))

	m.HandleFunc("GET /api/v1/tools", a.handle(a.listTools))
	m.HandleFunc("GET /api/v1/tools/versions", a.handle(a.toolVersions))
	m.HandleFunc("POST /api/v1/tools/activate", a.handle(a.activateTool))
	m.HandleFunc("POST /api/v1/tools/timeout", a.handle(a.setToolTimeout))
	m.HandleFunc("POST /api/v1/tools/labels", a.handle(a.setToolLabels))
	m.HandleFunc("POST /api/v1/tools/rollback", a.handle(a.rollbackTool))

	m.HandleFunc("GET /api/v1/proposals", a.handle(a.listProposals))
	m.HandleFunc("POST /api/v1/proposals", a.handle(a.createProposal))
	m.HandleFunc("GET /api/v1/proposals/{id}", a.handle(a.showProposal))
	m.HandleFunc("POST /api/v1/proposals/{id}/approve", a.handle(a.reviewProposal(true)))
	m.HandleFunc("POST /api/v1/proposals/{id}/reject", a.handle(a.reviewProposal(false)))
	m.HandleFunc("POST /api/v1/proposals/{id}/withdraw", a.handle(a.withdrawProposal))

	m.HandleFunc("GET /api/v1/killswitches", a.handle(a.listKillSwitches))
	m.HandleFunc("POST /api/v1/killswitches", a.handle(a.engageKillSwitch))
	m.HandleFunc("POST /api/v1/killswitches/{id}/release", a.handle(a.releaseKillSwitch))

	m.HandleFunc("GET /api/v1/secrets", a.handle(a.listSecrets))
	m.HandleFunc("PUT /api/v1/secrets/{name}", a.handle(a.setSecret))
	m.HandleFunc("POST /api/v1/secrets/{name}/compromised", a.handle(a.compromised))
	m.HandleFunc("POST /api/v1/vault/rewrap", a.handle(a.rewrap))
	m.HandleFunc("POST /api/v1/vault/rekey", a.handle(a.rekey))
	m.HandleFunc("GET /api/v1/vault/rekey", a.handle(a.rekeyStatus))

	m.HandleFunc("GET /api/v1/policy", a.handle(a.showPolicy))
	m.HandleFunc("PUT /api/v1/policy", a.handle(a.setPolicy))
	m.HandleFunc("GET /api/v1/policy/history", a.handle(a.policyHistory))
	m.HandleFunc("POST /api/v1/policy/rollback", a.handle(a.rollbackPolicy))
	m.HandleFunc("POST /api/v1/policy/explain", a.handle(a.explainPolicy))

	m.HandleFunc("GET /api/v1/approvals", a.handle(a.listApprovals))
	m.HandleFunc("GET /api/v1/approvals/{id}", a.handle(a.showApproval))
	m.HandleFunc("POST /api/v1/approvals/{id}/approve", a.handle(a.decideApproval(true)))
	m.HandleFunc("POST /api/v1/approvals/{id}/deny", a.handle(a.decideApproval(false)))

	m.HandleFunc("GET /api/v1/alerts", a.handle(a.listAlerts))
	m.HandleFunc("POST /api/v1/alerts/{id}/ack", a.handle(a.ackAlert))

	m.HandleFunc("GET /api/v1/reviews", a.handle(a.listReviews))
	m.HandleFunc("POST /api/v1/reviews", a.handle(a.startReview))
	m.HandleFunc("GET /api/v1/reviews/{id}", a.handle(a.showReview))
	m.HandleFunc("POST /api/v1/reviews/items/{id}/attest", a.handle(a.attestReview))

	// Anything else is refused, and the attempt recorded.
	m.HandleFunc("/", a.handle(a.notFound))
}
