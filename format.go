// format.go: how the binary shows people what they sent and how long things took: a
// short prefix and the size of an input that may be megabytes long, never the whole;
// durations rounded, not to the nanosecond.
package main

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// quoteBytes is the most of a user's input that an error or a -json result repeats.
const quoteBytes = 40

// quote returns s Go-quoted if it is at most quoteBytes long, else its quoted prefix
// followed by "..." and its size: "aaaa"... (10485760 bytes).
func quote(s string) string {
	if len(s) <= quoteBytes {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(clipPrefix(s)), len(s))
}

// clip returns s, or if it is longer than quoteBytes its prefix with "..." appended and
// its full size (0 if s is whole).
func clip(s string) (string, int) {
	if len(s) <= quoteBytes {
		return s, 0
	}
	return clipPrefix(s) + "...", len(s)
}

// clipPrefix is the first quoteBytes of s, cut back to the start of a UTF-8 sequence so
// that no character is split (at most utf8.UTFMax-1 bytes back: bytes that are not
// UTF-8 are cut anywhere).
func clipPrefix(s string) string {
	cut := quoteBytes
	for back := 0; back < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); back++ {
		cut--
	}
	return s[:cut]
}

// roundDuration rounds d for people: to the millisecond below a second, else to a tenth
// of a second (2.999999299s is 3s).
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
