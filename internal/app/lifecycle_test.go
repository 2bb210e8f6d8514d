package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/vault"
)

// The server's own job alerts on an overdue secret (on the server's
// clock) and keeps alerting daily; a data-key rotation started through
// the API finishes while the server serves, and the secret is still
// there, not overdue once rotated.
func TestServerAlertsOverdueAndRekeys(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.VaultCheckEvery = 10 * time.Millisecond })
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": "tok-life-1", "upstreams": []string{"fin"}, "rotate_every": "1h"}), http.StatusOK)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": "tok-life-2", "upstreams": []string{"fin"}, "rotate_every": "90 days"}), http.StatusBadRequest)
	overdue := func() int { return len(records(t, s, audit.Query{Event: vault.EventOverdue})) }
	time.Sleep(30 * time.Millisecond)
	if n := overdue(); n != 0 {
		t.Fatalf("%d alerts before the secret is due", n)
	}
	s.Clock.Advance(61 * time.Minute)
	testutil.Eventually(t, 10*time.Second, func() bool { return overdue() == 1 }, "no overdue alert from the server")
	s.Clock.Advance(24 * time.Hour)
	testutil.Eventually(t, 10*time.Second, func() bool { return overdue() == 2 }, "no alert a day later")

	r := s.Do("POST", "/api/v1/vault/rekey", s.AdminKey, nil)
	mustStatus(t, r, http.StatusAccepted)
	testutil.Eventually(t, 10*time.Second, func() bool {
		var st vault.RekeyStatus
		s.Do("GET", "/api/v1/vault/rekey", s.AdminKey, nil).JSON(t, &st)
		return st.DataKey == 2 && len(st.Retiring) == 0
	}, "the rotation did not finish")
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": "tok-life-3", "upstreams": []string{"fin"}}), http.StatusOK)
	var l struct {
		Secrets []vault.Secret `json:"secrets"`
	}
	s.Do("GET", "/api/v1/secrets?overdue=true", s.AdminKey, nil).JSON(t, &l)
	if len(l.Secrets) != 0 {
		t.Errorf("overdue after the rotation: %+v", l.Secrets)
	}
	s.Do("GET", "/api/v1/secrets", s.AdminKey, nil).JSON(t, &l)
	if len(l.Secrets) != 1 || l.Secrets[0].Version != 2 || l.Secrets[0].RotateEvery != vault.Period(time.Hour) {
		t.Errorf("listed %+v", l.Secrets)
	}
}
