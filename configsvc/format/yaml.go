package format

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/configsvc"
)

// Budgets of YAML parsing (docs/security.md, "Parser budgets"). The YAML
// decoder expands every alias and merge key (`<<: [*a, *a]`) in full and
// compares every pair of keys of every mapping it decodes, so a document of
// a few hundred bytes can cost as much as one of gigabytes. ParseYAML
// computes both costs from the parsed tree, without expanding it, and
// refuses a document over either budget before anything decodes it.
const (
	// MinYAMLExpansion is the expansion budget of a small document: the
	// nodes that aliases and merge keys may add to it beyond the nodes it
	// spells out. A larger document may add one node per byte of content.
	MinYAMLExpansion = 16 << 10
	// MaxYAMLKeyPairs bounds the pairs of keys the decoder compares to
	// refuse duplicates: the sum, over every mapping decoded (an aliased
	// mapping once per alias), of n·(n-1)/2 for its n keys. One mapping of
	// 8192 keys is within it.
	MaxYAMLKeyPairs = 1 << 25
)

// yamlCheckEvery is how many nodes the budget walk visits between two
// looks at the context.
const yamlCheckEvery = 1024

// ParseYAML parses content, all of its documents, into yaml.Node trees and
// checks the YAML budgets: no mapping holds a key twice, alias and merge-key
// expansion adds at most max(MinYAMLExpansion, len(content)) nodes, and the
// duplicate-key checks of decoding compare at most MaxYAMLKeyPairs pairs.
// Decoding a returned node (Node.Decode) is then bounded by the same budgets.
// An empty document yields no nodes. It returns a *configsvc.ParseError
// naming file, line and column (the column only where the parser gives
// one) for bad syntax or a budget overrun, or ctx's error once ctx is done.
// Content must be valid UTF-8 (Validate checks it first).
func ParseYAML(ctx context.Context, file string, content []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var docs []*yaml.Node
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := new(yaml.Node)
		err := dec.Decode(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlErr(file, content, err)
		}
		docs = append(docs, n)
	}
	b := yamlBudget{ctx: ctx, memo: map[*yaml.Node]yamlCost{}}
	var total yamlCost
	for _, d := range docs {
		c, err := b.cost(d)
		if err != nil {
			return nil, err
		}
		total = total.add(c)
	}
	errAt := func(n *yaml.Node, msg string) error {
		line, col := clamp(content, n.Line, n.Column)
		return &configsvc.ParseError{File: file, Format: configsvc.FormatYAML, Line: line, Column: col, Msg: msg}
	}
	if b.dup != nil {
		return nil, errAt(b.dup, fmt.Sprintf("mapping key %q already defined at line %d, column %d", b.dup.Value, b.dupOf.Line, b.dupOf.Column))
	}
	if limit := max(MinYAMLExpansion, int64(len(content))); total.nodes-b.written > limit {
		return nil, errAt(b.biggestAlias, fmt.Sprintf("aliases and merge keys expand the document by %s nodes, over the limit of %d (one node per byte of content, at least %d)",
			count(total.nodes-b.written), limit, MinYAMLExpansion))
	}
	if total.pairs > MaxYAMLKeyPairs {
		return nil, errAt(b.widest, fmt.Sprintf("mappings too wide: decoding compares %s pairs of keys, over the limit of %d (one mapping of 8192 keys is within it)",
			count(total.pairs), MaxYAMLKeyPairs))
	}
	return docs, nil
}

// count prints a cost, saying "over 2^50" for a saturated one.
func count(n int64) string {
	if n >= yamlSaturate {
		return "over " + strconv.FormatInt(yamlSaturate, 10)
	}
	return strconv.FormatInt(n, 10)
}

// yamlCost is what decoding a node costs: the nodes of its subtree with
// every alias expanded, and the key pairs its mappings make the decoder
// compare. Both saturate at yamlSaturate, far above any budget.
type yamlCost struct {
	nodes, pairs int64
}

const yamlSaturate = 1 << 50

func (c yamlCost) add(o yamlCost) yamlCost {
	return yamlCost{nodes: min(c.nodes+o.nodes, yamlSaturate), pairs: min(c.pairs+o.pairs, yamlSaturate)}
}

// yamlBudget walks the parsed tree once, in document order, remembering
// the cost of every anchored node, so an alias costs a lookup however far
// it would expand. It notes the first duplicate key, the alias that
// expands the most and the node that makes the most key pairs, to point
// the error at them.
type yamlBudget struct {
	ctx      context.Context
	memo     map[*yaml.Node]yamlCost
	visiting map[*yaml.Node]bool // anchors being costed: an alias inside its own anchor
	written  int64               // nodes spelled out in the content
	visited  int

	dup, dupOf             *yaml.Node
	biggestAlias, widest   *yaml.Node
	biggestNodes, widestPs int64
}

func (b *yamlBudget) cost(n *yaml.Node) (yamlCost, error) {
	if n.Kind != yaml.AliasNode {
		if n.Anchor != "" {
			return b.anchored(n)
		}
		return b.subtree(n)
	}
	b.written++
	if n.Alias == nil || b.visiting[n.Alias] {
		// The decoder refuses an anchor that contains itself.
		return yamlCost{nodes: 1}, nil
	}
	c, err := b.anchored(n.Alias)
	if c.nodes > b.biggestNodes || b.biggestAlias == nil {
		b.biggestAlias, b.biggestNodes = n, c.nodes
	}
	if c.pairs > b.widestPs {
		b.widest, b.widestPs = n, c.pairs
	}
	return c, err
}

func (b *yamlBudget) anchored(n *yaml.Node) (yamlCost, error) {
	if c, ok := b.memo[n]; ok {
		return c, nil
	}
	if b.visiting == nil {
		b.visiting = map[*yaml.Node]bool{}
	}
	b.visiting[n] = true
	c, err := b.subtree(n)
	delete(b.visiting, n)
	b.memo[n] = c
	return c, err
}

func (b *yamlBudget) subtree(n *yaml.Node) (yamlCost, error) {
	b.written++
	if b.visited++; b.visited%yamlCheckEvery == 0 {
		if err := b.ctx.Err(); err != nil {
			return yamlCost{}, err
		}
	}
	c := yamlCost{nodes: 1}
	if n.Kind == yaml.MappingNode {
		b.uniqueKeys(n)
		k := int64(len(n.Content) / 2)
		c.pairs = k * (k - 1) / 2
		if c.pairs > b.widestPs || b.widest == nil {
			b.widest, b.widestPs = n, c.pairs
		}
	}
	for _, child := range n.Content {
		cc, err := b.cost(child)
		if err != nil {
			return c, err
		}
		c = c.add(cc)
	}
	return c, nil
}

// uniqueKeys notes the first key a mapping holds twice, by the rule of the
// decoder (same kind, same text), so the decoder never meets one: it
// reports every duplicate pair, quadratic in the keys.
func (b *yamlBudget) uniqueKeys(n *yaml.Node) {
	if b.dup != nil {
		return
	}
	type key struct {
		kind  yaml.Kind
		value string
	}
	seen := make(map[key]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		id := key{k.Kind, k.Value}
		if first, dup := seen[id]; dup {
			b.dup, b.dupOf = k, first
			return
		}
		seen[id] = k
	}
}

// decodeYAML decodes the first document of content into v within the
// budgets (an empty document leaves v as it is).
func decodeYAML(ctx context.Context, file string, content []byte, v any) error {
	docs, err := ParseYAML(ctx, file, content)
	if err != nil || len(docs) == 0 {
		return err
	}
	return yamlErr(file, content, docs[0].Decode(v))
}

// validateYAML parses every document and decodes each into an untyped
// value, which also checks tags (`!!int x`) and merge keys.
func validateYAML(ctx context.Context, file string, content []byte) error {
	docs, err := ParseYAML(ctx, file, content)
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := ctx.Err(); err != nil {
			return err
		}
		var v any
		if err := d.Decode(&v); err != nil {
			return yamlErr(file, content, err)
		}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlParserProblems are the syntax errors yaml.v3's parser (not its
// scanner) reports. For them the library prints the 0-based line of the
// construct being parsed; the scanner's lines are 1-based. Either leaves
// the line out when it is the first one.
var yamlParserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

var yamlSyntaxProblem = regexp.MustCompile(`^(found |did not find |could not find |mapping (keys|values) are not allowed|block sequence entries are not allowed|exceeded max depth)`)

// yamlErr turns a yaml.v3 error into a *configsvc.ParseError. The library
// gives a line, never a column, for syntax and type errors; for syntax
// errors it is the line where the construct in error starts (a flow
// sequence left open is reported where it opens).
func yamlErr(file string, content []byte, err error) error {
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	typeErr := errors.As(err, &te) && len(te.Errors) > 0
	if typeErr {
		msg = te.Errors[0]
	}
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if !typeErr {
		switch {
		case yamlParserProblems[msg]:
			line++
		case line == 0 && yamlSyntaxProblem.MatchString(msg):
			line = 1
		}
	}
	pe := &configsvc.ParseError{File: file, Format: configsvc.FormatYAML, Msg: msg}
	pe.Line, _ = clamp(content, line, 0)
	return pe
}
