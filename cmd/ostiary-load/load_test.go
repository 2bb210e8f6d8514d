package main

import (
	"runtime"
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A command name holding spaces and a ')' must not shift the fields.
	line := "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 269 0 0 20 0 9 0 12345 1000000 500 18446744073709551615\n"
	got, err := parseStat([]byte(line))
	if err != nil || got != 731+269 {
		t.Fatalf("parseStat = %d, %v; want 1000", got, err)
	}
	for _, bad := range []string{"", "4242 no parentheses S 1", "4242 (short) S 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted it", bad)
		}
	}
}

func TestParsePairs(t *testing.T) {
	// Ostiary's 2026 client of a 2025 upstream is compared with a 2025
	// client's direct and proxy runs: choosing it alone measures those too.
	got, err := parsePairs("2026/2025")
	want := []pair{{era2026, era2025}, {era2025, era2025}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("parsePairs = %v, %v; want %v", got, err, want)
	}
	got, err = parsePairs("2026/2026, 2026/2026,2025/2026")
	want = []pair{{era2026, era2026}, {era2025, era2026}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("parsePairs = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "2026", "2024/2026", "2026/2026,"} {
		if _, err := parsePairs(bad); err == nil {
			t.Errorf("parsePairs(%q) accepted it", bad)
		}
	}
}

func TestClockTicks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the auxiliary vector is read from /proc/self/auxv")
	}
	// Linux passes AT_CLKTCK to every process: reading it must find it,
	// not fall back to the assumed 100.
	if hz, source := clockTicks(); source != "AT_CLKTCK" || hz <= 0 {
		t.Fatalf("clockTicks = %d, %q; want AT_CLKTCK from the auxiliary vector", hz, source)
	}
}
