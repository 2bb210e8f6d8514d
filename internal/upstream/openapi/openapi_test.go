package openapi

import (
	"encoding/json"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

func petstore(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/petstore.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every operation of the Petstore becomes a tool, named by its
// operationId, with its parameters and body as arguments, references
// resolved, and its binding pinned with it.
func TestMapPetstore(t *testing.T) {
	tools, err := Map(petstore(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]map[string]any{}
	for _, tool := range tools {
		names = append(names, tool.Name)
		byName[tool.Name] = tool.InputSchema.(map[string]any)
		if _, ok := Bound(tool.Meta); !ok {
			t.Errorf("%s has no binding", tool.Name)
		}
	}
	slices.Sort(names)
	want := []string{"addPet", "createUser", "createUsersWithListInput", "deleteOrder", "deletePet", "deleteUser", "findPetsByStatus", "findPetsByTags",
		"getInventory", "getOrderById", "getPetById", "getUserByName", "loginUser", "logoutUser", "placeOrder", "updatePet", "updatePetWithForm", "updateUser", "uploadFile"}
	if !slices.Equal(names, want) {
		t.Fatalf("tools: %v", names)
	}
	get := mustJSON(t, byName["getPetById"])
	if !strings.Contains(get, `"petId":{"description":"ID of pet to return","format":"int64","not":{"enum":["",".",".."]},"type":"integer"}`) || !strings.Contains(get, `"required":["petId"]`) {
		t.Errorf("getPetById: %s", get)
	}
	add := mustJSON(t, byName["addPet"])
	if !strings.Contains(add, `"category":{"properties":{"id"`) || strings.Contains(add, "$ref") || !strings.Contains(add, `"required":["body"]`) || !strings.Contains(add, `"required":["name","photoUrls"]`) {
		t.Errorf("addPet: %s", add)
	}
	del := mustJSON(t, byName["deletePet"])
	if !strings.Contains(del, `"api_key":{"pattern"`) {
		t.Errorf("deletePet: %s", del)
	}
	up := mustJSON(t, byName["uploadFile"])
	if !strings.Contains(up, `"contentEncoding":"base64"`) {
		t.Errorf("uploadFile: %s", up)
	}
	for _, tool := range tools {
		ro := tool.Annotations.ReadOnlyHint
		b, _ := Bound(tool.Meta)
		if ro != (b.Method == "GET") || (b.Method == "DELETE") != (*tool.Annotations.DestructiveHint) {
			t.Errorf("%s (%s): annotations %+v", tool.Name, b.Method, tool.Annotations)
		}
		if tool.Name == "findPetsByStatus" && (b.Output == nil || !b.Output.Wrapped || tool.OutputSchema == nil) {
			t.Errorf("findPetsByStatus output: %+v", b.Output)
		}
		if tool.Name == "getPetById" && (b.Output == nil || b.Output.Wrapped) {
			t.Errorf("getPetById output: %+v", b.Output)
		}
	}
}

// Operations are selected by operationId or by method and path; one the
// document lacks fails, naming it.
func TestMapSelection(t *testing.T) {
	tools, err := Map(petstore(t), []string{"getPetById", "delete /store/order/{orderId}"})
	if err != nil || len(tools) != 2 {
		t.Fatalf("%v %d", err, len(tools))
	}
	if _, err := Map(petstore(t), []string{"getPetById", "stealPets"}); err == nil || !strings.Contains(err.Error(), `"stealPets"`) {
		t.Errorf("unknown operation: %v", err)
	}
}

// A document that cannot be mapped fails with the operation and why.
func TestMapRefusals(t *testing.T) {
	doc := func(op string) []byte {
		return []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x/{id}":{"get":` + op + `}},
			"components":{"schemas":{"Node":{"type":"object","properties":{"next":{"$ref":"#/components/schemas/Node"}}}}}}`)
	}
	idParam := `{"name":"id","in":"path","required":true,"schema":{"type":"string"}}`
	for name, c := range map[string]struct{ op, want string }{
		"cookie":    {`{"operationId":"c","parameters":[` + idParam + `,{"name":"s","in":"cookie","schema":{"type":"string"}}],"responses":{"200":{"description":"ok"}}}`, "cookie parameters"},
		"recursive": {`{"operationId":"r","parameters":[` + idParam + `],"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Node"}}}}}}`, "refers to itself"},
		"host":      {`{"operationId":"h","parameters":[` + idParam + `,{"name":"Host","in":"header","schema":{"type":"string"}}],"responses":{"200":{"description":"ok"}}}`, "cannot be set"},
		"template":  {`{"operationId":"t","responses":{"200":{"description":"ok"}}}`, "path parameter"},
		"form":      {`{"operationId":"f","parameters":[` + idParam + `],"requestBody":{"content":{"application/x-www-form-urlencoded":{"schema":{"type":"object"}}}},"responses":{"200":{"description":"ok"}}}`, "not supported"},
		"object":    {`{"operationId":"o","parameters":[` + idParam + `,{"name":"q","in":"query","schema":{"type":"object"}}],"responses":{"200":{"description":"ok"}}}`, "only string"},
	} {
		_, err := Map(doc(c.op), nil)
		if err == nil || !strings.Contains(err.Error(), "operation") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Map([]byte(`{"openapi":"2.0","info":{"title":"t","version":"1"},"paths":{}}`), nil); err == nil {
		t.Error("a Swagger 2.0 document was mapped")
	}
	ext := []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"operationId":"x","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"file:///etc/passwd"}}}}}}}}}`)
	if _, err := Map(ext, nil); err == nil {
		t.Error("an external reference was followed")
	}
}

// OpenAPI 3.1: JSON Schema 2020-12 as it is (type lists, const), YAML.
func TestMap31(t *testing.T) {
	doc := []byte(`openapi: 3.1.0
info: {title: notes, version: "1"}
paths:
  /notes/{id}:
    get:
      operationId: getNote
      summary: Read a note
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: fields, in: query, explode: false, schema: {type: array, items: {type: string}}}
      responses:
        "200":
          description: the note
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Note"}
components:
  schemas:
    Note:
      type: object
      required: [id, text]
      properties:
        id: {type: string}
        text: {type: [string, "null"]}
        kind: {const: note}
`)
	tools, err := Map(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) != 1 || tools[0].Name != "getNote" || tools[0].Title != "Read a note" {
		t.Fatalf("%+v", tools)
	}
	out := mustJSON(t, tools[0].OutputSchema)
	if !strings.Contains(out, `"text":{"type":["string","null"]}`) || !strings.Contains(out, `"const":"note"`) {
		t.Errorf("output schema: %s", out)
	}
	b, _ := Bound(tools[0].Meta)
	base, _ := url.Parse("http://127.0.0.1:1/v1/")
	r, err := Build(b, base, map[string]any{"id": "a/b", "fields": []any{"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.URL.String(); got != "http://127.0.0.1:1/v1/notes/a%2Fb?fields=x%2Cy" {
		t.Errorf("URL: %s", got)
	}
}

// A 3.0 nullable and boolean exclusive bound become 2020-12.
func TestMap30Dialect(t *testing.T) {
	doc := []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/n":{"post":{"operationId":"n",
		"requestBody":{"required":true,"content":{"application/json":{"schema":{"type":"object","properties":{
		"a":{"type":"string","nullable":true},"b":{"type":"number","minimum":0,"exclusiveMinimum":true}}}}}},
		"responses":{"204":{"description":"none"}}}}}}`)
	tools, err := Map(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := mustJSON(t, tools[0].InputSchema)
	if !strings.Contains(in, `"a":{"type":["string","null"]}`) || !strings.Contains(in, `"b":{"exclusiveMinimum":0,"type":"number"}`) {
		t.Errorf("input schema: %s", in)
	}
}

// Path parameters are escaped as one segment; what would leave it (a dot
// segment, escaped '/' or not) is refused.
func TestBuildEscapes(t *testing.T) {
	tools, err := Map(petstore(t), []string{"getUserByName", "deletePet"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Bound(tools[1].Meta) // getUserByName sorts after deletePet's path? find by name
	for _, tool := range tools {
		if tool.Name == "getUserByName" {
			b, _ = Bound(tool.Meta)
		}
	}
	base, _ := url.Parse("http://127.0.0.1:1/api/v3")
	for in, want := range map[string]string{
		"%2F..%2Fadmin": "/api/v3/user/%252F..%252Fadmin",
		"a\r\nHost: x":  "/api/v3/user/a%0D%0AHost:%20x",
		"?q=1#f":        "/api/v3/user/%3Fq=1%23f",
	} {
		r, err := Build(b, base, map[string]any{"username": in})
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if r.URL.EscapedPath() != want || r.URL.RawQuery != "" || r.URL.Host != "127.0.0.1:1" {
			t.Errorf("%q: %s (query %q)", in, r.URL.EscapedPath(), r.URL.RawQuery)
		}
	}
	for _, in := range []string{"..", ".", "", "../admin"} {
		if _, err := Build(b, base, map[string]any{"username": in}); err == nil {
			t.Errorf("%q was accepted", in)
		}
	}
	if _, err := Build(b, base, map[string]any{"username": "u", "extra": 1}); err == nil {
		t.Error("an argument that is no parameter was accepted")
	}
}

// The mapping never panics, and whatever it maps has schemas that compile
// and bindings that round-trip.
func FuzzMap(f *testing.F) {
	f.Add(petstore(f))
	f.Add([]byte(`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/a/{b}":{"get":{"parameters":[{"name":"b","in":"path","required":true,"schema":{"type":"string"}}],"responses":{"200":{"description":"x"}}}}}}`))
	f.Add([]byte(`openapi: 3.0.0
info: {title: t, version: "1"}
paths: {/x: {get: {responses: {"200": {description: ok, content: {application/json: {schema: {$ref: "#/components/schemas/A"}}}}}}}}
components: {schemas: {A: {allOf: [{$ref: "#/components/schemas/B"}, {$ref: "#/components/schemas/B"}]}, B: {type: object, nullable: true}}}
`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		tools, err := Map(data, nil)
		if err != nil {
			return
		}
		for _, tool := range tools {
			if err := compiles(tool.InputSchema.(map[string]any)); err != nil {
				t.Fatalf("%s: input schema: %v", tool.Name, err)
			}
			if _, ok := Bound(tool.Meta); !ok {
				t.Fatalf("%s: no binding", tool.Name)
			}
		}
	})
}

// Two operations whose names meet after the characters a tool name cannot
// hold are replaced are refused, naming both.
func TestMapNameCollision(t *testing.T) {
	doc := []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{
		"/a":{"get":{"operationId":"list pets","responses":{"200":{"description":"ok"}}}},
		"/b":{"get":{"operationId":"list_pets","responses":{"200":{"description":"ok"}}}}}}`)
	_, err := Map(doc, nil)
	if err == nil || !strings.Contains(err.Error(), "list_pets") || !strings.Contains(err.Error(), "also") {
		t.Errorf("collision: %v", err)
	}
}
