package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// The canonical encoding and hash of a record are pinned: changing either
// breaks every existing chain, so it must be a deliberate, versioned act.
func TestRecordVector(t *testing.T) {
	r := Record{
		Seq:       7,
		Time:      time.Date(2026, 11, 22, 3, 4, 5, 123456789, time.UTC),
		Event:     EventKeyCreate,
		Outcome:   Success,
		Actor:     "admin",
		KeyID:     "abcdefghijklmnop",
		RequestID: "req-1",
		Remote:    "127.0.0.1:5000",
		Target:    "key:qrstuvwxyz234567",
		Detail:    map[string]any{"user": "alice", "scope": []string{"invoke:finance.*"}, "n": 3, "ok": true},
	}
	r.Prev[0] = 0xab
	const want = `{"actor":"admin","detail":{"n":3,"ok":true,"scope":["invoke:finance.*"],"user":"alice"},"event":"key-create","key_id":"abcdefghijklmnop","outcome":"success","prev":"ab00000000000000000000000000000000000000000000000000000000000000","reason":"","remote":"127.0.0.1:5000","request_id":"req-1","seq":7,"target":"key:qrstuvwxyz234567","time":"2026-11-22T03:04:05.123456Z","v":1}`
	got, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("canonical encoding changed:\n got %s\nwant %s", got, want)
	}
	h, _ := r.ComputeHash()
	if hx := hex.EncodeToString(h[:]); hx != "d90ed711f0c748fb4034cc9161e21c15fc7ef844b1426494716e2b5db6e0870e" {
		t.Errorf("hash changed: %s", hx)
	}
}

func TestDetailRoundTrip(t *testing.T) {
	r := Record{Detail: map[string]any{"a": []string{"x", "y"}, "b": map[string]any{"c": -4}, "d": "é\n"}}
	s, err := r.DetailJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseDetail(s)
	if err != nil {
		t.Fatal(err)
	}
	r2 := Record{Detail: back}
	h1, _ := r.ComputeHash()
	h2, _ := r2.ComputeHash()
	if h1 != h2 {
		t.Error("a record read back from storage hashes differently")
	}
	if _, err := (&Record{Detail: map[string]any{"f": 0.5, "bad": struct{}{}}}).Canonical(); err == nil {
		t.Error("unencodable detail accepted")
	}
}

func TestCheckpointSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	c := Checkpoint{Seq: 42, Time: time.Unix(1700000000, 0)}
	c.Hash[3] = 9
	c.Sign(priv)
	if err := c.Verify(pub); err != nil {
		t.Fatal(err)
	}
	b, _ := c.MarshalJSON()
	var back Checkpoint
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(pub); err != nil {
		t.Fatalf("after round trip: %v", err)
	}
	back.Seq = 43
	if back.Verify(pub) == nil {
		t.Error("altered checkpoint verified")
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if c.Verify(other) == nil {
		t.Error("checkpoint verified under another key")
	}
	if err := back.UnmarshalJSON([]byte(`{"seq":1,"hash":"00","time":"x","key_id":"k","sig":"", "extra":1}`)); err == nil {
		t.Error("malformed checkpoint file accepted")
	}
}

// FuzzParsePayload: whatever bytes ParsePayload accepts are exactly the
// canonical encoding of the record it returns, and hash to its Hash.
func FuzzParsePayload(f *testing.F) {
	r := Record{Seq: 7, Time: time.Unix(1700000000, 123456000), Event: "tool-call", Outcome: Success, Actor: "al\"ice\n",
		Target: "tool:x", Detail: map[string]any{"a": []any{"b", 1, true}, "é": map[string]any{}}}
	b, _ := r.Canonical()
	f.Add(b)
	f.Add([]byte(`{"actor":"","detail":{},"event":"","key_id":"","outcome":"","prev":"` + strings.Repeat("0", 64) + `","reason":"","remote":"","request_id":"","seq":1,"target":"","time":"2026-01-01T00:00:00Z","v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParsePayload(b)
		if err != nil {
			return
		}
		c, err := r.Canonical()
		if err != nil || string(c) != string(b) {
			t.Fatalf("accepted %q, whose record encodes as %q (%v)", b, c, err)
		}
		if r.Hash != sha256.Sum256(b) {
			t.Fatal("hash is not of the bytes")
		}
	})
}
