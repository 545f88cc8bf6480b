package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The architecture test lives here, in the package that wires everything
// and already keeps docs/cli.md true (clidoc_test.go): a test-only package
// of its own would be one more package for the table to list, for no code.

const architectureDocPath = "../../docs/architecture.md"

// TestArchitectureDoc checks docs/architecture.md against the code, as `go
// list -deps` sees it: every package of the module is in the package table
// and every package in the table exists; every direct import of a package's
// non-test code is allowed by its row; every rule of the rules table holds
// for everything a package depends on; and the diagram draws exactly the
// imports between its boxes (but those to configsvc and
// configsvc/lifecycle).
func TestArchitectureDoc(t *testing.T) {
	raw, err := os.ReadFile(architectureDocPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseArchitecture(string(raw))
	if err != nil {
		t.Fatalf("%s: %v", architectureDocPath, err)
	}
	mod, pkgs := listPackages(t)
	if problems := checkArchitecture(doc, mod, pkgs); len(problems) > 0 {
		t.Errorf("%s does not match the code (%d problems); fix the code or the page:\n  %s",
			architectureDocPath, len(problems), strings.Join(problems, "\n  "))
	}
}

// goPackage is what the check reads of `go list -json`.
type goPackage struct {
	ImportPath string
	Standard   bool
	DepOnly    bool
	Imports    []string // of the non-test files
	Deps       []string // everything they depend on, directly or not
	Module     *struct{ Path string }
}

// listPackages runs `go list -deps -json ./...` at the root of the module
// and returns the module path and every package it printed (the module's
// and those they depend on).
func listPackages(t *testing.T) (string, []goPackage) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var (
		pkgs []goPackage
		mod  string
	)
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		if !p.DepOnly && p.Module != nil {
			mod = p.Module.Path
		}
		pkgs = append(pkgs, p)
	}
	if mod == "" {
		t.Fatal("go list printed no package of the module")
	}
	return mod, pkgs
}

// archDoc is what docs/architecture.md states.
type archDoc struct {
	// allowed maps each listed package (module-relative) to the patterns
	// of its "may import" cell.
	allowed map[string][]string
	rules   []depRule
	// nodes maps the diagram's node ids to packages; edges are its
	// arrows, as package pairs.
	nodes map[string]string
	edges [][2]string
}

// depRule is a row of the rules table: the packages it covers, and what
// they may only (only) or must never (!only) depend on.
type depRule struct {
	line     int
	packages []string
	only     bool
	patterns []string
}

var (
	backticked  = regexp.MustCompile("`([^`]+)`")
	mermaidNode = regexp.MustCompile(`^\s*(\w+)\["([^"]+)"\]\s*$`)
	mermaidEdge = regexp.MustCompile(`^\s*(\w+)\s*-->\s*(\w+)\s*$`)
)

// parseArchitecture reads the package table (under "### What each package
// owns"), the rules table (under "### Rules") and the mermaid diagram.
func parseArchitecture(text string) (archDoc, error) {
	doc := archDoc{allowed: map[string][]string{}, nodes: map[string]string{}}
	section, inMermaid := "", false
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		switch {
		case strings.HasPrefix(line, "#"):
			section, inMermaid = line, false
			continue
		case strings.HasPrefix(line, "```mermaid"):
			inMermaid = true
			continue
		case strings.HasPrefix(line, "```"):
			inMermaid = false
			continue
		}
		if inMermaid {
			if m := mermaidNode.FindStringSubmatch(line); m != nil {
				doc.nodes[m[1]] = m[2]
			} else if m := mermaidEdge.FindStringSubmatch(line); m != nil {
				doc.edges = append(doc.edges, [2]string{m[1], m[2]})
			}
			continue
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 3 {
			return doc, fmt.Errorf("line %d: want 3 cells, got %d", n, len(cells))
		}
		switch {
		case strings.HasPrefix(section, "### What each package owns"):
			pkg := tokens(cells[0])
			if len(pkg) != 1 {
				return doc, fmt.Errorf("line %d: the first cell must name one package", n)
			}
			if _, dup := doc.allowed[pkg[0]]; dup {
				return doc, fmt.Errorf("line %d: %s is listed twice", n, pkg[0])
			}
			doc.allowed[pkg[0]] = tokens(cells[2])
		case strings.HasPrefix(section, "### Rules"):
			r := depRule{line: n, packages: tokens(cells[0]), patterns: tokens(cells[1])}
			switch kind, _, _ := strings.Cut(strings.TrimSpace(cells[1]), " "); kind {
			case "only":
				r.only = true
			case "never":
			default:
				return doc, fmt.Errorf("line %d: a rule says \"only\" or \"never\", not %q", n, kind)
			}
			doc.rules = append(doc.rules, r)
		}
	}
	for _, e := range doc.edges {
		for _, id := range e {
			if _, ok := doc.nodes[id]; !ok {
				return doc, fmt.Errorf("diagram: arrow %s --> %s uses an undefined node %s", e[0], e[1], id)
			}
		}
	}
	if len(doc.allowed) == 0 || len(doc.rules) == 0 || len(doc.nodes) == 0 {
		return doc, fmt.Errorf("found %d packages, %d rules and %d diagram nodes: the page's layout changed", len(doc.allowed), len(doc.rules), len(doc.nodes))
	}
	return doc, nil
}

func tokens(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// diagramOmits are the packages the diagram draws no arrows to.
var diagramOmits = []string{"configsvc", "configsvc/lifecycle"}

// checkArchitecture returns every way doc and the packages go list printed
// (pkgs, of module mod) disagree, one sentence each.
func checkArchitecture(doc archDoc, mod string, pkgs []goPackage) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	std := map[string]bool{}
	var own []goPackage // the module's packages, module-relative paths
	rel := func(path string) string {
		if path == mod {
			return "."
		}
		return strings.TrimPrefix(path, mod+"/")
	}
	for _, p := range pkgs {
		if p.Standard {
			std[p.ImportPath] = true
		}
		if !p.DepOnly {
			own = append(own, p)
		}
	}
	match := func(pattern, path string) bool { // path module-relative, or not in the module
		switch {
		case pattern == "*":
			return true
		case pattern == "std":
			return std[path]
		case strings.HasSuffix(pattern, "/..."):
			base := strings.TrimSuffix(pattern, "/...")
			return path == base || strings.HasPrefix(path, base+"/")
		}
		return path == pattern
	}
	matchAny := func(patterns []string, path string) bool {
		return slices.ContainsFunc(patterns, func(pat string) bool { return match(pat, path) })
	}

	exists := map[string]bool{}
	for _, p := range own {
		path := rel(p.ImportPath)
		exists[path] = true
		allowed, listed := doc.allowed[path]
		if !listed {
			add("package %s exists but the package table does not list it", path)
			continue
		}
		for _, imp := range p.Imports {
			if imp = rel(imp); !matchAny(allowed, imp) {
				add("%s imports %s, which its row does not allow (may import: %s)", path, imp, strings.Join(allowed, " "))
			}
		}
		for _, r := range doc.rules {
			if !matchAny(r.packages, path) {
				continue
			}
			for _, dep := range p.Deps {
				dep = rel(dep)
				if dep == path || dep == "C" || r.only == matchAny(r.patterns, dep) {
					continue
				}
				if r.only {
					add("%s depends on %s, but the rule of line %d allows only %s", path, dep, r.line, strings.Join(r.patterns, " "))
				} else {
					add("%s depends on %s, which the rule of line %d forbids", path, dep, r.line)
				}
			}
		}
	}
	for path := range doc.allowed {
		if !exists[path] {
			add("the package table lists %s, which does not exist", path)
		}
	}

	// The diagram: every node a package; between its nodes, an arrow for
	// every import (but to diagramOmits) and no arrow without an import.
	imports := map[[2]string]bool{}
	for _, p := range own {
		for _, imp := range p.Imports {
			imports[[2]string{rel(p.ImportPath), rel(imp)}] = true
		}
	}
	drawn := map[[2]string]bool{}
	for _, e := range doc.edges {
		pair := [2]string{doc.nodes[e[0]], doc.nodes[e[1]]}
		drawn[pair] = true
		if !imports[pair] {
			add("the diagram draws %s --> %s, but %s does not import %s", pair[0], pair[1], pair[0], pair[1])
		}
	}
	boxes := map[string]bool{}
	for _, path := range doc.nodes {
		if !exists[path] {
			add("the diagram draws %s, which does not exist", path)
		}
		boxes[path] = true
	}
	for pair := range imports {
		if boxes[pair[0]] && boxes[pair[1]] && !slices.Contains(diagramOmits, pair[1]) && !drawn[pair] {
			add("%s imports %s, but the diagram draws no arrow %s --> %s", pair[0], pair[1], pair[0], pair[1])
		}
	}
	sort.Strings(problems)
	return problems
}

// TestArchitectureCheckCatches proves that checkArchitecture finds each
// kind of drift, on a small made-up module: a package the table does not
// list, a listed package that is gone, a direct import a row does not
// allow, an indirect dependency a rule forbids, and a stale or a missing
// arrow.
func TestArchitectureCheckCatches(t *testing.T) {
	const docText = "# arch\n\n```mermaid\nflowchart BT\n  dom[\"dom\"]\n  adapter[\"dom/adapter\"]\n  app[\"app\"]\n" +
		"  adapter --> dom\n  app --> adapter\n```\n\n" +
		"### What each package owns, and what it may import\n\n| package | owns | may import |\n|---|---|---|\n" +
		"| `dom` | the domain | `std` |\n" +
		"| `dom/adapter` | an adapter | `std` `dom` `example.org/lib/...` |\n" +
		"| `app` | the binary | `*` |\n\n" +
		"### Rules\n\n| packages | depend on | why |\n|---|---|---|\n" +
		"| `dom` | only `std` | the root |\n" +
		"| `dom/...` | never `app` | no cycles upward |\n"
	const mod = "example.org/m"
	base := func() []goPackage {
		return []goPackage{
			{ImportPath: "fmt", Standard: true, DepOnly: true},
			{ImportPath: "example.org/lib/yaml", DepOnly: true},
			{ImportPath: "example.org/lib/other", DepOnly: true},
			{ImportPath: mod + "/dom", Imports: []string{"fmt"}, Deps: []string{"fmt"}},
			{ImportPath: mod + "/dom/adapter", Imports: []string{"fmt", mod + "/dom", "example.org/lib/yaml"},
				Deps: []string{"example.org/lib/yaml", "fmt", mod + "/dom"}},
			{ImportPath: mod + "/app", Imports: []string{mod + "/dom/adapter"}, Deps: []string{"example.org/lib/yaml", "fmt", mod + "/dom", mod + "/dom/adapter"}},
		}
	}
	find := func(pkgs []goPackage, path string) *goPackage {
		for i := range pkgs {
			if pkgs[i].ImportPath == mod+"/"+path {
				return &pkgs[i]
			}
		}
		t.Fatalf("no package %s", path)
		return nil
	}
	cases := []struct {
		name   string
		doc    func(string) string
		pkgs   func([]goPackage) []goPackage
		wanted string // "" for no problem
	}{
		{name: "matching", wanted: ""},
		{name: "a package the table does not list",
			pkgs: func(p []goPackage) []goPackage {
				return append(p, goPackage{ImportPath: mod + "/dom/bogus", Imports: []string{"fmt"}, Deps: []string{"fmt"}})
			},
			wanted: "package dom/bogus exists but the package table does not list it"},
		{name: "a listed package that does not exist",
			doc: func(d string) string {
				return strings.Replace(d, "| `app` |", "| `dom/gone` | removed | `std` |\n| `app` |", 1)
			},
			wanted: "the package table lists dom/gone, which does not exist"},
		{name: "a direct import the row does not allow",
			pkgs: func(p []goPackage) []goPackage {
				a := find(p, "dom/adapter")
				a.Imports = append(a.Imports, "example.org/other")
				return p
			},
			wanted: "dom/adapter imports example.org/other, which its row does not allow"},
		{name: "an indirect dependency an only rule forbids",
			pkgs: func(p []goPackage) []goPackage {
				d := find(p, "dom")
				d.Deps = append(d.Deps, "example.org/lib/other")
				return p
			},
			wanted: "dom depends on example.org/lib/other, but the rule of line"},
		{name: "an indirect dependency a never rule forbids",
			pkgs: func(p []goPackage) []goPackage {
				a := find(p, "dom/adapter")
				a.Deps = append(a.Deps, mod+"/app")
				return p
			},
			wanted: "dom/adapter depends on app, which the rule of line"},
		{name: "a stale arrow",
			doc: func(d string) string {
				return strings.Replace(d, "  app --> adapter\n", "  app --> adapter\n  app --> dom\n", 1)
			},
			wanted: "the diagram draws app --> dom, but app does not import dom"},
		{name: "a missing arrow",
			doc:    func(d string) string { return strings.Replace(d, "  app --> adapter\n", "", 1) },
			wanted: "app imports dom/adapter, but the diagram draws no arrow app --> dom/adapter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text, pkgs := docText, base()
			if c.doc != nil {
				text = c.doc(text)
			}
			if c.pkgs != nil {
				pkgs = c.pkgs(pkgs)
			}
			doc, err := parseArchitecture(text)
			if err != nil {
				t.Fatal(err)
			}
			problems := checkArchitecture(doc, mod, pkgs)
			if c.wanted == "" {
				if len(problems) > 0 {
					t.Fatalf("problems in a matching module: %q", problems)
				}
				return
			}
			if len(problems) != 1 || !strings.HasPrefix(problems[0], c.wanted) {
				t.Fatalf("problems %q, want exactly one starting %q", problems, c.wanted)
			}
		})
	}
}
