package schema

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

// Suffix ends the name of a schema file: F.schema.json validates F.
const Suffix = ".schema.json"

// For returns the name of the schema file of file: file + Suffix.
func For(file string) string { return file + Suffix }

// IsSchema reports whether name is a schema file (ends in Suffix, with a
// governed name before it).
func IsSchema(name string) bool { return len(name) > len(Suffix) && strings.HasSuffix(name, Suffix) }

// DefaultCacheSize is how many compiled schemas a Checker keeps when
// NewChecker is given 0.
const DefaultCacheSize = 512

// Tree is the set of files a check sees, e.g. the head a publish would
// leave, or a local directory. Implementations need not be safe for
// concurrent use: a Checker uses a Tree from one goroutine.
type Tree interface {
	// Files returns the names of the tree's files.
	Files() []string
	// Has reports whether the tree holds name.
	Has(name string) bool
	// Read returns a file's content; an error wrapping
	// configsvc.ErrNotFound when the tree does not hold it.
	Read(ctx context.Context, name string) ([]byte, error)
	// Sum returns the hex SHA-256 of a file's content (configsvc.Checksum),
	// and false when the tree does not hold it.
	Sum(ctx context.Context, name string) (string, bool)
}

// Checker compiles schema files, keeping the newest compiled ones, and
// validates files against them. It is safe for concurrent use.
type Checker struct {
	mu    sync.Mutex
	cache map[string]*compiled // by schema file name and content sum
	max   int
}

// compiled is a compiled schema and the sums of every file its compilation
// read (itself and what its $refs loaded): it is valid for a tree whose
// files have those sums.
type compiled struct {
	schema *jsonschema.Schema
	deps   map[string]string
}

// NewChecker returns a Checker caching at most size compiled schemas
// (DefaultCacheSize when size ≤ 0). A compiled schema depends only on the
// content of the files it was compiled from, so one Checker serves every
// service and group.
func NewChecker(size int) *Checker {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Checker{cache: map[string]*compiled{}, max: size}
}

// Check validates names of tree: each schema file among them is compiled
// (a schema that does not compile or breaks its metaschema is a violation
// with keyword "$schema", a $ref that cannot be resolved one with "$ref"),
// and each file whose schema file (For) the tree holds is validated
// against it. A file that does not parse as its format is a violation with
// keyword "format". It returns every violation, sorted by file, line and
// pointer, or an error when the tree cannot be read or ctx ends.
func (c *Checker) Check(ctx context.Context, tree Tree, names []string) ([]configsvc.Violation, error) {
	var out []configsvc.Violation
	failed := map[string]bool{} // schemas that did not compile, reported once
	seen := map[string]bool{}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if seen[name] || !tree.Has(name) {
			continue
		}
		seen[name] = true
		if IsSchema(name) && !failed[name] {
			if _, v, err := c.compile(ctx, tree, name); err != nil {
				return nil, err
			} else if v != nil {
				failed[name] = true
				out = append(out, *v)
			}
		}
		sname := For(name)
		if !tree.Has(sname) || failed[sname] {
			continue
		}
		sch, v, err := c.compile(ctx, tree, sname)
		if err != nil {
			return nil, err
		}
		if v != nil {
			failed[sname] = true
			if !seen[sname] {
				out = append(out, *v)
			}
			continue
		}
		vs, err := validateFile(ctx, tree, name, sname, sch)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Pointer < b.Pointer
	})
	return out, nil
}

// validateFile validates name against the compiled schema sname.
func validateFile(ctx context.Context, tree Tree, name, sname string, sch *jsonschema.Schema) ([]configsvc.Violation, error) {
	content, err := tree.Read(ctx, name)
	if err != nil {
		return nil, err
	}
	doc, err := format.Data(ctx, name, content)
	if err != nil {
		var pe *configsvc.ParseError
		if errors.As(err, &pe) {
			return []configsvc.Violation{{File: name, Line: pe.Line, Column: pe.Column, Keyword: "format", Message: pe.Msg, Schema: sname}}, nil
		}
		return nil, err
	}
	err = sch.Validate(doc.Value)
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		return nil, err
	}
	var out []configsvc.Violation
	for _, leaf := range leaves(ve, nil) {
		line, col := doc.Position(leaf.InstanceLocation)
		out = append(out, configsvc.Violation{
			File: name, Pointer: format.Pointer(leaf.InstanceLocation), Line: line, Column: col,
			Keyword: keyword(leaf.ErrorKind), Message: describe(leaf.ErrorKind), Schema: sname,
		})
	}
	return out, nil
}

// printer words the library's messages in English.
var printer = message.NewPrinter(language.English)

// grouped matches a digit group separator the printer writes in numbers.
var grouped = regexp.MustCompile(`(\d),(\d{3})\b`)

// describe words an error kind, numbers as a config file spells them
// ("maximum: got 99999, want 65535", not "99,999").
func describe(k jsonschema.ErrorKind) string {
	msg := k.LocalizedString(printer)
	switch k.(type) {
	case *kind.Maximum, *kind.Minimum, *kind.ExclusiveMaximum, *kind.ExclusiveMinimum, *kind.MultipleOf,
		*kind.MinLength, *kind.MaxLength, *kind.MinItems, *kind.MaxItems, *kind.MinProperties, *kind.MaxProperties,
		*kind.MinContains, *kind.MaxContains:
		for grouped.MatchString(msg) {
			msg = grouped.ReplaceAllString(msg, "$1$2")
		}
	}
	return msg
}

// leaves returns the errors of the tree under e that have no causes: the
// failed keywords themselves.
func leaves(e *jsonschema.ValidationError, out []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return append(out, e)
	}
	for _, c := range e.Causes {
		out = leaves(c, out)
	}
	return out
}

// keyword names the keyword of an error: the first part of its keyword
// path ("required", "properties" …).
func keyword(k jsonschema.ErrorKind) string {
	if p := k.KeywordPath(); len(p) > 0 {
		return p[0]
	}
	return "schema"
}

// The base of the URLs schema files are compiled under: a $ref relative
// to one resolves to another file of the same tree.
const (
	treeScheme = "sluice"
	treeHost   = "tree"
	treeBase   = treeScheme + "://" + treeHost + "/"
)

// compile returns the compiled schema file sname of tree, from the cache
// when every file it was compiled from is unchanged. A schema that does not
// compile is returned as a violation; an error is a tree that could not be
// read.
func (c *Checker) compile(ctx context.Context, tree Tree, sname string) (*jsonschema.Schema, *configsvc.Violation, error) {
	sum, _ := tree.Sum(ctx, sname)
	key := sname + "\x00" + sum
	c.mu.Lock()
	hit := c.cache[key]
	c.mu.Unlock()
	if hit != nil && depsHold(ctx, tree, hit.deps) {
		return hit.schema, nil, nil
	}
	ld := &loader{ctx: ctx, tree: tree, deps: map[string]string{}}
	comp := jsonschema.NewCompiler()
	comp.UseLoader(ld)
	comp.DefaultDraft(jsonschema.Draft2020)
	sch, err := comp.Compile(treeBase + url.PathEscape(sname))
	if ld.err != nil {
		return nil, nil, ld.err
	}
	if err != nil {
		return nil, compileViolation(sname, err), nil
	}
	c.mu.Lock()
	if len(c.cache) >= c.max {
		for k := range c.cache { // evict one at random
			delete(c.cache, k)
			break
		}
	}
	c.cache[key] = &compiled{schema: sch, deps: ld.deps}
	c.mu.Unlock()
	return sch, nil, nil
}

// depsHold reports whether every file a compiled schema was built from
// has the same content in tree.
func depsHold(ctx context.Context, tree Tree, deps map[string]string) bool {
	for name, sum := range deps {
		if got, ok := tree.Sum(ctx, name); !ok || got != sum {
			return false
		}
	}
	return true
}

// compileViolation words a compilation failure of sname.
func compileViolation(sname string, err error) *configsvc.Violation {
	v := &configsvc.Violation{File: sname, Keyword: "$schema", Schema: sname}
	var le *jsonschema.LoadURLError
	var sve *jsonschema.SchemaValidationError
	switch {
	case errors.As(err, &le):
		v.Keyword = "$ref"
		v.Message = strings.TrimPrefix(le.Err.Error(), "jsonschema: ")
		if errors.Is(le.Err, errNotJSON) {
			v.Message = fmt.Sprintf("%s: %v", treeName(le.URL), le.Err)
		}
	case errors.As(err, &sve):
		v.Message = "not a valid JSON Schema: " + sve.Err.Error()
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			if ls := leaves(ve, nil); len(ls) > 0 {
				v.Pointer = format.Pointer(ls[0].InstanceLocation)
				v.Message = "not a valid JSON Schema: at " + quotePointer(v.Pointer) + ": " + describe(ls[0].ErrorKind)
			}
		}
	default:
		v.Message = err.Error()
	}
	v.Message = strings.ReplaceAll(v.Message, treeBase, "")
	return v
}

func quotePointer(p string) string {
	if p == "" {
		return "the root"
	}
	return p
}

// treeName returns the file name a tree URL stands for.
func treeName(u string) string {
	name, _ := url.PathUnescape(strings.TrimPrefix(strings.SplitN(u, "#", 2)[0], treeBase))
	return name
}

var errNotJSON = errors.New("is not JSON")

// loader is the jsonschema.URLLoader of one compilation: it resolves
// sluice://tree/NAME to file NAME of the tree and refuses every other URL,
// so no $ref is ever fetched from the network or the local disk. It
// records the sum of every file it read.
type loader struct {
	ctx  context.Context
	tree Tree
	deps map[string]string
	err  error // the tree could not be read: not the schema's fault
}

// Load implements jsonschema.URLLoader.
func (l *loader) Load(raw string) (any, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != treeScheme || u.Host != treeHost {
		return nil, fmt.Errorf("$ref %q refused: references resolve only to files of the same service or group (e.g. \"common.schema.json#/$defs/port\"); remote schemas are never fetched", raw)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if configsvc.ValidateFileName(name) != nil || !l.tree.Has(name) {
		return nil, fmt.Errorf("$ref to %q: no such file in this service or group", name)
	}
	content, err := l.tree.Read(l.ctx, name)
	if err != nil {
		if !errors.Is(err, configsvc.ErrNotFound) {
			l.err = err
		}
		return nil, err
	}
	if sum, ok := l.tree.Sum(l.ctx, name); ok {
		l.deps[name] = sum
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(content))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotJSON, err)
	}
	return doc, nil
}
