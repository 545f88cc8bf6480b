package router

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Table is an immutable, precomputed route table. Matching picks, in this
// order: routes naming the request's host exactly, then routes with a
// wildcard host matching it (longest suffix first), then routes with no
// host; within each group the longest path prefix wins, then the route with
// more method/header conditions, then the route listed first. A Table is
// safe for concurrent use.
type Table struct {
	routes []Route // as given, index = position in the file
	exact  map[string][]*entry
	wild   []wildGroup
	any    []*entry
	order  []*entry // every entry in match order, for String
}

type wildGroup struct {
	suffix  string // ".example.com"
	entries []*entry
}

type entry struct {
	idx         int
	route       *Route
	prefix      string
	prefixSlash bool // prefix ends in "/": any continuation matches
	methods     []string
	headers     []headerMatch
	hostLabel   string // the host group, for String
}

type headerMatch struct{ name, value string }

// NewTable validates routes (see ValidateRoutes) and compiles them.
func NewTable(routes []Route) (*Table, error) {
	if err := ValidateRoutes(routes); err != nil {
		return nil, err
	}
	t := &Table{routes: routes, exact: map[string][]*entry{}}
	wild := map[string][]*entry{}
	for i := range routes {
		r := &routes[i]
		e := &entry{idx: i, route: r, prefix: r.Match.PathPrefix, methods: r.Match.Methods}
		if e.prefix == "" {
			e.prefix = "/"
		}
		e.prefixSlash = strings.HasSuffix(e.prefix, "/")
		for k, v := range r.Match.Headers {
			e.headers = append(e.headers, headerMatch{http.CanonicalHeaderKey(k), v})
		}
		sort.Slice(e.headers, func(a, b int) bool { return e.headers[a].name < e.headers[b].name })
		if len(r.Match.Hosts) == 0 {
			t.any = append(t.any, e)
			continue
		}
		for _, h := range r.Match.Hosts {
			h = strings.ToLower(stripPort(h))
			if s, ok := strings.CutPrefix(h, "*"); ok {
				wild[s] = append(wild[s], e)
			} else {
				t.exact[h] = append(t.exact[h], e)
			}
		}
	}
	hosts := make([]string, 0, len(t.exact))
	for h, es := range t.exact {
		sortEntries(es)
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		t.order = append(t.order, label(t.exact[h], h)...)
	}
	for s, es := range wild {
		sortEntries(es)
		t.wild = append(t.wild, wildGroup{suffix: s, entries: es})
	}
	sort.Slice(t.wild, func(a, b int) bool {
		if len(t.wild[a].suffix) != len(t.wild[b].suffix) {
			return len(t.wild[a].suffix) > len(t.wild[b].suffix)
		}
		return t.wild[a].suffix < t.wild[b].suffix
	})
	for _, g := range t.wild {
		t.order = append(t.order, label(g.entries, "*"+g.suffix)...)
	}
	sortEntries(t.any)
	t.order = append(t.order, label(t.any, "*")...)
	return t, nil
}

// label returns copies of es tagged with their host group, for String.
func label(es []*entry, host string) []*entry {
	out := make([]*entry, len(es))
	for i, e := range es {
		c := *e
		c.hostLabel = host
		out[i] = &c
	}
	return out
}

func sortEntries(es []*entry) {
	sort.SliceStable(es, func(a, b int) bool {
		x, y := es[a], es[b]
		if len(x.prefix) != len(y.prefix) {
			return len(x.prefix) > len(y.prefix)
		}
		if sx, sy := x.specificity(), y.specificity(); sx != sy {
			return sx > sy
		}
		return x.idx < y.idx
	})
}

func (e *entry) specificity() int {
	n := len(e.headers)
	if len(e.methods) > 0 {
		n++
	}
	return n
}

// Routes returns the routes the table was built from, in file order. The
// slice must not be modified.
func (t *Table) Routes() []Route { return t.routes }

// Match returns the index (in Routes) of the route for r, or -1.
func (t *Table) Match(r *http.Request) int {
	if e := t.match(&stdInbound{r}); e != nil {
		return e.idx
	}
	return -1
}

func (t *Table) match(r Inbound) *entry {
	host := lowerHost(stripPort(r.Host()))
	path := r.Path()
	if es, ok := t.exact[host]; ok {
		if e := matchIn(es, path, r); e != nil {
			return e
		}
	}
	for i := range t.wild {
		g := &t.wild[i]
		if len(host) > len(g.suffix) && strings.HasSuffix(host, g.suffix) {
			if e := matchIn(g.entries, path, r); e != nil {
				return e
			}
		}
	}
	return matchIn(t.any, path, r)
}

func matchIn(es []*entry, path string, r Inbound) *entry {
	for _, e := range es {
		if e.matches(path, r) {
			return e
		}
	}
	return nil
}

func (e *entry) matches(path string, r Inbound) bool {
	if !strings.HasPrefix(path, e.prefix) {
		return false
	}
	if !e.prefixSlash && len(path) > len(e.prefix) && path[len(e.prefix)] != '/' {
		return false
	}
	if len(e.methods) > 0 {
		ok := false
		for _, m := range e.methods {
			if m == r.Method() {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, h := range e.headers {
		v := r.Header(h.name)
		if v != h.value || v == "" && len(r.HeaderValues(h.name)) == 0 {
			return false
		}
	}
	return true
}

// String dumps the table in match order, one line per (host group, route),
// with every field normalised: the golden-file format of routesfile tests.
func (t *Table) String() string {
	var b strings.Builder
	for _, e := range t.order {
		r := e.route
		fmt.Fprintf(&b, "host=%s prefix=%s", e.hostLabel, e.prefix)
		if len(e.methods) > 0 {
			fmt.Fprintf(&b, " methods=%s", strings.Join(e.methods, ","))
		}
		for _, h := range e.headers {
			fmt.Fprintf(&b, " header[%s]=%q", h.name, h.value)
		}
		fmt.Fprintf(&b, " -> route=%s", r.Name)
		if r.Upstream.Service != "" {
			fmt.Fprintf(&b, " service=%s", r.Upstream.Service)
		} else {
			fmt.Fprintf(&b, " static=%s", strings.Join(r.Upstream.Static, ","))
		}
		fmt.Fprintf(&b, " balancer=%s", r.Upstream.EffectiveBalancer())
		if len(r.Upstream.Weights) > 0 {
			ks := make([]string, 0, len(r.Upstream.Weights))
			for k := range r.Upstream.Weights {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			for _, k := range ks {
				fmt.Fprintf(&b, " weight[%s]=%d", k, r.Upstream.Weights[k])
			}
		}
		b.WriteString(r.Upstream.subsetsString())
		fmt.Fprintf(&b, " strip_prefix=%t timeout=%s retries=%s", r.StripPrefix, r.EffectiveTimeout(), r.resilienceString())
		if rl := r.RateLimit; rl != nil {
			kind, h := rl.KeyKind()
			if h != "" {
				kind += ":" + h
			}
			fmt.Fprintf(&b, " rate_limit=%g/s burst=%d key=%s", rl.RPS, rl.EffectiveBurst(), kind)
			if rl.Scope == ScopeCluster {
				b.WriteString(" scope=cluster")
			}
		}
		if cb := r.CircuitBreaker; cb != nil {
			fmt.Fprintf(&b, " breaker=%d/%s/%d", cb.ConsecutiveFailures, cb.EffectiveOpenFor(), cb.EffectiveHalfOpen())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func stripPort(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		return h[:i]
	}
	return h
}

// lowerHost lowercases h, allocating only when it has an upper-case letter.
func lowerHost(h string) string {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
