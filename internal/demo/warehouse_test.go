package demo

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/upstream/openapi"
)

// The warehouse's document maps to its three operations, and the API
// answers only with its bearer token.
func TestWarehouse(t *testing.T) {
	tools, err := openapi.Map([]byte(WarehouseDocument), nil)
	if err != nil || len(tools) != 3 {
		t.Fatalf("%d tools, %v", len(tools), err)
	}
	srv := httptest.NewServer(Warehouse("tok"))
	defer srv.Close()
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/stock/SKU-1", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("") != http.StatusUnauthorized || get("Bearer nope") != http.StatusUnauthorized || get("Bearer tok") != http.StatusOK {
		t.Error("the token is not checked")
	}
	req, _ := http.NewRequest("POST", srv.URL+"/restock", strings.NewReader(`{"sku":"SKU-2","units":0}`))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("restock of 0 units: %v %v", resp, err)
	}
}
