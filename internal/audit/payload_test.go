package audit

import (
	"testing"
	"time"
)

// Whatever the writer seals (unusual numbers, strings, nesting) reads back
// through ParsePayload to the same record, from the same bytes. (From an
// outsider review.)
func TestPayloadRoundTrip(t *testing.T) {
	details := []map[string]any{
		{"n": uint64(1<<60 + 1)},
		{"n": int64(-(1 << 62) - 3)},
		{"f": 1e21, "g": 1.5e-7, "h": 0.1},
		{"\U0001F600": 1, "\uFFFF": 2, "": 3, "a": []any{}},
		{"s": "\u2028\u007f<>&\\\"\x01"},
		{"nested": map[string]any{"x": []any{map[string]any{"y": "}]"}}}},
		{"l": []string{"a", "\"}"}},
		{"b": true, "z": nil},
	}
	for i, d := range details {
		r := Record{Seq: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC), Event: "e\u2028", Outcome: Success, Detail: d, Target: "\x7f\U0010FFFF"}
		b, err := r.Canonical()
		if err != nil {
			t.Logf("%d: not encodable: %v", i, err)
			continue
		}
		if _, err := ParsePayload(b); err != nil {
			t.Errorf("%d: writer's bytes refused: %v\n%s", i, err, b)
		}
	}
}
