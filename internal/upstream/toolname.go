package upstream

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
