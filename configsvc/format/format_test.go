package format_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

func TestValidateValid(t *testing.T) {
	for _, tc := range []struct {
		file, content string
	}{
		{"a.json", `{"a": [1, 2.5, "x", null, true], "b": {"c": {}}}`},
		{"a.json", `[]`},
		{"a.json", `"just a string"`},
		{"a.yaml", "a: 1\nb:\n  - x\n  - y\nc: {d: e}\n"},
		{"a.yml", "# only a comment\n"},
		{"a.yaml", ""},
		{"a.toml", "title = \"x\"\n[db]\nport = 5432\nhosts = [\"a\", \"b\"]\n"},
		{"a.toml", ""},
		{"a.properties", "# comment\na.b=c\nd : e\nf g\nmulti=1\\\n  2\nuni=\\u00e9\n"},
		{"a.env", "# comment\n\nA=1\nexport B=two\nC=\"quoted \\\"x\\\"\"\nD='single'\nE=\n"},
		{"notes.txt", "any UTF-8 text: héllo, 世界\n"},
		{"Makefile", "all:\n\techo ok\n"},
	} {
		t.Run(tc.file+"/"+firstLine(tc.content), func(t *testing.T) {
			if err := format.Validate(tc.file, []byte(tc.content)); err != nil {
				t.Fatalf("Validate(%s) = %v, want nil", tc.file, err)
			}
		})
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

func TestValidateInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		line, col           int // col -1: any column
		msg                 string
	}{
		{"json-bad-value", "a.json", "{\n  \"a\": 1,\n  \"b\": ]\n}", 3, 8, "invalid character ']'"},
		{"json-truncated", "a.json", "{\n  \"a\": 1,\n", 3, 1, "unexpected end"},
		{"json-empty", "a.json", "", 1, 1, "unexpected end"},
		{"json-trailing", "a.json", `{"a":1} x`, 1, 9, "after top-level value"},
		{"json-columns-count-runes", "a.json", "{\"é\": ]}", 1, 7, "invalid character"},
		// yaml.v3 gives syntax errors a line, no column: the line where the
		// construct in error starts (the flow sequence left open).
		{"yaml-unclosed-flow", "a.yaml", "a: 1\nb: [1, 2\nc: 3\n", 2, 0, "did not find expected ',' or ']'"},
		{"yaml-bad-indent", "a.yaml", "a:\n  b: 1\n c: 2\n", 3, 0, "did not find expected key"},
		{"yaml-first-line", "a.yaml", "a: b: c\n", 1, 0, "mapping values are not allowed"},
		{"yaml-duplicate-key", "a.yaml", "a: 1\na: 2\n", 2, 1, "already defined at line 1, column 1"},
		{"yaml-unterminated-string", "a.yml", "key: \"unterminated\n", 2, 0, "unexpected end of stream"},
		{"toml-missing-value", "a.toml", "a = 1\nb = \n", 2, 5, "expected value"},
		{"toml-unclosed-table", "a.toml", "a = 1\n[x\n", 2, 3, "end table name"},
		{"toml-duplicate-inline-key", "a.toml", "a = 1\n\n\nb = {c = 1, c = 2}\n", 4, 13, "already been defined"},
		{"toml-duplicate-key", "a.toml", "a = 1\na = 2\n", 2, 1, "already been defined"},
		{"properties-bad-escape", "a.properties", "a=1\nb=\\u12\n", 2, 0, "unicode"},
		{"env-no-equals", "a.env", "A=1\nexport B\n", 2, 1, "KEY=VALUE"},
		{"env-bad-key", "a.env", "A=1\n 1B=2\n", 2, 2, "invalid key"},
		{"env-unterminated", "a.env", "A=\"x\n", 1, 3, "unterminated"},
		{"text-bad-utf8", "notes.txt", "ok\n\xff", 2, 1, "UTF-8"},
		{"json-bad-utf8", "a.json", "{\"a\": \"\xc3\x28\"}", 1, 8, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := format.Validate(tc.file, []byte(tc.content))
			var pe *configsvc.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Validate = %v (%T), want a *configsvc.ParseError", err, err)
			}
			if !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("%v does not match ErrInvalid", err)
			}
			if pe.File != tc.file || pe.Format != configsvc.FormatOf(tc.file) {
				t.Fatalf("ParseError names %s (%s), want %s (%s)", pe.File, pe.Format, tc.file, configsvc.FormatOf(tc.file))
			}
			if pe.Line != tc.line || (tc.col >= 0 && pe.Column != tc.col) {
				t.Fatalf("ParseError at %d:%d (%s), want %d:%d", pe.Line, pe.Column, pe.Msg, tc.line, tc.col)
			}
			if !strings.Contains(pe.Msg, tc.msg) {
				t.Fatalf("ParseError message %q, want it to mention %q", pe.Msg, tc.msg)
			}
			wantPositionInside(t, []byte(tc.content), pe)
		})
	}
}

// wantPositionInside fails unless pe's line and column point into content:
// a line that exists, a column at most one past the line's last rune.
func wantPositionInside(t *testing.T, content []byte, pe *configsvc.ParseError) {
	t.Helper()
	lines := bytes.Split(content, []byte("\n"))
	if pe.Line < 0 || pe.Line > len(lines) {
		t.Fatalf("ParseError line %d outside content of %d lines: %v", pe.Line, len(lines), pe)
	}
	if pe.Line == 0 {
		if pe.Column != 0 {
			t.Fatalf("ParseError has column %d without a line: %v", pe.Column, pe)
		}
		return
	}
	line := lines[pe.Line-1]
	if width := utf8.RuneCount(line); pe.Column < 0 || pe.Column > width+1 {
		t.Fatalf("ParseError column %d outside line %d of %d runes (%q): %v", pe.Column, pe.Line, width, line, pe)
	}
}

func TestDecode(t *testing.T) {
	type db struct {
		Host  string   `json:"host" yaml:"host" toml:"host" properties:"host"`
		Port  int      `json:"port" yaml:"port" toml:"port" properties:"port"`
		Hosts []string `json:"hosts" yaml:"hosts" toml:"hosts" properties:"hosts,default="`
	}
	want := db{Host: "db", Port: 5432, Hosts: []string{"a", "b"}}
	for _, tc := range []struct {
		file, content string
	}{
		{"db.json", `{"host": "db", "port": 5432, "hosts": ["a", "b"]}`},
		{"db.yaml", "host: db\nport: 5432\nhosts: [a, b]\n"},
		{"db.toml", "host = \"db\"\nport = 5432\nhosts = [\"a\", \"b\"]\n"},
		{"db.properties", "host=db\nport=5432\nhosts=a;b\n"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var got db
			if err := format.Decode(tc.file, []byte(tc.content), &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode = %+v, want %+v", got, want)
			}
		})
	}

	t.Run("env-map", func(t *testing.T) {
		var got map[string]string
		if err := format.Decode("a.env", []byte("export A=1\nB=\"two words\"\n# c\nC='x y'\n"), &got); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"A": "1", "B": "two words", "C": "x y"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode = %v, want %v", got, want)
		}
	})
	t.Run("env-struct", func(t *testing.T) {
		var got struct {
			Host string `json:"HOST"`
			Port string `json:"PORT"`
		}
		if err := format.Decode("a.env", []byte("HOST=db\nPORT=5432\n"), &got); err != nil {
			t.Fatal(err)
		}
		if got.Host != "db" || got.Port != "5432" {
			t.Fatalf("Decode = %+v", got)
		}
	})
	t.Run("properties-map", func(t *testing.T) {
		var got map[string]string
		if err := format.Decode("a.properties", []byte("a.b=c\nd=e\n"), &got); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"a.b": "c", "d": "e"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode = %v, want %v", got, want)
		}
	})
	t.Run("text", func(t *testing.T) {
		var s string
		var b []byte
		if err := format.Decode("notes.txt", []byte("hello"), &s); err != nil || s != "hello" {
			t.Fatalf("Decode into *string = %q, %v", s, err)
		}
		if err := format.Decode("notes.txt", []byte("hello"), &b); err != nil || string(b) != "hello" {
			t.Fatalf("Decode into *[]byte = %q, %v", b, err)
		}
		var n int
		err := format.Decode("notes.txt", []byte("hello"), &n)
		if !errors.Is(err, configsvc.ErrInvalid) {
			t.Fatalf("Decode text into *int = %v, want ErrInvalid", err)
		}
	})
	t.Run("type-mismatch", func(t *testing.T) {
		for _, tc := range []struct {
			file, content string
		}{
			{"db.json", `{"port": "not a number"}`},
			{"db.yaml", "port: [1]\n"},
			{"db.toml", "port = \"x\"\n"},
		} {
			t.Run(tc.file, func(t *testing.T) {
				var got db
				err := format.Decode(tc.file, []byte(tc.content), &got)
				var pe *configsvc.ParseError
				if !errors.As(err, &pe) || pe.File != tc.file {
					t.Fatalf("Decode = %v, want a *ParseError naming %s", err, tc.file)
				}
			})
		}
	})
	t.Run("syntax-error", func(t *testing.T) {
		var got db
		err := format.Decode("db.json", []byte("{"), &got)
		var pe *configsvc.ParseError
		if !errors.As(err, &pe) || pe.Line != 1 {
			t.Fatalf("Decode of bad JSON = %v, want a *ParseError on line 1", err)
		}
	})
}

// exts are the extensions FuzzValidate spreads its input over.
var exts = []string{".json", ".yaml", ".yml", ".toml", ".properties", ".env", ".txt"}

// FuzzValidate feeds arbitrary content to every format: Validate must never
// panic, and any error must be a *ParseError for that file whose position
// lies inside the content. The seed corpus is testdata/valid plus the
// invalid cases above; it runs with every `go test`.
func FuzzValidate(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "valid", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for i, e := range exts {
			if e == filepath.Ext(p) {
				f.Add(uint8(i), b)
			}
		}
	}
	for _, s := range []string{
		"{\n  \"a\": 1,\n  \"b\": ]\n}", "a: 1\nb: [1, 2\nc: 3\n", "a = 1\n[x\n", "a = 1\na = 2\n",
		"a=1\nb=\\u12\n", "A=\"x\n", "ok\n\xff", "\t- x\n", "- [\n", "[[a]]\nb=1\n[a]\n", "&a [*a]", "!!binary x",
		// anchors, aliases, merge keys, ${} references, deep keys
		"a: &a {x: 1}\nb: {<<: *a, y: 2}\n", "a: &a [1, 2]\nb: &b [*a, *a]\nc: [*b, *b]\n", "a: &a {<<: [*a]}\n",
		"k0=x\nk1=${k0}${k0}\nk2=${k1}${k1}\nenv=${HOME}\n", "a=${a}\n", "a.b.c.d = 1\n[x.y]\nz = {w = [1, {v = 2}]}\n",
	} {
		for i := range exts {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, ext uint8, content []byte) {
		file := "f" + exts[int(ext)%len(exts)]
		err := format.Validate(file, content)
		if err == nil {
			return
		}
		var pe *configsvc.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("Validate(%s) = %v (%T), want a *configsvc.ParseError", file, err, err)
		}
		if pe.File != file || pe.Format != configsvc.FormatOf(file) {
			t.Fatalf("ParseError names %s (%s), want %s", pe.File, pe.Format, file)
		}
		wantPositionInside(t, content, pe)
	})
}
