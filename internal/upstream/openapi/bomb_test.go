package openapi

import (
	"fmt"
	"strings"
	"testing"
)

// References fanning out (each schema using the next twice, 40 deep:
// 2^40 values inlined) are refused once past the bound, not expanded; so
// is a YAML alias bomb, by the parser.
func TestMapBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"operationId":"x","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/S0"}}}}}}}},"components":{"schemas":{`)
	for i := range 40 {
		fmt.Fprintf(&b, `"S%d":{"type":"object","properties":{"a":{"$ref":"#/components/schemas/S%d"},"b":{"$ref":"#/components/schemas/S%d"}}},`, i, i+1, i+1)
	}
	b.WriteString(`"S40":{"type":"string"}}}}`)
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
