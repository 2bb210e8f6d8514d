package strictjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// FieldError reports an object key that the target type does not define
// exactly (unknown, or differing only in case).
type FieldError struct {
	Path string
}

func (e *FieldError) Error() string { return fmt.Sprintf("unknown field %s", e.Path) }

// Decode parses data strictly (see Parse) and stores it in the struct, map or
// slice that v points to. Every object key must equal the JSON name of a
// field exactly, and no object may hold two names equal under case folding
// (a map's keys included); encoding/json's case-insensitive matching is
// never reached.
func Decode(data []byte, v any) error {
	tree, err := Parse(data)
	if err != nil {
		return err
	}
	if c := FindCaseCollision(tree, "$"); c != nil {
		return c
	}
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return fmt.Errorf("strictjson: Decode needs a non-nil pointer, got %T", v)
	}
	if err := checkKeys(tree, t.Elem(), "$"); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		// The tree is valid JSON, so this is a type mismatch. Name the field
		// but not the value.
		if ute, ok := err.(*json.UnmarshalTypeError); ok {
			return fmt.Errorf("field %s: expected %s", fieldPath(ute.Field), ute.Type.Kind())
		}
		return fmt.Errorf("invalid value: %s", err.Error())
	}
	return nil
}

func fieldPath(f string) string {
	if f == "" {
		return "$"
	}
	return "$." + f
}

var rawMessage = reflect.TypeFor[json.RawMessage]()

func checkKeys(tree any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessage {
		return nil
	}
	switch node := tree.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			fields := jsonFields(t)
			for k, v := range node {
				ft, ok := fields[k]
				if !ok {
					return &FieldError{Path: path + "." + quoteKey(k)}
				}
				if err := checkKeys(v, ft, path+"."+quoteKey(k)); err != nil {
					return err
				}
			}
		case reflect.Map:
			for k, v := range node {
				if err := checkKeys(v, t.Elem(), path+"."+quoteKey(k)); err != nil {
					return err
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, v := range node {
				if err := checkKeys(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// jsonFields maps each exact JSON field name of struct type t to its type,
// following encoding/json's rules for tags and embedded structs.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, taken := out[k]; !taken {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// quoteKey renders a client-supplied key for an error message: quoted,
// escaped and bounded, so it cannot forge log lines or flood a response.
func quoteKey(k string) string {
	const max = 64
	if len(k) > max {
		k = k[:max] + "…"
	}
	return fmt.Sprintf("%q", k)
}
