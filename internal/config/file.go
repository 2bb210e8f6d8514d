package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds a configuration file.
const MaxFileBytes = 1 << 20

// Setting is one key of a configuration file: its values (one for a
// scalar, any number for a list) and where it was written.
type Setting struct {
	Key    string
	Values []string
	List   bool // written as a YAML sequence
	Line   int
}

// FileError is a mistake in a configuration file, at a line (0: the file
// as a whole).
type FileError struct {
	File string
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ReadFile reads a configuration file with ParseFile.
func ReadFile(path string) ([]Setting, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, &FileError{File: path, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	return ParseFile(path, data)
}

// ParseFile parses a configuration file strictly: one YAML document
// holding one mapping of plain keys to scalars or lists of scalars. It
// refuses what two readers could understand differently or what hides
// content: duplicate keys, aliases and anchors, merge keys, explicit tags
// other than the core scalar ones, nested mappings, empty values, and a
// second document. Whether a key names a setting, and whether its value
// is valid, is for the caller to decide (keys are the flags of serve).
func ParseFile(name string, data []byte) ([]Setting, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file (or only comments) sets nothing
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, yamlError(name, err)
		}
		return nil, &FileError{File: name, Line: line, Msg: "a second YAML document: a configuration file holds one"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &FileError{File: name, Msg: "want one mapping of settings"}
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode || root.Anchor != "" || root.Tag != "!!map" {
		return nil, &FileError{File: name, Line: root.Line, Msg: "want a mapping of settings (key: value), e.g. 'listen: 127.0.0.1:8080'"}
	}
	seen := map[string]int{}
	var out []Setting
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" || k.Style != 0 || k.Anchor != "" {
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				return nil, &FileError{File: name, Line: k.Line, Msg: "merge keys (<<) are not allowed"}
			}
			return nil, &FileError{File: name, Line: k.Line, Msg: "a key must be a plain, unquoted name such as listen"}
		}
		if first, dup := seen[k.Value]; dup {
			return nil, &FileError{File: name, Line: k.Line, Msg: fmt.Sprintf("%s is set twice (first on line %d)", k.Value, first)}
		}
		seen[k.Value] = k.Line
		s := Setting{Key: k.Value, Line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			val, err := scalar(v)
			if err != nil {
				return nil, &FileError{File: name, Line: v.Line, Msg: k.Value + ": " + err.Error()}
			}
			s.Values = []string{val}
		case yaml.SequenceNode:
			if v.Anchor != "" || v.Tag != "!!seq" {
				return nil, &FileError{File: name, Line: v.Line, Msg: k.Value + ": anchors and tags are not allowed"}
			}
			s.List = true
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, &FileError{File: name, Line: item.Line, Msg: k.Value + ": a list holds plain values, not lists or mappings"}
				}
				val, err := scalar(item)
				if err != nil {
					return nil, &FileError{File: name, Line: item.Line, Msg: k.Value + ": " + err.Error()}
				}
				s.Values = append(s.Values, val)
			}
		case yaml.AliasNode:
			return nil, &FileError{File: name, Line: v.Line, Msg: k.Value + ": aliases are not allowed"}
		default:
			return nil, &FileError{File: name, Line: v.Line, Msg: k.Value + ": want a value or a list of values, not a mapping"}
		}
		out = append(out, s)
	}
	return out, nil
}

// scalar is the text of a scalar node: strings, numbers and booleans; no
// anchors, no custom or binary tags, no empty value.
func scalar(n *yaml.Node) (string, error) {
	if n.Anchor != "" {
		return "", errors.New("anchors are not allowed")
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool":
	case "!!null":
		return "", errors.New("no value (remove the key to keep the default)")
	default:
		return "", fmt.Errorf("tag %s is not allowed", n.ShortTag())
	}
	if n.Style&yaml.TaggedStyle != 0 && n.Tag != "!!str" {
		return "", fmt.Errorf("tag %s is not allowed", n.Tag)
	}
	return n.Value, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError is a YAML library error as a FileError at its line.
func yamlError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FileError{File: name, Line: line, Msg: msg[len(m[0]):]}
	}
	return &FileError{File: name, Msg: strings.TrimPrefix(msg, "yaml: ")}
}
