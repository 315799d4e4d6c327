// format_test.go: tests of how user input and durations are shown.
package main

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	long := strings.Repeat("a", 39) + "é" + strings.Repeat("b", 10<<20) // é straddles byte 40
	cases := []struct{ in, want string }{
		{"short", `"short"`},
		{strings.Repeat("x", quoteBytes), `"` + strings.Repeat("x", quoteBytes) + `"`},
		{long, `"` + strings.Repeat("a", 39) + `"... (10485801 bytes)`},
		{"\xff\xfe" + strings.Repeat("\x80", 50), // not UTF-8: cut at most 3 bytes back
			`"\xff\xfe` + strings.Repeat(`\x80`, 35) + `"... (52 bytes)`},
	}
	for _, tc := range cases {
		if got := quote(tc.in); got != tc.want {
			t.Errorf("quote(%.50q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got, n := clip(long); got != strings.Repeat("a", 39)+"..." || n != len(long) || !utf8.ValidString(got) {
		t.Errorf("clip: %q, %d", got, n)
	}
	if got, n := clip("whole"); got != "whole" || n != 0 {
		t.Errorf("clip(whole): %q, %d", got, n)
	}
}

func TestRoundDuration(t *testing.T) {
	cases := []struct{ in, want time.Duration }{
		{2999999299, 3 * time.Second},
		{4750 * time.Millisecond, 4800 * time.Millisecond},
		{123456789, 123 * time.Millisecond},
		{10499974433, 10500 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := roundDuration(tc.in); got != tc.want {
			t.Errorf("roundDuration(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
