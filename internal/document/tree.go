package document

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Format is the content format of a document (SSM's DocumentFormat).
type Format string

// Formats. FormatAuto picks JSON when the content starts with "{" (falling
// back to YAML, of which JSON is nearly a subset) and YAML otherwise.
const (
	FormatAuto Format = ""
	FormatJSON Format = "JSON"
	FormatYAML Format = "YAML"
)

// The decoded document is a tree of the types encoding/json produces with
// UseNumber: map[string]any, []any, string, json.Number, bool and nil. Both
// decoders below enforce MaxDepth, reject duplicate keys, and the YAML one
// rejects aliases (so alias bombs cannot expand) and non-finite numbers.

// decodeTree decodes content in the given format into a tree.
func decodeTree(content []byte, format Format) (any, error) {
	content = bytes.TrimPrefix(content, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	switch format {
	case FormatJSON:
		return decodeJSON(content)
	case FormatYAML:
		return decodeYAML(content)
	case FormatAuto:
		if t := bytes.TrimLeft(content, " \t\r\n"); len(t) > 0 && t[0] == '{' {
			v, err := decodeJSON(content)
			if err == nil {
				return v, nil
			}
			if v2, err2 := decodeYAML(content); err2 == nil {
				return v2, nil
			}
			return nil, err
		}
		return decodeYAML(content)
	default:
		return nil, docErr("", "unsupported document format %q (want JSON or YAML)", string(format))
	}
}

func decodeJSON(content []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.UseNumber()
	v, err := jsonValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, docErr("", "invalid JSON: unexpected data after the top-level value")
	}
	return v, nil
}

func jsonErr(err error) error {
	if err == io.EOF {
		return docErr("", "invalid JSON: unexpected end of input")
	}
	return docErr("", "invalid JSON: %v", err)
}

func jsonValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= MaxDepth {
			return nil, docErr("", "nesting deeper than %d levels", MaxDepth)
		}
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, jsonErr(err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, docErr("", "invalid JSON: object key is not a string")
				}
				if _, dup := m[k]; dup {
					return nil, docErr("", "duplicate key %q", k)
				}
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, jsonErr(err)
			}
			return m, nil
		case '[':
			l := []any{}
			for dec.More() {
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, jsonErr(err)
			}
			return l, nil
		default:
			return nil, docErr("", "invalid JSON: unexpected %q", t.String())
		}
	default:
		return t, nil // string, json.Number, bool, nil
	}
}

func decodeYAML(content []byte) (v any, err error) {
	// yaml.v3 is not known to panic on v3.0.1, but the agent must not die
	// on a document: turn any parser panic into an error.
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, docErr("", "invalid YAML")
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, docErr("", "empty document")
		}
		return nil, docErr("", "invalid YAML: %v", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, docErr("", "invalid YAML: more than one YAML document in the content")
	}
	return yamlValue(&root, 0)
}

func yamlValue(n *yaml.Node, depth int) (any, error) {
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, docErr("", "empty document")
		}
		return yamlValue(n.Content[0], depth)
	case yaml.AliasNode:
		return nil, docErr("", "line %d: YAML aliases are not supported", n.Line)
	case yaml.MappingNode:
		if depth >= MaxDepth {
			return nil, docErr("", "line %d: nesting deeper than %d levels", n.Line, MaxDepth)
		}
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Kind == yaml.AliasNode {
				return nil, docErr("", "line %d: YAML aliases are not supported", kn.Line)
			}
			if kn.Kind != yaml.ScalarNode {
				return nil, docErr("", "line %d: mapping keys must be scalars", kn.Line)
			}
			if kn.ShortTag() == "!!merge" {
				return nil, docErr("", "line %d: YAML merge keys (<<) are not supported", kn.Line)
			}
			k := kn.Value
			if _, dup := m[k]; dup {
				return nil, docErr("", "line %d: duplicate key %q", kn.Line, k)
			}
			v, err := yamlValue(vn, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		if depth >= MaxDepth {
			return nil, docErr("", "line %d: nesting deeper than %d levels", n.Line, MaxDepth)
		}
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		return yamlScalar(n)
	default:
		return nil, docErr("", "line %d: unsupported YAML node", n.Line)
	}
}

func yamlScalar(n *yaml.Node) (any, error) {
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!timestamp":
		// Timestamps stay text: nothing in a Command document is a date.
		return n.Value, nil
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, docErr("", "line %d: invalid boolean %q", n.Line, n.Value)
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return json.Number(strconv.FormatUint(u, 10)), nil
		}
		var f float64
		if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
		}
		return nil, docErr("", "line %d: invalid integer %q", n.Line, n.Value)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, docErr("", "line %d: invalid number %q", n.Line, n.Value)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, docErr("", "line %d: non-finite number %q", n.Line, n.Value)
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	default:
		return nil, docErr("", "line %d: unsupported YAML tag %s", n.Line, truncate(tag, 40))
	}
}

// truncate shortens s for error messages (hostile input can be long).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// treeKind names a tree value's type for error messages.
func treeKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number, float64, int, int64:
		return "number"
	case bool:
		return "boolean"
	case []any, []string:
		return "list"
	case map[string]any:
		return "map"
	default:
		return fmt.Sprintf("%T", v)
	}
}
