package govern

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/upstream"
)

// ToolRequest is a tools/call as the front door decoded it.
type ToolRequest struct {
	Name   string
	Args   Args
	ArgErr error                 // why the arguments are not acceptable (ParseArgs), refused once the tool is known
	Client upstream.Continuation // as the client sent it: the requestState is Ostiary's
	// Snapshot, if set, is the catalog snapshot the front door checked the
	// request against (its Mcp-Param-* headers): the call is resolved in
	// it, so that one request sees one catalog.
	Snapshot *catalog.Snapshot
}

// Args are call arguments: ParseArgs parses them strictly and returns them with their
// canonical (RFC 8785) form and its SHA-256, so that the audit log can
// prove which arguments a call carried without holding them, and an
// approval can bind them. The canonical bytes are also what the upstream
// gets: what is hashed, validated, decided on, shown to an approver and
// forwarded is one text. Arguments that would not be that one text are
// refused: member names equal under case folding ({"ms":1,"MS":3000}),
// and numbers the canonical form cannot carry exactly (jcs.Exact).
type Args struct {
	value     any // numbers rewritten to their canonical text
	raw       json.RawMessage
	canonical []byte
	digest    string
}

func ParseArgs(raw json.RawMessage) (Args, error) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	v, err := strictjson.Parse(raw)
	if err != nil {
		return Args{}, err
	}
	return CanonicalArgs(v)
}

// CanonicalArgs is ParseArgs for a value already parsed strictly (and
// owned by the caller: its numbers are rewritten in place).
func CanonicalArgs(v any) (Args, error) {
	if _, ok := v.(map[string]any); !ok {
		return Args{}, errors.New("arguments must be an object")
	}
	if c := strictjson.FindCaseCollision(v, "$"); c != nil {
		return Args{}, c
	}
	if err := jcs.Exact(v, "$"); err != nil {
		return Args{}, err
	}
	c, err := jcs.Append(nil, v)
	if err != nil {
		return Args{}, err
	}
	sum := sha256.Sum256(c)
	return Args{v, c, c, hex.EncodeToString(sum[:])}, nil
}
