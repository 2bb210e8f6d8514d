package authn

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (m *memAudit) Write(_ context.Context, e audit.Entry) (audit.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, e.Record)
	return e.Record, nil
}

func (m *memAudit) of(event string) (n int, counted int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.recs {
		if r.Event == event {
			n++
			if c, ok := r.Detail["count"].(int); ok {
				counted += c
			}
		}
	}
	return n, counted
}

func attempt(remote string) Attempt {
	return Attempt{Remote: remote, Method: "POST", Path: "/mcp", RequestID: "req"}
}

// A flood of failures from one source: the first burst is recorded one by
// one, the rest are refused (429) and counted into one aggregated record
// per interval, so a thousand failures cost a handful of records. Another
// source is unaffected; an IPv6 source is judged by its /64.
func TestFailureGuardFlood(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	mem := &memAudit{}
	g, err := NewFailureGuard(2, 20, 10*time.Second, mem, slog.New(slog.NewTextHandler(io.Discard, nil)), now)
	if err != nil {
		t.Fatal(err)
	}
	fail := &Failure{Reason: ReasonUnknown, KeyID: "aaaaaaaaaaaaaaaa"}
	limited := 0
	for range 1000 {
		r := attempt("192.0.2.1:5000")
		if ok, _ := g.Admit(r); !ok {
			limited++
			continue
		}
		if l, retry, _, _ := g.Failed(context.Background(), r, fail); l {
			if retry < time.Second {
				t.Fatalf("retry after %s", retry)
			}
			limited++
		}
	}
	if ok, _ := g.Admit(attempt("198.51.100.7:1")); !ok {
		t.Error("another source was throttled")
	}
	if ok, _ := g.Admit(attempt("[2001:db8:1:2::99]:1")); !ok {
		t.Error("a fresh IPv6 source was throttled")
	}
	for range 30 {
		g.Failed(context.Background(), attempt("[2001:db8:1:2::1]:1"), &Failure{Reason: ReasonMalformed})
	}
	if ok, _ := g.Admit(attempt("[2001:db8:1:2:ffff::5]:1")); ok {
		t.Error("another address of the same /64 was not throttled")
	}
	g.Close()
	single, _ := mem.of("authn-failure")
	aggregated, counted := mem.of(EventAuthnFailures)
	if single != 40 || limited != 980 {
		t.Errorf("records one by one: %d (want 40), limited: %d (want 980)", single, limited)
	}
	if aggregated != 2 || counted != 980+10+1 { // the flood, the /64's ten over budget, its refused neighbour
		t.Errorf("aggregated records: %d counting %d, want 2 counting 991", aggregated, counted)
	}
}

// A key id's budget: wrong secrets for one id from many sources are
// limited too, while the id's owner is never locked out (the guard counts
// only failures; a correct key is not asked about).
func TestFailureGuardPerKey(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	mem := &memAudit{}
	g, _ := NewFailureGuard(2, 5, time.Second, mem, slog.New(slog.NewTextHandler(io.Discard, nil)), now)
	defer g.Close()
	limited := 0
	for i := range 20 {
		r := attempt(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).String() + ":1")
		if l, _, _, _ := g.Failed(context.Background(), r, &Failure{Reason: ReasonMismatch, KeyID: "bbbbbbbbbbbbbbbb"}); l {
			limited++
		}
	}
	if limited != 15 {
		t.Errorf("limited %d of 20 guesses at one key id from 20 sources, want 15", limited)
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:80": "127.0.0.1/32", "[::ffff:10.0.0.1]:80": "10.0.0.1/32", "[2001:db8::1]:9": "2001:db8::/64", "junk": "invalid Prefix",
	} {
		if got := Source(in).String(); got != want {
			t.Errorf("Source(%q) = %s, want %s", in, got, want)
		}
	}
}

// slowStore answers like a database: every lookup takes a while.
type slowStore struct {
	fakeStore
	delay time.Duration
}

func (s *slowStore) LookupCredential(ctx context.Context, id string) (Credential, error) {
	time.Sleep(s.delay)
	return s.fakeStore.LookupCredential(ctx, id)
}

// An unknown key id and a known (cached) one with a wrong secret take the
// same time to refuse, so timing does not tell which ids exist: unknown ids
// are cached as unknown, and every failure takes at least failureFloor,
// above a store lookup. Before, a fresh unknown id always paid the store's
// lookup (~250 µs on SQLite) while a key in use was answered from memory.
func TestFailuresTakeTheSameTime(t *testing.T) {
	hasher, _ := NewHasher(bytes.Repeat([]byte{7}, 32))
	id, key := NewKey()
	_, secret, _ := ParseKey(key)
	st := &slowStore{fakeStore: fakeStore{creds: map[string]Credential{id: {KeyID: id, User: "alice", Hash: hasher.Hash(id, secret)}}}, delay: 500 * time.Microsecond}
	a, _ := NewAuthenticator(st, hasher, time.Now)
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, "Bearer "+key); err != nil { // alice's key is in use: cached
		t.Fatal(err)
	}
	wrong := "Bearer ost_" + id + "_" + strings.Repeat("a", 52)
	var known, unknown []time.Duration
	for range 40 {
		_, other := NewKey()
		for _, c := range []struct {
			h  string
			to *[]time.Duration
		}{{wrong, &known}, {"Bearer " + other, &unknown}} {
			start := time.Now()
			if _, err := a.Authenticate(ctx, c.h); err == nil {
				t.Fatal("authenticated")
			}
			*c.to = append(*c.to, time.Since(start))
		}
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	mk, mu := median(known), median(unknown)
	if ratio := float64(mu) / float64(mk); ratio < 0.85 || ratio > 1.15 {
		t.Errorf("median refusal: known id %s, unknown id %s (ratio %.2f)", mk, mu, ratio)
	}
	// The same unknown id again is not looked up again.
	_, other := NewKey()
	a.Authenticate(ctx, "Bearer "+other)
	n := st.lookups
	a.Authenticate(ctx, "Bearer "+other)
	if st.lookups != n {
		t.Error("an unknown id was looked up twice")
	}
}
