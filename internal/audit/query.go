package audit

import "time"

// Query selects records; empty fields match everything. Results are newest
// first; BeforeSeq pages backwards.
type Query struct {
	Actor     string    `json:"actor,omitempty"`
	Event     string    `json:"event,omitempty"`
	Outcome   Outcome   `json:"outcome,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Target    string    `json:"target,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	BeforeSeq uint64    `json:"before_seq,omitempty"`
	// Contains matches records whose target, reason or detail holds this
	// text (a search token from SearchToken, say).
	Contains string `json:"contains,omitempty"`
	Limit    int    `json:"limit"`
}

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)
