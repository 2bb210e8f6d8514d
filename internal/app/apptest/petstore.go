package apptest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/assertion"
)

// Petstore is a real HTTP service on 127.0.0.1 behind the Petstore 3.0
// document in internal/upstream/openapi/testdata (served at DocURL, and
// replaceable, to change what a sync sees): pets, orders and users kept in
// memory (orders: the connection dropped unanswered), every request
// recorded with the identity assertion it carried.
// Other is a second service on another port, a different host for
// redirects: it counts what reaches it.
type Petstore struct {
	URL    string // the base URL: http://127.0.0.1:PORT/api/v3
	DocURL string
	Doc    []byte // the document as first served
	Other  *httptest.Server

	name    string
	jwksPub ed25519.PublicKey
	mu      sync.Mutex
	doc     []byte
	reqs    []PetRequest
	deleted map[string]int
	other   int
}

// PetRequest is one request the Petstore received.
type PetRequest struct {
	Method, Path, Query string // Path as sent (escaped)
	Header              http.Header
	Body                string
	Identity            assertion.Claims // verified against Ostiary's JWKS
	IdentityErr         error
	Username            string // GET /user/{username}: the value the service read
}

// PetstoreDocument is the Petstore document from testdata.
func PetstoreDocument(t testing.TB) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "upstream", "openapi", "testdata", "petstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NewPetstore starts the Petstore for the upstream named name of s.
func NewPetstore(t testing.TB, s *Server, name string) *Petstore {
	t.Helper()
	p := &Petstore{name: name, jwksPub: s.jwksKey(t), deleted: map[string]int{}}
	p.Doc = PetstoreDocument(t)
	p.doc = p.Doc
	p.Other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.other++
		p.mu.Unlock()
		w.Write([]byte(`[]`))
	}))
	t.Cleanup(p.Other.Close)
	srv := httptest.NewServer(p.handler())
	t.Cleanup(srv.Close)
	p.URL, p.DocURL = srv.URL+"/api/v3", srv.URL+"/openapi.json"
	return p
}

// SetDocument replaces the document served at DocURL.
func (p *Petstore) SetDocument(b []byte) {
	p.mu.Lock()
	p.doc = b
	p.mu.Unlock()
}

// Requests returns the API requests received so far (not the document's).
func (p *Petstore) Requests() []PetRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PetRequest(nil), p.reqs...)
}

// Deleted returns how many times the pet with id was deleted.
func (p *Petstore) Deleted(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deleted[id]
}

// OtherHits returns how many requests reached the other host.
func (p *Petstore) OtherHits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.other
}

func (p *Petstore) handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		doc := p.doc
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v3/pet/{petId}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("petId"), 10, 64)
		switch {
		case err != nil:
			reply(w, http.StatusBadRequest, map[string]any{"code": 400, "type": "error", "message": "Invalid ID supplied"})
		case id == 404:
			reply(w, http.StatusNotFound, map[string]any{"code": 404, "type": "error", "message": "Pet not found"})
		case id == 666: // not a Pet: no name
			reply(w, http.StatusOK, map[string]any{"id": id, "photoUrls": []string{}})
		default:
			reply(w, http.StatusOK, pet(id, "available"))
		}
	})
	api.HandleFunc("GET /api/v3/pet/findByStatus", func(w http.ResponseWriter, r *http.Request) {
		st := r.URL.Query().Get("status")
		if st == "" {
			st = "available"
		}
		reply(w, http.StatusOK, []any{pet(1, st), pet(2, st)})
	})
	api.HandleFunc("GET /api/v3/pet/findByTags", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p.Other.URL+"/collect?"+r.URL.RawQuery, http.StatusFound) // another host
	})
	api.HandleFunc("POST /api/v3/pet", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in["name"] == nil {
			reply(w, http.StatusUnprocessableEntity, map[string]any{"code": 422, "message": "Validation exception"})
			return
		}
		in["id"] = 10
		reply(w, http.StatusOK, in)
	})
	api.HandleFunc("DELETE /api/v3/pet/{petId}", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.deleted[r.PathValue("petId")]++
		p.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	api.HandleFunc("GET /api/v3/store/inventory", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]int{"available": 7, "pending": 1, "sold": 3})
	})
	api.HandleFunc("GET /api/v3/user/login", func(w http.ResponseWriter, r *http.Request) {
		// A careless API that echoes the credential it received.
		reply(w, http.StatusOK, "logged in with key "+r.Header.Get("Api_key")+" as "+r.URL.Query().Get("username"))
	})
	api.HandleFunc("GET /api/v3/user/{username}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"id": 1, "username": r.PathValue("username")})
	})
	// Orders: a store that drops the connection without answering.
	hangUp := func(w http.ResponseWriter, r *http.Request) {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	}
	api.HandleFunc("GET /api/v3/store/order/{orderId}", hangUp)
	api.HandleFunc("POST /api/v3/store/order", hangUp)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotImplemented, map[string]any{"code": 501, "message": "not implemented by this fixture"})
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		req := PetRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)}
		req.Identity, req.IdentityErr = assertion.Verify(r.Header.Get(assertion.Header), p.jwksPub, p.name, time.Now())
		r.Body = io.NopCloser(bytes.NewReader(body))
		if seg, ok := strings.CutPrefix(req.Path, "/api/v3/user/"); ok && !strings.Contains(seg, "/") {
			req.Username, _ = url.PathUnescape(seg)
		}
		p.mu.Lock()
		p.reqs = append(p.reqs, req)
		p.mu.Unlock()
		api.ServeHTTP(w, r)
	})
	return m
}

func pet(id int64, status string) map[string]any {
	return map[string]any{"id": id, "name": fmt.Sprintf("pet-%d", id), "photoUrls": []string{}, "status": status}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
