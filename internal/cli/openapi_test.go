package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
)

// upstreams add --openapi FILE maps the document's operations to tools,
// with the credential named by --auth; sync --openapi FILE replaces it, a
// changed operation reported; bad flags are usage errors.
func TestUpstreamsAddOpenAPI(t *testing.T) {
	s := apptest.Start(t)
	env := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	ps := apptest.NewPetstore(t, s, "pets")
	file := filepath.Join(t.TempDir(), "petstore.json")
	if err := os.WriteFile(file, ps.Doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(env, "upstreams", "add", "pets", "--openapi", file, "--url", ps.URL); r.code != 2 {
		t.Errorf("--openapi with --url: %d %s", r.code, r.stderr)
	}
	if r := run(env, "upstreams", "add", "pets", "--openapi", file, "--base-url", ps.URL, "--auth", "bearer:Bearer abc"); r.code != 2 {
		t.Errorf("a literal credential in --auth: %d %s", r.code, r.stderr)
	}
	runIn(env, "k3y-value-0123456789\n", "secrets", "set", "pets-key", "--upstream", "pets").mustOK(t)
	r := run(env, "upstreams", "add", "pets", "--openapi", file, "--base-url", ps.URL, "--allow-private", "--auth", "header:api_key:pets-key",
		"--operation", "getPetById", "--operation", "findPetsByStatus").mustOK(t)
	if !strings.Contains(r.stdout, "pets lists 2 tools: 2 new") || !strings.Contains(r.stdout, "OpenAPI (stored)") {
		t.Fatalf("upstreams add: %s", r.stdout)
	}
	run(env, "roles", "create", "petter", "--grant", "invoke:pets.*").mustOK(t)
	run(env, "users", "create", "bob", "--role", "petter").mustOK(t)
	var created adminapi.CreatedKey
	json.Unmarshal([]byte(run(env, "keys", "create", "--user", "bob", "--json").mustOK(t).stdout), &created)
	bob, err := s.Client(t, created.APIKey, "2025-11-25") // a 2025-era session, through the SDK's path
	if err != nil {
		t.Fatal(err)
	}
	res, err := bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "pets.getPetById", Arguments: map[string]any{"petId": 3}})
	if err != nil || res.IsError || res.StructuredContent == nil {
		t.Fatalf("call: %v %+v", err, res)
	}
	if reqs := ps.Requests(); len(reqs) != 1 || reqs[0].Header.Get("Api_key") != "k3y-value-0123456789" || reqs[0].Identity.Subject != "bob" {
		t.Errorf("requests: %+v", reqs)
	}
	changed := strings.Replace(string(ps.Doc), `"Returns a single pet."`, `"Returns one pet."`, 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(env, "upstreams", "sync", "pets", "--openapi", file).mustOK(t)
	if !strings.Contains(r.stdout, "changed: pets.getPetById") {
		t.Errorf("sync --openapi: %s", r.stdout)
	}
}
