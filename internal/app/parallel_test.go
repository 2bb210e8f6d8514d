package app_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// The end-to-end tests here wait on fsync far more than they compute, so
// they run side by side (make test: -parallel 4). A new test is parallel
// unless it says why not: its first statement is t.Parallel(), or its
// declaration line carries a "// not parallel: reason" comment (it
// measures the process's heap or goroutines, or bounds how long calls
// take).
func TestEndToEndTestsRunInParallel(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[int]bool{}
		for _, g := range f.Comments {
			for _, c := range g.List {
				if strings.HasPrefix(c.Text, "// not parallel: ") && len(c.Text) > len("// not parallel: ") {
					reasons[fset.Position(c.Pos()).Line] = true
				}
			}
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Name.Name == "TestMain" {
				continue
			}
			if reasons[fset.Position(fn.Pos()).Line] || callsParallelFirst(fn) {
				continue
			}
			t.Errorf("%s: %s neither calls t.Parallel() first nor says why not (// not parallel: reason)", fset.Position(fn.Pos()), fn.Name.Name)
		}
	}
}

func callsParallelFirst(fn *ast.FuncDecl) bool {
	if fn.Body == nil || len(fn.Body.List) == 0 {
		return false
	}
	es, ok := fn.Body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Parallel"
}
