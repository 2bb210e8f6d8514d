package upstream

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// decodeParamHeader reads a Mcp-Param-* value as SEP-2243 has a server
// read it: optional whitespace trimmed, "=?base64?…?=" strict base64,
// anything else literal.
func decodeParamHeader(v string) (string, bool) {
	v = strings.Trim(v, " \t")
	if enc, ok := strings.CutPrefix(v, "=?base64?"); ok {
		if enc, ok = strings.CutSuffix(enc, "?="); ok {
			b, err := base64.StdEncoding.Strict().DecodeString(enc)
			return string(b), err == nil
		}
	}
	return v, true
}

// FuzzParamHeaderValues: every Mcp-Param-* value Ostiary sends is a valid
// header value that a server decodes back to exactly the argument (a
// string), its true/false (a boolean), or its integer (a number, sent only
// when it is an integer within ±(2^53−1)).
func FuzzParamHeaderValues(f *testing.F) {
	f.Add("eu-west-1", "42", true)
	f.Add(" padded ", "1.5", false)
	f.Add("Zoë\r\nX-Evil: 1", "9007199254740993", true)
	f.Add("=?base64?SGVsbG8=?=", "-0", false)
	f.Add("=?base64?=", "1e3", true)
	f.Add("", "1e400", false)
	f.Fuzz(func(t *testing.T, s, number string, b bool) {
		args := map[string]any{"s": s, "n": json.Number(number), "b": b, "o": map[string]any{"s": s}}
		bindings := []spec.ParamHeader{{Path: []string{"s"}, Header: "Mcp-Param-S"}, {Path: []string{"n"}, Header: "Mcp-Param-N"},
			{Path: []string{"b"}, Header: "Mcp-Param-B"}, {Path: []string{"o", "s"}, Header: "Mcp-Param-O"}}
		got := paramHeaderValues(bindings, args)
		for h, v := range got {
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] > 0x7e {
					t.Fatalf("%s: byte %#x in %q", h, v[i], v)
				}
			}
			if strings.Trim(v, " \t") != v {
				t.Fatalf("%s: %q has whitespace HTTP would trim", h, v)
			}
		}
		for _, h := range []string{"Mcp-Param-S", "Mcp-Param-O"} {
			if dec, ok := decodeParamHeader(got[h]); !ok || dec != s {
				t.Fatalf("%s: %q decodes to %q (%v), not %q", h, got[h], dec, ok, s)
			}
		}
		if got["Mcp-Param-B"] != strconv.FormatBool(b) {
			t.Fatalf("boolean %v sent as %q", b, got["Mcp-Param-B"])
		}
		v, sent := got["Mcp-Param-N"]
		fl, err := strconv.ParseFloat(number, 64)
		integral := err == nil && fl == math.Trunc(fl) && math.Abs(fl) <= 1<<53-1
		if sent != integral {
			t.Fatalf("number %q: sent %v (%q)", number, sent, v)
		}
		if sent {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || float64(n) != fl {
				t.Fatalf("number %q sent as %q", number, v)
			}
		}
	})
}
