package openapi

import (
	"net/url"
	"strings"
	"testing"
)

// pathDoc is a document of one GET operation at path, with a path
// parameter "name".
func pathDoc(path string) []byte {
	return []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"` + path + `":{"get":{"operationId":"g",` +
		`"parameters":[{"name":"name","in":"path","required":true,"schema":{"type":"string"}}],"responses":{"200":{"description":"ok"}}}}}}`)
}

// An escaped '/' in an argument stays escaped whatever the template's
// literal text holds: a template with a character a raw path cannot hold
// (non-ASCII, '|', '?', '#', a space) once made Go re-encode the decoded
// path, turning the argument's %2F into a '/', so that "a/b/../../x" left
// the base path.
func TestBuildPathStaysEscaped(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:1/api/")
	for tmpl, want := range map[string]string{
		"/files/{name}/ä":  "/api/files/a%2Fb/%C3%A4",
		"/a|b/{name}":      "/api/a%7Cb/a%2Fb",
		"/x?y=1/{name}":    "/api/x%3Fy=1/a%2Fb",
		"/x#f/{name}":      "/api/x%23f/a%2Fb",
		"/a b/{name}":      "/api/a%20b/a%2Fb",
		"/a\\\\b/{name}":   "/api/a%5Cb/a%2Fb",
		"/p%20q/{name}":    "/api/p%20q/a%2Fb",
		"/100%/{name}":     "/api/100%25/a%2Fb",
		"/files/{name}.js": "/api/files/a%2Fb.js",
	} {
		tools, err := Map(pathDoc(tmpl), nil)
		if err != nil {
			t.Errorf("%s: %v", tmpl, err)
			continue
		}
		b, _ := Bound(tools[0].Meta)
		r, err := Build(b, base, map[string]any{"name": "a/b"})
		if err != nil {
			t.Errorf("%s: %v", tmpl, err)
			continue
		}
		if got := r.URL.EscapedPath(); got != want || r.URL.RawQuery != "" || r.URL.Fragment != "" {
			t.Errorf("%s: sent as %s (query %q), want %s", tmpl, r.URL.RequestURI(), r.URL.RawQuery, want)
		}
		if !strings.HasPrefix(r.URL.RequestURI(), "/api/") {
			t.Errorf("%s: %s left the base path", tmpl, r.URL.RequestURI())
		}
	}
}

// No request has a '.' or '..' segment: not from the document's template
// (refused when it is mapped, naming the operation), nor from an argument,
// even one whose '/' is escaped (a server decoding %2F before it
// normalises the path would climb out of the base path).
func TestBuildNoDotSegments(t *testing.T) {
	for _, tmpl := range []string{"/../admin/{name}", "/x/%2e%2e/{name}", "/x/%2E/{name}", "/x/./{name}", "/{name}/.."} {
		if _, err := Map(pathDoc(tmpl), nil); err == nil || !strings.Contains(err.Error(), `operation "g"`) || !strings.Contains(err.Error(), "'..' segment") {
			t.Errorf("%s: %v", tmpl, err)
		}
	}
	tools, err := Map(pathDoc("/files/{name}/ä"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Bound(tools[0].Meta)
	base, _ := url.Parse("http://127.0.0.1:1/api/")
	for _, v := range []string{"../../secret", "a/../../b", "./x", "x/.", "..\\..\\x", "a/..", ".", ".."} {
		if r, err := Build(b, base, map[string]any{"name": v}); err == nil {
			t.Errorf("%q was sent as %s", v, r.URL.RequestURI())
		}
	}
	for _, v := range []string{"..x", "a..b", "...", "a/.b", "%2e%2e"} {
		if _, err := Build(b, base, map[string]any{"name": v}); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
}

// Whatever the template and the argument, a built request stays under the
// base path, with no dot segment and the argument in one segment.
func FuzzBuildPath(f *testing.F) {
	f.Add("/files/{name}/ä", "a/b")
	f.Add("/x/{name}", "../..")
	f.Add("/{name}%2F..", "%2e")
	base, _ := url.Parse("http://127.0.0.1:1/api/")
	f.Fuzz(func(t *testing.T, tmpl, v string) {
		if !strings.HasPrefix(tmpl, "/") || strings.Count(tmpl, "{name}") != 1 || strings.ContainsAny(strings.Replace(tmpl, "{name}", "", 1), "{}\"\\") {
			return
		}
		tools, err := Map(pathDoc(tmpl), nil)
		if err != nil {
			return
		}
		b, _ := Bound(tools[0].Meta)
		r, err := Build(b, base, map[string]any{"name": v})
		if err != nil {
			return
		}
		uri := r.URL.RequestURI()
		if !strings.HasPrefix(uri, "/api/") || r.URL.RawQuery != "" || strings.Count(uri, "/") != strings.Count("/api"+tmpl, "/") {
			t.Fatalf("%q with %q: sent as %s", tmpl, v, uri)
		}
		for _, seg := range strings.Split(r.URL.EscapedPath(), "/") {
			if d, _ := url.PathUnescape(seg); d == "." || d == ".." {
				t.Fatalf("%q with %q: dot segment in %s", tmpl, v, uri)
			}
		}
	})
}

// A document cannot make a tool's argument into a header that changes the
// request's method, path or origin as a server or proxy reads it, or one
// of Ostiary's own: a read-only GET whose caller could add
// X-HTTP-Method-Override: DELETE would be a destructive call nobody held.
func TestMapRefusesRoutingHeaders(t *testing.T) {
	for _, h := range []string{"X-HTTP-Method-Override", "x-http-method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL", "X-Real-IP",
		"True-Client-IP", "Ostiary-Identity", "Ostiary-Approval", "X-Ostiary-Env", "Accept-Encoding", "Via", "X-Forwarded-For", "Host", "Cookie"} {
		doc := []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"operationId":"g",` +
			`"parameters":[{"name":"` + h + `","in":"header","schema":{"type":"string"}}],"responses":{"200":{"description":"ok"}}}}}}`)
		if _, err := Map(doc, nil); err == nil || !strings.Contains(err.Error(), "cannot be set from a tool's arguments") {
			t.Errorf("header %s: %v", h, err)
		}
	}
}

// An operation in a path item given by reference is digested as stated
// where the reference points: the digest once saw no operation there, so
// a change to it (its security, a response's description…) was no drift.
func TestDigestFollowsPathItemRef(t *testing.T) {
	digest := func(sec, desc string) string {
		doc := []byte(`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/x":{"$ref":"#/x-items/X"}},
			"x-items":{"X":{"get":{"operationId":"g","security":[{"` + sec + `":[]}],"responses":{"200":{"description":"` + desc + `"}}}}},
			"components":{"securitySchemes":{"a":{"type":"http","scheme":"bearer"},"b":{"type":"http","scheme":"basic"}}}}`)
		tools, err := Map(doc, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Bound(tools[0].Meta)
		return b.Digest
	}
	if base := digest("a", "ok"); base == digest("b", "ok") || base == digest("a", "changed") {
		t.Errorf("a change in the referenced path item left the digest %s", base)
	}
}

// A header argument with a control character net/http would not send
// (a vertical tab, DEL…) is refused when the request is built, like a
// line break: it went to the transport, which refuses it, an error the
// gateway reads as the API not answering (and retries for an idempotent
// method).
func TestBuildRefusesControlInHeader(t *testing.T) {
	tools, err := Map(petstore(t), []string{"deletePet"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Bound(tools[0].Meta)
	base, _ := url.Parse("http://127.0.0.1:1/api/v3")
	for _, v := range []string{"a\x0bb", "a\x7f", "a\x1b[31m", "a\rb", "a\x00"} {
		if _, err := Build(b, base, map[string]any{"petId": float64(1), "api_key": v}); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("%q: %v", v, err)
		}
	}
	if r, err := Build(b, base, map[string]any{"petId": float64(1), "api_key": "tab\there, ünïcode"}); err != nil || r.Header.Get("Api_key") != "tab\there, ünïcode" {
		t.Errorf("a plain value: %v %v", err, r)
	}
}
