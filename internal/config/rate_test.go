package config

import (
	"math"
	"strconv"
	"testing"
)

// A rate is a positive, finite number of requests per second with a burst
// of at least one: NaN (which a token bucket compares false against, so
// that it never refuses) and infinities are refused, and a huge rate's
// default burst is the largest one, not an overflow.
func TestParseRateBounds(t *testing.T) {
	for _, bad := range []string{"NaN/s", "nan/m", "Inf/s", "+Inf/m", "-Inf/s", "infinity/s"} {
		if r, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %+v, accepted", bad, r)
		}
	}
	if r, err := ParseRate("1e300/s"); err != nil || r.Burst != math.MaxInt32 {
		t.Errorf("ParseRate(1e300/s) = %+v, %v", r, err)
	}
}

// FuzzParseRate: whatever ParseRate accepts is "off" or a positive finite
// rate with a burst of at least one, and written back as N/s,burst=B it
// parses to the same rate.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10/s", "120/m", "5/s,burst=50", "off", "0", "0.5/s", "1e-3/m", "NaN/s", "7/h", "3/s,burst=-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r == (Rate{}) {
			return // off
		}
		if !(r.Per > 0) || math.IsInf(r.Per, 0) || r.Burst < 1 {
			t.Fatalf("ParseRate(%q) = %+v", s, r)
		}
		back := strconv.FormatFloat(r.Per, 'g', -1, 64) + "/s,burst=" + strconv.Itoa(r.Burst)
		if again, err := ParseRate(back); err != nil || again != r {
			t.Fatalf("ParseRate(%q) = %+v, but %q parses to %+v, %v", s, r, back, again, err)
		}
	})
}
