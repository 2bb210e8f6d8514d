package govern

// Audit event types of tool calls and listings.
const (
	EventToolsList  = "tools-list"
	EventToolCall   = "tool-call"   // the decision, recorded before anything is forwarded
	EventToolResult = "tool-result" // the outcome
)

// Reason codes of refused calls. Recorded, never shown: a hidden tool and
// a missing one look the same to the client.
const (
	ReasonUnknownTool  = "tool-unknown"
	ReasonNotPermitted = "tool-not-permitted"
	ReasonBadArguments = "arguments-invalid"
	ReasonBadSchema    = "tool-schema-invalid"
	ReasonUpstream     = "upstream-error"
	// Outcomes of calls that reached the upstream and did not complete,
	// each its own reason on the tool-result record.
	ReasonTimeout         = "timeout"             // no answer within the call's bound
	ReasonClientCancelled = "client-cancelled"    // the client went away or cancelled
	ReasonGatewayStopping = "gateway-stopping"    // cut by a graceful stop
	ReasonRefusedUpstream = "refused-by-upstream" // the upstream answered with a JSON-RPC error
	ReasonCircuitOpen     = "circuit-open"        // refused by the upstream's open circuit breaker
	ReasonUpstreamBusy    = "upstream-busy"       // no fair share of the upstream's slots was free
	// ReasonHeaderMismatch: Mcp-Param-* headers disagree with the arguments.
	ReasonHeaderMismatch = "header-mismatch"
	// ReasonDefinitionChanged: the upstream presents a definition other
	// than the pinned one, not yet reviewed. Shown to a caller who may
	// invoke the tool (it names a state of the catalog, not a secret).
	ReasonDefinitionChanged = "tool-definition-changed"
)

// ReasonCallsCap: the caller already has the most calls in flight.
const ReasonCallsCap = "user-calls-cap"

// Reason codes of policy outcomes.
const (
	ReasonPolicyDeny = "policy-deny"
	ReasonHeld       = "approval-required"
	// ReasonPendingCap: the caller already has the most pending requests.
	ReasonPendingCap = "user-pending-cap"
	// ReasonApprovalsDown: approval_status could not read the requests.
	ReasonApprovalsDown = "approvals-unavailable"
)

// Audit event types of prompts and completion.
const (
	EventPromptsList  = "prompts-list"
	EventPromptGet    = "prompt-get"    // the decision, before forwarding
	EventPromptResult = "prompt-result" // the outcome
	EventCompletion   = "completion"
)

// Audit event types of resources.
const (
	EventResourcesList  = "resources-list"
	EventResourceRead   = "resource-read"   // the decision, before forwarding
	EventResourceResult = "resource-result" // the outcome
)

// Reason codes of continued calls.
const (
	// ReasonBadState: a requestState that Ostiary did not seal for this
	// caller and call, or that expired.
	ReasonBadState = "request-state-invalid"
	// ReasonCapabilities: the upstream asked what the client cannot answer.
	ReasonCapabilities = "client-capability-missing"
)

// ReasonTooManyQuestions: an input_required result asked more than
// maxQuestions questions.
const ReasonTooManyQuestions = "too-many-questions"

// ReasonKilled is the reason code of a call a kill switch stopped or cut.
const ReasonKilled = "killswitch"
