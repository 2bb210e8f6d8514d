package spec

import (
	"unicode"
	"unicode/utf8"
)

// MaxToolName bounds a tool name.
const MaxToolName = 128

// ValidToolName reports whether name may be a tool name: 1–128 ASCII
// letters, digits, '_', '-', '.' or '/'. Anything else (Unicode look-alikes,
// NUL, spaces, control characters) is refused rather than normalised, so no
// spelling of a name can reach a different tool.
func ValidToolName(name string) bool {
	if name == "" || len(name) > MaxToolName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '/') {
			return false
		}
	}
	return true
}

// MaxDisplayName bounds a resource's name, in bytes.
const MaxDisplayName = 256

// ValidDisplayName reports whether name may be a resource's or a resource
// template's name. Unlike a tool's, it is a display name ("Dynamic Text
// Resource"): a resource is identified by its URI, and its name is only
// shown. So any printable text is accepted, 1–256 bytes of valid UTF-8 of
// which every character is printable (unicode.IsPrint: letters, marks,
// numbers, punctuation, symbols and the ASCII space); control and format
// characters (NUL, newlines, bidirectional overrides, zero-width ones),
// other spaces and invalid UTF-8 are refused, so a name cannot rewrite a
// log line, an audit record or what a person reads around it.
func ValidDisplayName(name string) bool {
	if name == "" || len(name) > MaxDisplayName || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
