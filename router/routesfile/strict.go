package routesfile

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/configsvc"
)

// decodeStrict decodes doc (a parsed, budget-checked document) into v, a
// pointer to a struct with yaml tags, after checking it against v's type:
// an unknown key, or a value of the wrong kind, is a *configsvc.FieldError
// naming the field's path ("routes[2].rate_limit.rps") and its line (in
// Line and in the message). yaml.v3 would skip an unknown key, truncate 1.5 into
// an int and report a type error by line alone. It returns the line of
// every field path it saw, for errors found after decoding.
func decodeStrict(doc *yaml.Node, v any) (map[string]int, error) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.DocumentNode || root.ShortTag() == nullTag {
		return nil, nil
	}
	s := &schema{lines: map[string]int{}}
	if err := s.check(root, reflect.TypeOf(v).Elem(), ""); err != nil {
		return nil, err
	}
	if err := root.Decode(v); err != nil {
		return nil, &configsvc.ParseError{File: configsvc.RoutesFile, Format: configsvc.FormatYAML, Line: root.Line, Msg: err.Error()}
	}
	return s.lines, nil
}

const (
	nullTag  = "!!null"
	mergeTag = "!!merge"
)

var durationType = reflect.TypeOf(time.Duration(0))

// scalarForm is implemented by file types that may also be written as a
// scalar of another type (`retries: 2` for `retries: {attempts: 2}`); the
// type decodes both forms itself (yaml.Unmarshaler).
type scalarForm interface {
	scalarType() reflect.Type
}

type schema struct {
	lines map[string]int
}

// check compares node n with Go type t at path.
func (s *schema) check(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias // expansion is bounded by format.ParseYAML
	}
	if n.ShortTag() == nullTag {
		return nil // null leaves the zero value
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if sf, ok := reflect.New(t).Interface().(scalarForm); ok && n.Kind == yaml.ScalarNode {
		return scalar(n, sf.scalarType(), path)
	}
	switch {
	case t == durationType:
		if _, err := time.ParseDuration(n.Value); n.Kind != yaml.ScalarNode || err != nil {
			return fieldErr(path, n, `must be a duration such as "10s" or "250ms"`)
		}
		return nil
	case t.Kind() == reflect.Struct:
		return s.mapping(n, path, func(key string, v *yaml.Node, kp string) error {
			f, ok := fieldByTag(t, key)
			if !ok {
				return fieldErr(kp, v, "unknown field")
			}
			return s.check(v, f.Type, kp)
		}, t)
	case t.Kind() == reflect.Map:
		return s.mapping(n, path, func(_ string, v *yaml.Node, kp string) error {
			return s.check(v, t.Elem(), kp)
		}, nil)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if t.Elem().Kind() == reflect.String {
				return fieldErr(path, n, "must be a list of strings")
			}
			return fieldErr(path, n, "must be a list")
		}
		for i, c := range n.Content {
			if err := s.check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	return scalar(n, t, path)
}

// mapping checks that n is a mapping and calls f for each key with its
// path; a merge key (<<) in a struct (mergeInto non-nil) has its merged
// mappings checked against the same struct.
func (s *schema) mapping(n *yaml.Node, path string, f func(key string, v *yaml.Node, kp string) error, mergeInto reflect.Type) error {
	if n.Kind != yaml.MappingNode {
		name := path
		if name == "" {
			name = "(document)"
		}
		return fieldErr(name, n, "must be a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == mergeTag && mergeInto != nil {
			if err := s.merge(v, path, mergeInto); err != nil {
				return err
			}
			continue
		}
		kp := join(path, k.Value)
		s.lines[kp] = v.Line
		if err := f(k.Value, v, kp); err != nil {
			return err
		}
	}
	return nil
}

func (s *schema) merge(v *yaml.Node, path string, t reflect.Type) error {
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			if err := s.check(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	return s.check(v, t, path)
}

// scalar checks a leaf: strings take any scalar; booleans, integers and
// numbers need the matching YAML type and must fit.
func scalar(n *yaml.Node, t reflect.Type, path string) error {
	var want string
	ok := n.Kind == yaml.ScalarNode
	tag := n.ShortTag()
	switch t.Kind() {
	case reflect.String:
		return boolErr(ok, path, n, "must be a string")
	case reflect.Bool:
		want, ok = "must be true or false", ok && tag == "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want, ok = "must be an integer", ok && tag == "!!int"
	case reflect.Float32, reflect.Float64:
		want, ok = "must be a number", ok && (tag == "!!int" || tag == "!!float")
	default:
		want = "has a type routes.yaml cannot hold"
	}
	if ok {
		ok = n.Decode(reflect.New(t).Interface()) == nil
	}
	return boolErr(ok, path, n, want)
}

func boolErr(ok bool, path string, n *yaml.Node, msg string) error {
	if ok {
		return nil
	}
	return fieldErr(path, n, msg)
}

// fieldByTag finds the field of struct t whose yaml tag names key.
func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldErr(path string, n *yaml.Node, msg string) error {
	value := ""
	if n.Kind == yaml.ScalarNode {
		value = n.Value
	}
	if n.Line > 0 {
		msg += " (line " + strconv.Itoa(n.Line) + ")"
	}
	return &configsvc.FieldError{Field: path, Value: value, Msg: msg, File: configsvc.RoutesFile, Line: n.Line}
}

func join(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}
