package format

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/magiconair/properties"

	"github.com/sluicehq/sluice/configsvc"
)

// Validate is ValidateContext without a deadline, for callers that have
// no request context (a store checking a changeset).
func Validate(file string, content []byte) error {
	return ValidateContext(context.Background(), file, content)
}

// ValidateContext checks that content parses as the format of file's
// extension (configsvc.FormatOf), within the parser budgets of
// docs/security.md: YAML alias and merge-key expansion and key
// comparisons (ParseYAML), TOML key depth (MaxTOMLDepth); properties
// values are literal (no ${key} expansion). A YAML file is decoded too
// (every document), so tags are checked. It returns nil, a
// *configsvc.ParseError (errors.Is configsvc.ErrInvalid, 422 at the API)
// naming the line, column and, for a budget, the limit; or ctx's error
// when ctx ends first: ctx is looked at between steps and during the YAML
// budget walk. It is safe for concurrent use.
func ValidateContext(ctx context.Context, file string, content []byte) error {
	f := configsvc.FormatOf(file)
	if err := checkUTF8(file, f, content); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch f {
	case configsvc.FormatJSON:
		// A RawMessage checks the syntax without building the value.
		var raw json.RawMessage
		return jsonErr(file, content, json.Unmarshal(content, &raw))
	case configsvc.FormatYAML:
		return validateYAML(ctx, file, content)
	case configsvc.FormatTOML:
		if err := checkTOMLDepth(file, content); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var v map[string]any
		return tomlErr(file, content, toml.Unmarshal(content, &v))
	case configsvc.FormatProperties:
		_, err := loadProperties(file, content)
		return err
	case configsvc.FormatEnv:
		_, err := parseEnv(file, content)
		return err
	}
	return nil
}

// Decode parses content, by the format of file's extension, into v (a
// pointer), within the budgets ValidateContext enforces. JSON, YAML (the
// first document; `yaml` struct tags) and TOML decode as their libraries
// do. Properties and .env files decode into a map[string]string, or into
// a struct through `properties` tags (properties) or by JSON round trip of
// the key/value map (env); properties values are literal: `${key}` is
// never expanded, from the file or from the environment. Text decodes into
// a *string or *[]byte. Errors are *configsvc.ParseError for syntax,
// budgets and type mismatches. It is safe for concurrent use.
func Decode(file string, content []byte, v any) error {
	f := configsvc.FormatOf(file)
	if err := checkUTF8(file, f, content); err != nil {
		return err
	}
	switch f {
	case configsvc.FormatJSON:
		return jsonErr(file, content, json.Unmarshal(content, v))
	case configsvc.FormatYAML:
		return decodeYAML(context.Background(), file, content, v)
	case configsvc.FormatTOML:
		if err := checkTOMLDepth(file, content); err != nil {
			return err
		}
		return tomlErr(file, content, toml.Unmarshal(content, v))
	case configsvc.FormatProperties:
		p, err := loadProperties(file, content)
		if err != nil {
			return err
		}
		if m, ok := v.(*map[string]string); ok {
			*m = p.Map()
			return nil
		}
		if err := p.Decode(v); err != nil {
			return &configsvc.ParseError{File: file, Format: f, Msg: err.Error()}
		}
		return nil
	case configsvc.FormatEnv:
		m, err := parseEnv(file, content)
		if err != nil {
			return err
		}
		if mp, ok := v.(*map[string]string); ok {
			*mp = m
			return nil
		}
		b, _ := json.Marshal(m)
		if err := json.Unmarshal(b, v); err != nil {
			return &configsvc.ParseError{File: file, Format: f, Msg: err.Error()}
		}
		return nil
	}
	switch p := v.(type) {
	case *string:
		*p = string(content)
	case *[]byte:
		*p = append([]byte(nil), content...)
	default:
		return &configsvc.ParseError{File: file, Format: f, Msg: fmt.Sprintf("text decodes into *string or *[]byte, not %s", reflect.TypeOf(v))}
	}
	return nil
}

func checkUTF8(file string, f configsvc.Format, content []byte) error {
	if utf8.Valid(content) {
		return nil
	}
	line, col := position(content, firstInvalidUTF8(content))
	return &configsvc.ParseError{File: file, Format: f, Line: line, Column: col, Msg: "content is not valid UTF-8"}
}

// loadProperties parses a properties file with expansion off: a value
// holding ${key} is kept as written. Expanding would let a file of a few
// hundred bytes grow tenfold per level of nesting, and would fill unknown
// keys from the environment of the process that reads the file.
func loadProperties(file string, content []byte) (*properties.Properties, error) {
	l := &properties.Loader{Encoding: properties.UTF8, DisableExpansion: true}
	p, err := l.LoadBytes(content)
	if err != nil {
		return nil, propsErr(file, err)
	}
	return p, nil
}

func jsonErr(file string, content []byte, err error) error {
	if err == nil {
		return nil
	}
	pe := &configsvc.ParseError{File: file, Format: configsvc.FormatJSON, Msg: strings.TrimPrefix(err.Error(), "json: ")}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, including the offending one;
		// point at that byte (at the end for truncated input).
		off := int(syn.Offset)
		if off > 0 && off <= len(content) && !strings.Contains(syn.Error(), "unexpected end") {
			off--
		}
		pe.Line, pe.Column = position(content, off)
	case errors.As(err, &typ):
		pe.Line, pe.Column = position(content, int(typ.Offset))
	}
	return pe
}

func tomlErr(file string, content []byte, err error) error {
	if err == nil {
		return nil
	}
	pe := &configsvc.ParseError{File: file, Format: configsvc.FormatTOML, Msg: err.Error()}
	var te toml.ParseError
	if errors.As(err, &te) {
		pe.Msg = te.Message
		pe.Line, pe.Column = te.Position.Line, te.Position.Col
		// The parser's own line/column can point past the line's end;
		// its byte offset is exact.
		if start := te.Position.Start; start >= 0 && start <= len(content) {
			pe.Line, pe.Column = position(content, start)
		} else {
			pe.Line, pe.Column = clamp(content, pe.Line, pe.Column)
		}
	}
	return pe
}

var propsLine = regexp.MustCompile(`^properties: Line (\d+): (.*)$`)

func propsErr(file string, err error) error {
	if err == nil {
		return nil
	}
	pe := &configsvc.ParseError{File: file, Format: configsvc.FormatProperties, Msg: err.Error()}
	if m := propsLine.FindStringSubmatch(err.Error()); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Msg = m[2]
	}
	return pe
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// parseEnv reads KEY=VALUE lines; blank lines and # comments are skipped, an
// optional "export " prefix is allowed, values may be single- or
// double-quoted.
func parseEnv(file string, content []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 64<<10), configsvc.MaxFileSize+1)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		indent := len(raw) - len(strings.TrimLeft(raw, " \t"))
		line = strings.TrimPrefix(line, "export ")
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &configsvc.ParseError{File: file, Format: configsvc.FormatEnv, Line: n, Column: indent + 1, Msg: "expected KEY=VALUE"}
		}
		k = strings.TrimSpace(k)
		if !envKey.MatchString(k) {
			return nil, &configsvc.ParseError{File: file, Format: configsvc.FormatEnv, Line: n, Column: indent + 1, Msg: fmt.Sprintf("invalid key %q", k)}
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') {
			if val[len(val)-1] != val[0] {
				return nil, &configsvc.ParseError{File: file, Format: configsvc.FormatEnv, Line: n, Column: strings.Index(raw, "=") + 2, Msg: "unterminated quoted value"}
			}
			if val[0] == '"' {
				uq, err := strconv.Unquote(val)
				if err != nil {
					return nil, &configsvc.ParseError{File: file, Format: configsvc.FormatEnv, Line: n, Column: strings.Index(raw, "=") + 2, Msg: "invalid escape in quoted value"}
				}
				val = uq
			} else {
				val = val[1 : len(val)-1]
			}
		} else if len(val) == 1 && (val[0] == '"' || val[0] == '\'') {
			return nil, &configsvc.ParseError{File: file, Format: configsvc.FormatEnv, Line: n, Column: strings.Index(raw, "=") + 2, Msg: "unterminated quoted value"}
		}
		out[k] = val
	}
	return out, nil
}

// position converts a byte offset into a 1-based line and column (columns
// count runes).
func position(content []byte, offset int) (line, col int) {
	if offset > len(content) {
		offset = len(content)
	}
	if offset < 0 {
		offset = 0
	}
	for offset > 0 && offset < len(content) && !utf8.RuneStart(content[offset]) {
		offset-- // inside a multi-byte rune: point at its start
	}
	before := content[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	col = utf8.RuneCount(before[start:]) + 1
	return line, col
}

// clamp limits a 1-based line and column to the lines of content (split at
// '\n') and to one past the last rune of that line.
func clamp(content []byte, line, col int) (int, int) {
	if line <= 0 {
		return 0, 0
	}
	lines := bytes.Split(content, []byte{'\n'})
	if line > len(lines) {
		line = len(lines)
	}
	if width := utf8.RuneCount(lines[line-1]); col > width+1 {
		col = width + 1
	}
	return line, max(col, 0)
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}
