package routesfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
)

// Parse decodes a route file and validates it (router.ValidateRoutes). An
// empty file, or one with no routes, is a valid empty table. Errors match
// configsvc.ErrInvalid: a *configsvc.ParseError for YAML syntax, a
// *configsvc.FieldError naming the field (with its line in the message)
// for a bad or unknown field.
func Parse(content []byte) ([]router.Route, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(content))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &configsvc.ParseError{File: configsvc.RoutesFile, Format: configsvc.FormatYAML, Line: extra.Line, Msg: "only one YAML document is allowed"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if (root.Kind == yaml.ScalarNode && root.Tag == "!!null") || (root.Kind == yaml.DocumentNode && len(root.Content) == 0) {
		return nil, nil
	}
	p := &parser{}
	var routes []router.Route
	p.mapping(root, "", func(key string, v *yaml.Node, path string) {
		switch key {
		case "routes":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				return
			}
			if v.Kind != yaml.SequenceNode {
				p.fail(path, v, "must be a list of routes")
				return
			}
			for i, n := range v.Content {
				routes = append(routes, p.route(n, fmt.Sprintf("routes[%d]", i)))
			}
		default:
			p.unknown(path, v)
		}
	})
	if p.err != nil {
		return nil, p.err
	}
	if err := router.ValidateRoutes(routes); err != nil {
		var fe *configsvc.FieldError
		if errors.As(err, &fe) {
			if line := p.lines[fe.Field]; line > 0 {
				fe.Msg += " (line " + strconv.Itoa(line) + ")"
			}
		}
		return nil, err
	}
	return routes, nil
}

// Validate is the route schema check of a publish (the sluice command
// wires it with configsvc.EachFile into the store's validation): for
// sluice-system/routes.yaml it returns Parse's error; every other file is
// left to the format check and gets nil.
func Validate(ref configsvc.Ref, file string, content []byte) error {
	if ref.Kind != configsvc.KindService || ref.Name != configsvc.SystemService || file != configsvc.RoutesFile {
		return nil
	}
	_, err := Parse(content)
	return err
}

var lineRE = regexp.MustCompile(`line (\d+)`)

func syntaxErr(err error) error {
	pe := &configsvc.ParseError{File: configsvc.RoutesFile, Format: configsvc.FormatYAML, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
	}
	return pe
}

// parser walks the YAML tree, remembering the first error and the line of
// every field path it saw.
type parser struct {
	err   error
	lines map[string]int
}

func (p *parser) fail(path string, n *yaml.Node, msg string) {
	if p.err == nil {
		if n != nil && n.Line > 0 {
			msg += " (line " + strconv.Itoa(n.Line) + ")"
		}
		p.err = &configsvc.FieldError{Field: path, Value: scalar(n), Msg: msg}
	}
}

func (p *parser) unknown(path string, n *yaml.Node) {
	p.fail(path, n, "unknown field")
}

func scalar(n *yaml.Node) string {
	if n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func join(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// mapping calls f for each key of mapping node n, refusing duplicates.
func (p *parser) mapping(n *yaml.Node, path string, f func(key string, v *yaml.Node, path string)) {
	if p.err != nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		name := path
		if name == "" {
			name = "(document)"
		}
		p.fail(name, n, "must be a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		kp := join(path, k.Value)
		if seen[k.Value] {
			p.fail(kp, k, "appears twice")
			return
		}
		seen[k.Value] = true
		if p.lines == nil {
			p.lines = map[string]int{}
		}
		p.lines[kp] = v.Line
		f(k.Value, v, kp)
	}
}

func (p *parser) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(path, n, "must be a string")
		return ""
	}
	return n.Value
}

func (p *parser) strs(n *yaml.Node, path string) []string {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(path, n, "must be a list of strings")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		out = append(out, p.str(c, fmt.Sprintf("%s[%d]", path, i)))
	}
	return out
}

func (p *parser) boolean(n *yaml.Node, path string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.fail(path, n, "must be true or false")
	}
	return b
}

func (p *parser) integer(n *yaml.Node, path string) int {
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		p.fail(path, n, "must be an integer")
	}
	return v
}

func (p *parser) number(n *yaml.Node, path string) float64 {
	var v float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil {
		p.fail(path, n, "must be a number")
	}
	return v
}

func (p *parser) duration(n *yaml.Node, path string) time.Duration {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(path, n, `must be a duration such as "10s" or "250ms"`)
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.fail(path, n, `must be a duration such as "10s" or "250ms"`)
	}
	return d
}

func (p *parser) route(n *yaml.Node, path string) router.Route {
	var r router.Route
	p.mapping(n, path, func(key string, v *yaml.Node, kp string) {
		switch key {
		case "name":
			r.Name = p.str(v, kp)
		case "match":
			p.mapping(v, kp, func(key string, v *yaml.Node, kp string) {
				switch key {
				case "hosts":
					r.Match.Hosts = p.strs(v, kp)
				case "path_prefix":
					r.Match.PathPrefix = p.str(v, kp)
				case "methods":
					r.Match.Methods = p.strs(v, kp)
				case "headers":
					r.Match.Headers = map[string]string{}
					p.mapping(v, kp, func(key string, v *yaml.Node, kp string) {
						r.Match.Headers[key] = p.str(v, kp)
					})
				default:
					p.unknown(kp, v)
				}
			})
		case "upstream":
			p.mapping(v, kp, func(key string, v *yaml.Node, kp string) {
				switch key {
				case "service":
					r.Upstream.Service = p.str(v, kp)
				case "static":
					r.Upstream.Static = p.strs(v, kp)
				case "balancer":
					r.Upstream.Balancer = router.Balancer(p.str(v, kp))
				case "weights":
					r.Upstream.Weights = map[string]int{}
					p.mapping(v, kp, func(key string, v *yaml.Node, kp string) {
						r.Upstream.Weights[key] = p.integer(v, kp)
					})
				default:
					p.unknown(kp, v)
				}
			})
		case "strip_prefix":
			r.StripPrefix = p.boolean(v, kp)
		case "timeout":
			r.Timeout = p.duration(v, kp)
		case "retries":
			r.Retries = p.integer(v, kp)
		case "rate_limit":
			rl := &router.RateLimit{}
			r.RateLimit = rl
			p.mapping(v, kp, func(key string, v *yaml.Node, kp string) {
				switch key {
				case "rps":
					rl.RPS = p.number(v, kp)
				case "burst":
					rl.Burst = p.integer(v, kp)
				case "key":
					rl.Key = p.str(v, kp)
				case "scope":
					rl.Scope = p.str(v, kp)
				default:
					p.unknown(kp, v)
				}
			})
		case "circuit_breaker":
			cb := &router.CircuitBreaker{}
			r.CircuitBreaker = cb
			p.mapping(v, kp, func(key string, v *yaml.Node, kp string) {
				switch key {
				case "consecutive_failures":
					cb.ConsecutiveFailures = p.integer(v, kp)
				case "open_for":
					cb.OpenFor = p.duration(v, kp)
				case "half_open_requests":
					cb.HalfOpenRequests = p.integer(v, kp)
				default:
					p.unknown(kp, v)
				}
			})
		default:
			p.unknown(kp, v)
		}
	})
	return r
}
