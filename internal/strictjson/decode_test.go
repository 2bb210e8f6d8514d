package strictjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

type decodeTarget struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Tags  []string          `json:"tags"`
	Meta  map[string]string `json:"meta"`
	Inner *struct {
		ID string `json:"id"`
		OK bool   `json:"ok"`
	} `json:"inner"`
	Skip string `json:"-"`
}

var decodeFields = map[string]bool{"name": true, "count": true, "tags": true, "meta": true, "inner": true}

// FuzzDecode: what Decode accepts, encoding/json (refusing unknown fields)
// reads the same way; its keys are exactly the fields' names (never a case
// variant, which encoding/json would take); and the value, encoded again,
// decodes to itself.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"a","count":2,"tags":["x"],"meta":{"k":"v"},"inner":{"id":"i","ok":true}}`, `{"NAME":"a"}`, `{"name":"a","name":"b"}`,
		`{"meta":{"K":"1","k":"2"}}`, `{"Skip":"x"}`, `{"inner":null}`, `{"count":1e2}`, `[]`, `{"name":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v decodeTarget
		if err := Decode(data, &v); err != nil {
			if len(err.Error()) > 512 {
				t.Fatalf("a %d-byte error", len(err.Error()))
			}
			return
		}
		var w decodeTarget
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("Decode(%q) = %+v; encoding/json: %+v, %v", data, v, w, err)
		}
		tree, _ := Parse(data)
		if obj, ok := tree.(map[string]any); ok {
			for k := range obj {
				if !decodeFields[k] {
					t.Fatalf("Decode(%q) took the key %q", data, k)
				}
			}
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var x decodeTarget
		if err := Decode(again, &x); err != nil || !reflect.DeepEqual(v, x) {
			t.Fatalf("Decode(%q) = %+v, but its encoding %s decodes to %+v, %v", data, v, again, x, err)
		}
	})
}
