package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("encoding %q", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if err := VerifyPassword(h, "correct horse battery"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := VerifyPassword(h, "correct horse batterY"); err != ErrMismatch {
		t.Fatalf("wrong password: %v", err)
	}
	h2, _ := HashPassword("correct horse battery")
	if h2 == h {
		t.Fatal("same salt twice")
	}
}

func TestPasswordRules(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"short", " leading space pw", strings.Repeat("a", MaxPasswordLen+1)} {
		if _, err := HashPassword(pw); err == nil {
			t.Errorf("accepted %q", pw)
		}
	}
}

func TestVerifyRefusesTamperedHash(t *testing.T) {
	t.Parallel()
	for _, h := range []string{
		"",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5", // 4 GiB
		"$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
	} {
		if err := VerifyPassword(h, "correct horse battery"); err == nil || err == ErrMismatch {
			t.Errorf("%q: %v", h, err)
		}
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := NewLockout(c.now, 3, 10*time.Minute, 15*time.Minute, 100)
	for i := range 2 {
		if l.Fail("alice") {
			t.Fatalf("locked after %d", i+1)
		}
	}
	if !l.Fail("alice") {
		t.Fatal("not locked after 3")
	}
	if ok, wait := l.Allowed("alice"); ok || wait != 15*time.Minute {
		t.Fatalf("allowed=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allowed("bob"); !ok {
		t.Fatal("bob locked by alice")
	}
	c.add(15 * time.Minute)
	if ok, _ := l.Allowed("alice"); !ok {
		t.Fatal("still locked after lock time")
	}
	l.Fail("alice")
	l.Succeed("alice")
	l.Fail("alice")
	l.Fail("alice")
	if ok, _ := l.Allowed("alice"); !ok {
		t.Fatal("success did not clear failures")
	}
}

func TestLockoutBoundedNames(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := NewLockout(c.now, 3, time.Minute, time.Minute, 2)
	l.Fail("a")
	l.Fail("b")
	if ok, _ := l.Allowed("c"); ok {
		t.Fatal("a full table admitted a new name")
	}
	c.add(2 * time.Minute)
	if ok, _ := l.Allowed("c"); !ok {
		t.Fatal("expired names not evicted")
	}
}

func TestSessionsTimeouts(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := NewSessions(c.now, 15*time.Minute, time.Hour, 10)
	id, sess, err := s.Create("alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.CSRF) < 40 || len(id) < 40 || sess.CSRF == id {
		t.Fatal("weak tokens")
	}
	for range 4 { // active use keeps it alive until the absolute limit
		c.add(14 * time.Minute)
		if _, err := s.Lookup(id); err != nil {
			t.Fatalf("active session ended: %v", err)
		}
	}
	c.add(5 * time.Minute) // 61 min since sign-in, 5 idle
	if _, err := s.Lookup(id); err != ErrNoSession {
		t.Fatal("absolute timeout not enforced")
	}
	id2, _, _ := s.Create("alice")
	c.add(15 * time.Minute)
	if _, err := s.Lookup(id2); err != ErrNoSession {
		t.Fatal("idle timeout not enforced")
	}
	id3, _, _ := s.Create("alice")
	s.End(id3)
	if _, err := s.Lookup(id3); err != ErrNoSession {
		t.Fatal("sign-out did not end the session")
	}
	id4, _, _ := s.Create("alice")
	s.EndUser("alice")
	if _, err := s.Lookup(id4); err != ErrNoSession {
		t.Fatal("EndUser left a session")
	}
	if _, err := s.Lookup(strings.Repeat("x", 1000)); err != ErrNoSession {
		t.Fatal("oversized cookie")
	}
}

func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	line := Cookie("v", 0).String()
	for _, want := range []string{"__Host-ostiary-console=v", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(line, want) {
			t.Errorf("cookie %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "Domain") {
		t.Errorf("cookie %q has a Domain", line)
	}
}

func TestCSRFMatches(t *testing.T) {
	t.Parallel()
	s := Session{CSRF: "abc"}
	if CSRFMatches(s, "") || CSRFMatches(s, "abd") || CSRFMatches(Session{}, "") || !CSRFMatches(s, "abc") {
		t.Fatal("CSRF comparison wrong")
	}
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	mk := func(method string, hdr map[string]string) *http.Request {
		r := httptest.NewRequest(method, "http://127.0.0.1:8080/console/approvals/1/approve", nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	cases := []struct {
		name string
		r    *http.Request
		ok   bool
	}{
		{"same origin", mk("POST", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}), true},
		{"origin only", mk("POST", map[string]string{"Origin": "http://127.0.0.1:8080"}), true},
		{"fetch-site only", mk("POST", map[string]string{"Sec-Fetch-Site": "same-origin"}), true},
		{"GET", mk("GET", map[string]string{"Sec-Fetch-Site": "same-origin"}), false},
		{"cross site", mk("POST", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}), false},
		{"same site", mk("POST", map[string]string{"Sec-Fetch-Site": "same-site"}), false},
		{"other port", mk("POST", map[string]string{"Origin": "http://127.0.0.1:9090"}), false},
		{"https origin on http", mk("POST", map[string]string{"Origin": "https://127.0.0.1:8080"}), false},
		{"null origin", mk("POST", map[string]string{"Origin": "null"}), false},
		{"neither", mk("POST", nil), false},
	}
	for _, c := range cases {
		if err := SameOrigin(c.r, false); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/console/", nil))
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Error("CSP allows inline")
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Error("missing headers")
	}
}

func TestRequireTLSOrLoopback(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true,
		"0.0.0.0:8080": false, "10.0.0.5:8080": false, ":8080": false, "bad": false,
	} {
		if err := RequireTLSOrLoopback(addr, false); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if err := RequireTLSOrLoopback("0.0.0.0:8443", true); err != nil {
		t.Error(err)
	}
}
