package catalog

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
)

// Reasons Scan flags a definition for, in the order it reports them.
const (
	FlagImperative    = "imperative-to-model" // instructions addressed to the model
	FlagHiddenUnicode = "hidden-unicode"      // tag, bidi-control or zero-width characters
	FlagMarkupBlock   = "markup-block"        // <IMPORTANT>, <SYSTEM>, <instructions>… tags
	FlagEmail         = "email-address"
	FlagURL           = "url"
)

var flagOrder = []string{FlagImperative, FlagHiddenUnicode, FlagMarkupBlock, FlagEmail, FlagURL}

// Holds reports whether flags keep a new tool from being activated by its
// upstream's first sync: text addressed to the model, hidden characters or
// markup blocks. An address or a URL alone is common in honest
// descriptions (a link to the docs); it is shown to the reviewer but does
// not hold the tool.
func Holds(flags []string) bool {
	for _, f := range flags {
		switch f {
		case FlagImperative, FlagHiddenUnicode, FlagMarkupBlock:
			return true
		}
	}
	return false
}

// imperativeRE matches phrases that address the model rather than describe
// the tool: what tool-poisoning descriptions use to steer an agent (the
// phrases of published attacks, kept short and specific so that honest
// descriptions rarely match). Matched against lower-cased text with
// whitespace runs collapsed and hidden characters removed.
var imperativeRE = regexp.MustCompile(`\b(?:` + strings.Join([]string{
	`(?:ignore|disregard|forget|override) (?:all |any |the |your )?(?:previous|prior|above|earlier|other|system)? ?(?:instructions|prompts?|rules|guidelines)`,
	`you must`,
	`you are now`,
	`new instructions`,
	`system prompt`,
	`(?:do not|don't|never) (?:tell|mention|inform|reveal|show|notify|alert) (?:this to )?(?:the|your) user`,
	`without (?:telling|informing|notifying|asking) (?:the|your) user`,
	`before (?:using|calling|invoking|running) (?:this|any|the) tool`,
	`always (?:call|use|invoke|run|include|send|pass)`,
	`(?:read|send|include|pass|upload) (?:the )?(?:contents of )?~/`,
}, "|") + `)`)

// markupRE matches the pseudo-markup blocks injected text hides behind.
var markupRE = regexp.MustCompile(`(?i)<\s*/?\s*(?:important|system|instructions?|secret|hidden|admin|assistant|prompt|context)\b[^<>]{0,200}>`)

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	urlRE   = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]{1,15}://[^\s"'<>]|\bwww\.[a-z0-9-]+\.[a-z]`)
)

// hidden reports characters that render as nothing or reorder text: tag
// characters (U+E0000–E007F, which can spell a whole invisible message),
// bidi embedding, override and isolate controls, and zero-width ones.
func hidden(r rune) bool {
	switch {
	case r >= 0xE0000 && r <= 0xE007F,
		r >= 0x202A && r <= 0x202E,
		r >= 0x2066 && r <= 0x2069,
		r >= 0x200B && r <= 0x200D,
		r == 0x2060, r == 0xFEFF:
		return true
	}
	return false
}

// Scan looks for instruction-like content in a tool definition (JSON): in
// every string of it, object keys included, so descriptions, titles,
// property descriptions, enum values and defaults of the schemas alike. It
// returns the reasons found, in a fixed order; none: nil. It is pure and
// linear in the size of def (RE2 expressions), so a hostile definition
// costs no more than its length. A definition that is not JSON is scanned
// as text.
func Scan(def []byte) []string {
	var v any
	var texts []string
	if json.Unmarshal(def, &v) == nil {
		texts = collectStrings(v, nil, "")
	} else {
		texts = []string{string(def)}
	}
	found := map[string]bool{}
	for _, s := range texts {
		scanText(s, found)
	}
	var out []string
	for _, f := range flagOrder {
		if found[f] {
			out = append(out, f)
		}
	}
	return out
}

func scanText(s string, found map[string]bool) {
	if strings.ContainsFunc(s, hidden) {
		found[FlagHiddenUnicode] = true
		s = strings.Map(func(r rune) rune {
			if hidden(r) {
				return -1
			}
			return r
		}, s)
	}
	if markupRE.MatchString(s) {
		found[FlagMarkupBlock] = true
	}
	if emailRE.MatchString(s) {
		found[FlagEmail] = true
	}
	if urlRE.MatchString(s) {
		found[FlagURL] = true
	}
	if imperativeRE.MatchString(strings.Join(strings.Fields(strings.ToLower(s)), " ")) {
		found[FlagImperative] = true
	}
}

// collectStrings collects the strings of a decoded JSON value, keys included.
// The value of a "$schema" keyword naming a json-schema.org meta-schema is
// left out: it is a URL in almost every schema, and says nothing to the
// model.
func collectStrings(v any, out []string, key string) []string {
	switch v := v.(type) {
	case string:
		if key == "$schema" && (strings.HasPrefix(v, "https://json-schema.org/") || strings.HasPrefix(v, "http://json-schema.org/")) {
			return out
		}
		return append(out, v)
	case []any:
		for _, e := range v {
			out = collectStrings(e, out, "")
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = collectStrings(v[k], append(out, k), k)
		}
	}
	return out
}
