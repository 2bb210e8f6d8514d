package demo

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"regexp"
	"sync"
)

// The demo's HTTP API: a warehouse stock service described by an OpenAPI
// document, which 'ostiary demo' serves on loopback and adds as the
// upstream "warehouse", so that its operations are tools governed like the
// shop's. It takes a bearer token, which Ostiary injects from its vault.

// WarehouseDocument is the warehouse API's OpenAPI 3.0 document.
const WarehouseDocument = `openapi: 3.0.3
info:
  title: Demo warehouse
  version: "1"
paths:
  /stock/{sku}:
    get:
      operationId: get_stock
      summary: How many units of a product are in stock.
      parameters:
        - {name: sku, in: path, required: true, description: "product code, e.g. SKU-1", schema: {type: string, pattern: "^SKU-[0-9]+$"}}
      responses:
        "200":
          description: the stock level
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Stock"}
        "404": {description: no such product}
    delete:
      operationId: write_off
      summary: Write off all stock of a product (destructive).
      parameters:
        - {name: sku, in: path, required: true, schema: {type: string, pattern: "^SKU-[0-9]+$"}}
      responses:
        "200":
          description: written off
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Stock"}
  /restock:
    post:
      operationId: restock
      summary: Add units of a product to the stock.
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [sku, units]
              additionalProperties: false
              properties:
                sku: {type: string, pattern: "^SKU-[0-9]+$"}
                units: {type: integer, minimum: 1, maximum: 1000}
      responses:
        "200":
          description: the new stock level
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Stock"}
components:
  schemas:
    Stock:
      type: object
      required: [sku, units]
      properties:
        sku: {type: string}
        units: {type: integer}
        served_to: {type: string, description: the user the identity assertion named (unverified here)}
`

var skuRE = regexp.MustCompile(`^SKU-[0-9]+$`)

// Warehouse returns the warehouse API's handler; requests must carry
// "Authorization: Bearer token".
func Warehouse(token string) http.Handler {
	var mu sync.Mutex
	stock := map[string]int{"SKU-1": 12, "SKU-2": 0, "SKU-3": 140}
	answer := func(w http.ResponseWriter, r *http.Request, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	level := func(r *http.Request, sku string, units int) map[string]any {
		return map[string]any{"sku": sku, "units": units, "served_to": assertedSubject(r.Header.Get("Ostiary-Identity"))}
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /stock/{sku}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n, ok := stock[r.PathValue("sku")]
		mu.Unlock()
		if !ok {
			answer(w, r, http.StatusNotFound, map[string]string{"error": "no such product"})
			return
		}
		answer(w, r, http.StatusOK, level(r, r.PathValue("sku"), n))
	})
	m.HandleFunc("DELETE /stock/{sku}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		_, ok := stock[r.PathValue("sku")]
		if ok {
			stock[r.PathValue("sku")] = 0
		}
		mu.Unlock()
		if !ok {
			answer(w, r, http.StatusNotFound, map[string]string{"error": "no such product"})
			return
		}
		answer(w, r, http.StatusOK, level(r, r.PathValue("sku"), 0))
	})
	m.HandleFunc("POST /restock", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			SKU   string `json:"sku"`
			Units int    `json:"units"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || !skuRE.MatchString(in.SKU) || in.Units < 1 || in.Units > 1000 {
			answer(w, r, http.StatusBadRequest, map[string]string{"error": "want {\"sku\": \"SKU-n\", \"units\": 1..1000}"})
			return
		}
		mu.Lock()
		stock[in.SKU] += in.Units
		n := stock[in.SKU]
		mu.Unlock()
		answer(w, r, http.StatusOK, level(r, in.SKU, n))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			answer(w, r, http.StatusUnauthorized, map[string]string{"error": "a bearer token is required"})
			return
		}
		m.ServeHTTP(w, r)
	})
}
