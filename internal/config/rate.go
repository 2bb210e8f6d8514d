package config

import (
	"fmt"
	"math"
)

// Rate is a token bucket: Per requests per second, bursts up to Burst.
// A zero Per means no limit.
type Rate struct {
	Per   float64
	Burst int
}

// ParseRate reads "N/s" or "N/m" (optionally ",burst=B"), or "off".
func ParseRate(s string) (Rate, error) {
	if s == "off" || s == "0" {
		return Rate{}, nil
	}
	var n float64
	var unit string
	burst := 0
	if _, err := fmt.Sscanf(s, "%g/%1s,burst=%d", &n, &unit, &burst); err != nil {
		if _, err := fmt.Sscanf(s, "%g/%1s", &n, &unit); err != nil {
			return Rate{}, fmt.Errorf("rate %q: want N/s or N/m, optionally ,burst=B, or off", s)
		}
	}
	switch unit {
	case "s":
	case "m":
		n /= 60
	default:
		return Rate{}, fmt.Errorf("rate %q: the unit is s or m", s)
	}
	if !(n > 0) || math.IsInf(n, 0) || burst < 0 { // NaN compares false: it would disable the limiter
		return Rate{}, fmt.Errorf("rate %q must be positive", s)
	}
	if burst == 0 {
		burst = int(max(1, min(math.Ceil(2*n), math.MaxInt32))) // converted unclamped, 1e300 overflowed to burst 1
	}
	return Rate{Per: n, Burst: burst}, nil
}
