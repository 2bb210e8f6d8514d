package vault

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Period is a rotation schedule: how long a version may serve before it is
// due to be replaced. Zero: no schedule.
type Period time.Duration

// Bounds of a schedule.
const (
	MinPeriod = Period(time.Hour)
	MaxPeriod = Period(10 * 366 * 24 * time.Hour)
)

const day = 24 * time.Hour

// ParsePeriod reads a schedule: N followed by d (days), w (weeks) or h
// (hours), e.g. 90d; "none" (or "0") clears it. Errors are safe to show.
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(s)
	if s == "none" || s == "0" {
		return 0, nil
	}
	if len(s) < 2 {
		return 0, fmt.Errorf("rotation period %q: write N followed by d, w or h (e.g. 90d), or none", clipText(s))
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	var unit time.Duration
	switch s[len(s)-1] {
	case 'd':
		unit = day
	case 'w':
		unit = 7 * day
	case 'h':
		unit = time.Hour
	}
	if err != nil || unit == 0 {
		return 0, fmt.Errorf("rotation period %q: write N followed by d, w or h (e.g. 90d), or none", clipText(s))
	}
	p := Period(time.Duration(n) * unit)
	if n == 0 || p < MinPeriod || p > MaxPeriod || time.Duration(n) > time.Duration(MaxPeriod)/unit {
		return 0, fmt.Errorf("rotation period %q: between 1h and 3660d", clipText(s))
	}
	return p, nil
}

// String writes p as ParsePeriod reads it.
func (p Period) String() string {
	d := time.Duration(p)
	switch {
	case d == 0:
		return "none"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
}

// MarshalText writes p as "90d".
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads p with ParsePeriod.
func (p *Period) UnmarshalText(b []byte) error {
	v, err := ParsePeriod(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
