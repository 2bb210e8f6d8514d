package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/upstream"
)

// codeHeaderMismatch is the JSON-RPC error of a request whose HTTP headers
// disagree with its body (2026-07-28, SEP-2243).
const codeHeaderMismatch = -32020

// checkParamHeaders verifies a 2026-07-28 tools/call's Mcp-Param-* headers
// against its arguments for each x-mcp-header of the pinned schema: the
// header is present exactly when the argument is (and not null), decodes
// (a "=?base64?…?=" value is strict Base64; anything else is literal), and
// equals the argument. Errors are safe to show.
func checkParamHeaders(h http.Header, bindings []catalog.ParamHeader, args map[string]any) error {
	for _, b := range bindings {
		val, present := upstream.ArgAt(args, b.Path)
		hv, sent := h[http.CanonicalHeaderKey(b.Header)]
		where := strings.Join(b.Path, ".")
		if !present {
			if sent {
				return fmt.Errorf("header mismatch: %s sent for absent or null argument %q", b.Header, where)
			}
			continue
		}
		if !sent || len(hv) != 1 {
			return fmt.Errorf("header mismatch: argument %q needs exactly one %s header", where, b.Header)
		}
		decoded, ok := decodeParam(strings.Trim(hv[0], " \t"))
		if !ok {
			return fmt.Errorf("header mismatch: %s is not valid Base64", b.Header)
		}
		if !paramEqual(decoded, val) {
			return fmt.Errorf("header mismatch: %s does not match argument %q", b.Header, where)
		}
	}
	return nil
}

func decodeParam(v string) (string, bool) {
	if enc, ok := strings.CutPrefix(v, "=?base64?"); ok {
		if enc, ok = strings.CutSuffix(enc, "?="); ok {
			b, err := base64.StdEncoding.Strict().DecodeString(enc)
			return string(b), err == nil
		}
	}
	return v, true
}

// paramEqual compares a decoded header with a primitive argument: strings
// exactly, booleans as true/false, numbers by value.
func paramEqual(h string, v any) bool {
	switch v := v.(type) {
	case string:
		return h == v
	case bool:
		return h == fmt.Sprint(v)
	case json.Number:
		a, okA := new(big.Rat).SetString(h)
		b, okB := new(big.Rat).SetString(v.String())
		return okA && okB && a.Cmp(b) == 0
	}
	return false
}
