package format

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/configsvc"
)

// Document is a config file read as JSON data, the model JSON Schema
// validates: Value holds nil, bool, json.Number (JSON; YAML and TOML
// numbers are int64 or float64), string, []any and map[string]any.
type Document struct {
	// Value is the file's data: JSON, YAML (its first document; mapping
	// keys that are not strings are written as strings) and TOML (dates
	// and times as RFC 3339 strings) on their JSON data model; properties
	// and .env files as an object of string values; text as one string.
	Value any

	file    string
	content []byte
	format  configsvc.Format
	yaml    *yaml.Node
	jsonPos map[string]int // pointer → byte offset, built on first use
}

// Data parses content by the format of file's extension, within the
// budgets of ValidateContext, into a Document. It returns the
// *configsvc.ParseError of ValidateContext for content that does not
// parse, or ctx's error. It is safe for concurrent use; the Document is
// not (Position builds an index on first use).
func Data(ctx context.Context, file string, content []byte) (*Document, error) {
	d := &Document{file: file, content: content, format: configsvc.FormatOf(file)}
	switch d.format {
	case configsvc.FormatJSON:
		if err := ValidateContext(ctx, file, content); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(content))
		dec.UseNumber()
		if err := dec.Decode(&d.Value); err != nil {
			return nil, jsonErr(file, content, err)
		}
	case configsvc.FormatYAML:
		if err := checkUTF8(file, d.format, content); err != nil {
			return nil, err
		}
		docs, err := ParseYAML(ctx, file, content)
		if err != nil {
			return nil, err
		}
		for i, doc := range docs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var v any
			if err := doc.Decode(&v); err != nil {
				return nil, yamlErr(file, content, err)
			}
			if i == 0 {
				d.yaml, d.Value = doc, jsonModel(v)
			}
		}
	case configsvc.FormatTOML:
		if err := checkUTF8(file, d.format, content); err != nil {
			return nil, err
		}
		if err := checkTOMLDepth(file, content); err != nil {
			return nil, err
		}
		var v map[string]any
		if err := toml.Unmarshal(content, &v); err != nil {
			return nil, tomlErr(file, content, err)
		}
		d.Value = jsonModel(v)
	case configsvc.FormatProperties, configsvc.FormatEnv:
		var m map[string]string
		if err := Decode(file, content, &m); err != nil {
			return nil, err
		}
		obj := make(map[string]any, len(m))
		for k, v := range m {
			obj[k] = v
		}
		d.Value = obj
	default:
		if err := checkUTF8(file, d.format, content); err != nil {
			return nil, err
		}
		d.Value = string(content)
	}
	return d, nil
}

// jsonModel converts what the YAML and TOML decoders produce into the JSON
// data model: maps with string keys, []any, int64, float64, strings for
// dates and times.
func jsonModel(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonModel(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonModel(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonModel(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonModel(e)
		}
		return out
	case int:
		return int64(x)
	case uint64:
		return json.Number(strconv.FormatUint(x, 10))
	case time.Time:
		// TOML's local dates and times come with a zone of their own
		// name; they have no offset to write.
		switch x.Location().String() {
		case "date-local":
			return x.Format(time.DateOnly)
		case "time-local":
			return x.Format("15:04:05.999999999")
		case "datetime-local":
			return x.Format("2006-01-02T15:04:05.999999999")
		}
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// Position returns the 1-based line and column of the value at pointer
// (JSON Pointer tokens, unescaped) in the file: for an object member, its
// key. JSON and YAML give both; TOML, properties and .env the line of the
// key only (column 0); text nothing. A pointer the file does not spell out
// (a key a schema requires) gives the position of the nearest enclosing
// value that exists.
func (d *Document) Position(pointer []string) (line, col int) {
	switch d.format {
	case configsvc.FormatJSON:
		if d.jsonPos == nil {
			d.jsonPos = map[string]int{}
			w := jsonWalker{b: d.content, pos: d.jsonPos}
			w.value("")
		}
		for n := len(pointer); n >= 0; n-- {
			if off, ok := d.jsonPos[Pointer(pointer[:n])]; ok {
				return position(d.content, off)
			}
		}
	case configsvc.FormatYAML:
		if d.yaml == nil {
			return 0, 0
		}
		n := yamlAt(d.yaml, pointer)
		if n == nil {
			return 0, 0
		}
		return clamp(d.content, n.Line, n.Column)
	case configsvc.FormatTOML, configsvc.FormatProperties, configsvc.FormatEnv:
		for n := len(pointer); n > 0; n-- {
			if line := keyLine(d.content, d.format, pointer[:n]); line > 0 {
				return line, 0
			}
		}
	}
	return 0, 0
}

// Pointer joins unescaped tokens into a JSON Pointer (RFC 6901): "~" is
// written "~0" and "/" "~1"; no tokens is "".
func Pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// jsonWalker records the byte offset of every value of a valid JSON
// document by its pointer (an object member by its key).
type jsonWalker struct {
	b   []byte
	i   int
	pos map[string]int
}

func (w *jsonWalker) ws() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\t' || w.b[w.i] == '\n' || w.b[w.i] == '\r') {
		w.i++
	}
}

// value reads the value at w.i, recording it at ptr unless already
// recorded (by its key).
func (w *jsonWalker) value(ptr string) {
	w.ws()
	if w.i >= len(w.b) {
		return
	}
	if _, ok := w.pos[ptr]; !ok {
		w.pos[ptr] = w.i
	}
	switch w.b[w.i] {
	case '{':
		w.i++
		for {
			w.ws()
			if w.i >= len(w.b) || w.b[w.i] == '}' {
				w.i++
				return
			}
			if w.b[w.i] == ',' {
				w.i++
				continue
			}
			start := w.i
			key := w.str()
			w.ws()
			w.i++ // ':'
			child := ptr + Pointer([]string{key})
			w.pos[child] = start
			w.value(child)
		}
	case '[':
		w.i++
		for n := 0; ; {
			w.ws()
			if w.i >= len(w.b) || w.b[w.i] == ']' {
				w.i++
				return
			}
			if w.b[w.i] == ',' {
				w.i++
				continue
			}
			w.value(ptr + "/" + strconv.Itoa(n))
			n++
		}
	case '"':
		w.str()
	default:
		for w.i < len(w.b) && !strings.ContainsRune(",]} \t\r\n", rune(w.b[w.i])) {
			w.i++
		}
	}
}

// str reads a string at w.i and returns it unquoted.
func (w *jsonWalker) str() string {
	start := w.i
	w.i++
	for w.i < len(w.b) && w.b[w.i] != '"' {
		if w.b[w.i] == '\\' {
			w.i++
		}
		w.i++
	}
	w.i++
	var s string
	_ = json.Unmarshal(w.b[start:min(w.i, len(w.b))], &s)
	return s
}

// yamlAt returns the node at pointer (a mapping member's key node), or the
// nearest enclosing node that exists.
func yamlAt(n *yaml.Node, pointer []string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	at := n
	for _, tok := range pointer {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var key, next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			key, next = yamlMember(n, tok, 0)
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(n.Content) {
				key, next = n.Content[i], n.Content[i]
			}
		}
		if next == nil {
			return at
		}
		at, n = key, next
	}
	return at
}

// yamlMember finds key tok in mapping m, then in what its merge keys
// (<<) bring in; depth bounds the merges followed.
func yamlMember(m *yaml.Node, tok string, depth int) (key, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == tok && m.Content[i].Tag != "!!merge" {
			return m.Content[i], m.Content[i+1]
		}
	}
	if depth > 8 {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Tag != "!!merge" {
			continue
		}
		src := []*yaml.Node{m.Content[i+1]}
		if src[0].Kind == yaml.SequenceNode {
			src = src[0].Content
		}
		for _, s := range src {
			for s.Kind == yaml.AliasNode && s.Alias != nil {
				s = s.Alias
			}
			if s.Kind == yaml.MappingNode {
				if k, v := yamlMember(s, tok, depth+1); v != nil {
					return k, v
				}
			}
		}
	}
	return nil, nil
}

var tomlHeader = regexp.MustCompile(`^\s*\[\[?\s*([^\]]+?)\s*\]\]?`)

// keyLine returns the line defining the last key of path in a TOML,
// properties or .env file, or 0. For TOML it prefers a line after the
// header of the enclosing table.
func keyLine(content []byte, f configsvc.Format, path []string) int {
	key := path[len(path)-1]
	if _, err := strconv.Atoi(key); err == nil && f == configsvc.FormatTOML {
		return 0 // an array index: the line of the array is found one level up
	}
	parent := strings.Join(path[:len(path)-1], ".")
	var sep string
	switch f {
	case configsvc.FormatTOML:
		sep = `\s*=`
	case configsvc.FormatEnv:
		sep = `\s*=`
		key = `(?:export\s+)?` + regexp.QuoteMeta(key)
	default:
		sep = `\s*[=:\s]`
	}
	if f != configsvc.FormatEnv {
		key = `["']?` + regexp.QuoteMeta(key) + `["']?`
	}
	re, err := regexp.Compile(`^\s*` + key + sep)
	if err != nil {
		return 0
	}
	lines := strings.Split(string(content), "\n")
	table, first := "", 0
	for i, l := range lines {
		if f == configsvc.FormatTOML {
			if m := tomlHeader.FindStringSubmatch(l); m != nil {
				table = strings.Join(strings.Fields(strings.ReplaceAll(m[1], `"`, "")), "")
				continue
			}
		}
		if re.MatchString(l) {
			if f != configsvc.FormatTOML || table == parent {
				return i + 1
			}
			if first == 0 {
				first = i + 1
			}
		}
	}
	return first
}
