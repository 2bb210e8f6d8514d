package openapi

import (
	"fmt"
	"strings"
	"testing"
)

// References fanning out (each schema using the next twice, 25 deep:
// 2^25 values inlined) are refused once past the bound, not expanded; so
// is a YAML alias bomb, by the parser.
func TestMapBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"operationId":"x","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/S0"}}}}}}}},"components":{"schemas":{`)
	for i := range 25 {
		fmt.Fprintf(&b, `"S%d":{"type":"object","properties":{"a":{"$ref":"#/components/schemas/S%d"},"b":{"$ref":"#/components/schemas/S%d"}}},`, i, i+1, i+1)
	}
	b.WriteString(`"S25":{"type":"string"}}}}`)
	if _, err := Map([]byte(b.String()), nil); err == nil || !strings.Contains(err.Error(), "expand to more than") {
		t.Errorf("fan-out: %v", err)
	}
	bomb := "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\nx-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	for i, c := range "bcdefgh" {
		prev := string("abcdefgh"[i])
		bomb += fmt.Sprintf("x-%c: &%c [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", c, c, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	if _, err := Map([]byte(bomb), nil); err == nil {
		t.Error("a YAML alias bomb was mapped")
	}
}

// A chain of references (each schema's property the next schema, 2,000
// long: 164 KB) is refused for its depth before the document is validated,
// which walks every component through every reference it makes: the old
// mapping spent 27 s of CPU on this one (3 minutes at 20,000) and mapped
// it. Nesting written out is bounded the same way.
func TestMapDeepReferences(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"operationId":"x","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/S0"}}}}}}}},"components":{"schemas":{`)
	const n = 2000
	for i := range n {
		fmt.Fprintf(&b, `"S%d":{"type":"object","properties":{"a":{"$ref":"#/components/schemas/S%d"}}},`, i, i+1)
	}
	fmt.Fprintf(&b, `"S%d":{"type":"string"}}}}`, n)
	if _, err := Map([]byte(b.String()), nil); err == nil || !strings.Contains(err.Error(), "nests deeper than") {
		t.Errorf("a chain of %d references: %v", n, err)
	}
	schema := strings.Repeat(`{"type":"object","properties":{"a":`, 200) + `{"type":"string"}` + strings.Repeat(`}}`, 200)
	doc := `{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"operationId":"x","responses":{"200":{"description":"ok","content":{"application/json":{"schema":` + schema + `}}}}}}}}`
	if _, err := Map([]byte(doc), nil); err == nil || !strings.Contains(err.Error(), "nests deeper than") {
		t.Errorf("200 nested objects: %v", err)
	}
	// Nesting a real API uses maps.
	schema = strings.Repeat(`{"type":"object","properties":{"a":`, 30) + `{"type":"string"}` + strings.Repeat(`}}`, 30)
	doc = `{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"operationId":"x","responses":{"200":{"description":"ok","content":{"application/json":{"schema":` + schema + `}}}}}}}}`
	if _, err := Map([]byte(doc), nil); err != nil {
		t.Errorf("30 nested objects: %v", err)
	}
}
