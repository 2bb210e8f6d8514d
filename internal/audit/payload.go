package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ostiary/ostiary/internal/strictjson"
)

// recordMembers is the number of members of a canonical record.
const recordMembers = 13

// ParsePayload reads a record back from the bytes the log holds: its
// canonical encoding. Hash is SHA-256 of b itself, so what is verified is
// exactly what was written; the members must be exactly those of the
// current format, with the types Canonical gives them. A payload that is
// valid JSON but not the record's canonical encoding (reordered, spaced,
// escaped differently) is refused too: two byte strings must never be the
// same record.
func ParsePayload(b []byte) (*Record, error) {
	v, err := strictjson.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("audit: record is not JSON: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != recordMembers {
		return nil, fmt.Errorf("audit: record does not have the %d members of format %d", recordMembers, FormatVersion)
	}
	var r Record
	str := func(k string, dst *string) error {
		s, ok := m[k].(string)
		if !ok {
			return fmt.Errorf("audit: record member %q is missing or not a string", k)
		}
		*dst = s
		return nil
	}
	var ts, outcome, prev string
	for k, dst := range map[string]*string{"time": &ts, "event": &r.Event, "outcome": &outcome, "reason": &r.Reason,
		"actor": &r.Actor, "key_id": &r.KeyID, "request_id": &r.RequestID, "remote": &r.Remote, "target": &r.Target, "prev": &prev} {
		if err := str(k, dst); err != nil {
			return nil, err
		}
	}
	if n, ok := m["v"].(json.Number); !ok || n.String() != strconv.Itoa(FormatVersion) {
		return nil, fmt.Errorf("audit: record format is not %d", FormatVersion)
	}
	n, ok := m["seq"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("audit: record member \"seq\" is missing or not a number")
	}
	if r.Seq, err = strconv.ParseUint(n.String(), 10, 64); err != nil || r.Seq == 0 {
		return nil, fmt.Errorf("audit: record seq %q is not a positive integer", n)
	}
	if r.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return nil, fmt.Errorf("audit: record %d: time %q: %w", r.Seq, ts, err)
	}
	r.Time = r.Time.UTC()
	r.Outcome = Outcome(outcome)
	p, err := hex.DecodeString(prev)
	if err != nil || len(p) != len(r.Prev) {
		return nil, fmt.Errorf("audit: record %d: prev is not a SHA-256 hash in hex", r.Seq)
	}
	copy(r.Prev[:], p)
	if r.Detail, ok = m["detail"].(map[string]any); !ok {
		return nil, fmt.Errorf("audit: record %d: detail is not an object", r.Seq)
	}
	// Only the canonical encoding is a record: re-derive it and compare.
	c, err := r.Canonical()
	if err != nil {
		return nil, err
	}
	if string(c) != string(b) {
		return nil, fmt.Errorf("audit: record %d is not in canonical form", r.Seq)
	}
	r.Hash = sha256.Sum256(b)
	return &r, nil
}
