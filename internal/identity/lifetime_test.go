package identity_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/identity"
)

// FuzzParseLifetime: an accepted lifetime is positive and at most
// MaxKeyLifetime, and is exactly what was written: N days, or the Go
// duration; a refusal is short, whatever it was given.
func FuzzParseLifetime(f *testing.F) {
	for _, s := range []string{"30d", "90m", "12h", "3650d", "3651d", "213504d", "-213503d", "0d", "1h30m", "-5m", "d", "+1d", "1e3d", "9223372036854775807d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := identity.ParseLifetime(s)
		if err != nil {
			if len(err.Error()) > 400 { // the input is quoted, clipped to 64 bytes
				t.Fatalf("ParseLifetime(%q): a %d-byte error", s, len(err.Error()))
			}
			return
		}
		if d <= 0 || d > identity.MaxKeyLifetime {
			t.Fatalf("ParseLifetime(%q) = %v, out of bounds", s, d)
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			n, err := strconv.Atoi(days)
			if err != nil || time.Duration(n)*24*time.Hour != d || n < 1 || n > 3650 {
				t.Fatalf("ParseLifetime(%q) = %v, not %s days", s, d, days)
			}
			return
		}
		if want, err := time.ParseDuration(s); err != nil || want != d {
			t.Fatalf("ParseLifetime(%q) = %v, time.ParseDuration says %v, %v", s, d, want, err)
		}
	})
}
