package store

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// A Migration is one numbered schema step, NNNN_name.sql in an engine's
// migrations directory.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations reads the steps in fsys's migrations directory, in order,
// refusing a badly named file or a gap in the numbering. engine names the
// store in errors.
func Migrations(fsys fs.FS, engine string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s: bad migration name %s", engine, e.Name())
		}
		b, err := fs.ReadFile(fsys, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{v, e.Name(), string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s: migrations must be numbered 1, 2, 3…; found %s", engine, m.Name)
		}
	}
	return out, nil
}
