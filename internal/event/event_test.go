package event

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNamesAreComplete scans every package under internal/ for constants
// named Event… with a string value (how a package names the audit events
// it records) and fails when one is missing from Names, or when Names
// holds one that no package defines.
func TestNamesAreComplete(t *testing.T) {
	defined := map[string]string{} // name → where
	root := filepath.Join("..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Event") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					defined[v] = filepath.ToSlash(path) + ": " + id.Name
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(defined) < 50 {
		t.Fatalf("the scan found only %d event constants: %v", len(defined), defined)
	}
	for v, where := range defined {
		if !Known(v) {
			t.Errorf("%s = %q is not in event.Names: add it to names in event.go", where, v)
		}
	}
	for _, n := range Names() {
		if _, ok := defined[n]; !ok {
			t.Errorf("event.Names holds %q, which no Event… constant defines", n)
		}
	}
	if Known("tool-cal") || !Known("tool-call") || !slices.IsSorted(Names()) {
		t.Error("Known or Names is wrong")
	}
}

// Check points a typo at the name meant, and lists them all.
func TestCheck(t *testing.T) {
	if err := Check("tool-call"); err != nil {
		t.Errorf("a known event: %v", err)
	}
	err := Check("tool-cal")
	if err == nil || !strings.Contains(err.Error(), `unknown event "tool-cal" (did you mean tool-call?)`) || !strings.Contains(err.Error(), "user-create, user-disable") {
		t.Errorf("a typo: %v", err)
	}
	if err := Check("zzzz"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("nothing near: %v", err)
	}
}
