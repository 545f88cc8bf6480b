package routesfile_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/routesfile"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden parses every testdata/*.yaml and compares the compiled table's
// dump with testdata/*.golden.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			content, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			routes, err := routesfile.Parse(content)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tab, err := router.NewTable(routes)
			if err != nil {
				t.Fatalf("NewTable: %v", err)
			}
			got := tab.String()
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("table dump differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const ok = "  - name: a\n    upstream: {service: a}\n"
	tests := []struct {
		name    string
		yaml    string
		field   string // *configsvc.FieldError.Field; "" means a *configsvc.ParseError
		line    int    // for a ParseError; -1: any line > 0
		msgPart string
	}{
		{"rps zero", "routes:\n" + ok + "  - name: b\n    upstream: {service: b}\n" + "  - name: c\n    upstream: {service: c}\n    rate_limit: {rps: 0}\n", "routes[2].rate_limit.rps", 0, "above 0"},
		{"duplicate name", "routes:\n" + ok + ok, "routes[1].name", 0, "duplicates routes[0].name"},
		{"rps string", "routes:\n  - name: a\n    upstream: {service: a}\n    rate_limit: {rps: fast}\n", "routes[0].rate_limit.rps", 0, "must be a number (line 4)"},
		{"unknown field", "routes:\n  - name: a\n    upstream: {service: a}\n    retry: 2\n", "routes[0].retry", 0, "unknown field"},
		{"unknown top-level", "rutes: []\n", "rutes", 0, "unknown field"},
		{"bad balancer", "routes:\n  - name: a\n    upstream: {service: a, balancer: random}\n", "routes[0].upstream.balancer", 0, "round_robin"},
		{"no upstream", "routes:\n  - name: a\n", "routes[0].upstream", 0, "service or static"},
		{"both upstreams", "routes:\n  - name: a\n    upstream: {service: a, static: [\"127.0.0.1:1\"]}\n", "routes[0].upstream", 0, "only one"},
		{"static without port", "routes:\n  - name: a\n    upstream: {static: [\"127.0.0.1\"]}\n", "routes[0].upstream.static[0]", 0, "host:port"},
		{"bad duration", "routes:\n  - name: a\n    upstream: {service: a}\n    timeout: 10\n", "routes[0].timeout", 0, "duration"},
		{"negative breaker", "routes:\n  - name: a\n    upstream: {service: a}\n    circuit_breaker: {consecutive_failures: 0}\n", "routes[0].circuit_breaker.consecutive_failures", 0, "between 1"},
		{"too many retries", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: 9\n", "routes[0].retries.attempts", 0, "between 0 and 5 (line 4)"},
		{"bad key", "routes:\n  - name: a\n    upstream: {service: a}\n    rate_limit: {rps: 1, key: cookie}\n", "routes[0].rate_limit.key", 0, "header:NAME"},
		{"lower-case method", "routes:\n  - name: a\n    match: {methods: [get]}\n    upstream: {service: a}\n", "routes[0].match.methods[0]", 0, "upper-case"},
		{"relative prefix", "routes:\n  - name: a\n    match: {path_prefix: orders}\n    upstream: {service: a}\n", "routes[0].match.path_prefix", 0, `start with "/"`},
		{"bad name", "routes:\n  - name: Orders\n    upstream: {service: a}\n", "routes[0].name", 0, "a-z"},
		{"routes not a list", "routes: {name: a}\n", "routes", 0, "list"},
		{"syntax", "routes:\n  - name: a\n  upstream: [\n", "", -1, ""},
		{"two documents", "routes: []\n---\nroutes: []\n", "", 2, "one YAML document"},
		{"fractional integer", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: 1.5\n", "routes[0].retries", 0, "must be an integer (line 4)"},
		{"yes is not a boolean", "routes:\n  - name: a\n    upstream: {service: a}\n    strip_prefix: yes\n", "routes[0].strip_prefix", 0, "true or false (line 4)"},
		{"string list", "routes:\n  - name: a\n    match: {hosts: a.local}\n    upstream: {service: a}\n", "routes[0].match.hosts", 0, "list of strings (line 3)"},
		{"document not a mapping", "- a\n", "(document)", 0, "mapping (line 1)"},
		{"unknown field in a merged mapping", "routes:\n  - name: a\n    upstream: {service: a}\n    rate_limit: {<<: {rps: 1, bursts: 2}}\n", "routes[0].rate_limit.bursts", 0, "unknown field (line 4)"},
		{"duplicate key", "routes:\n  - name: a\n    name: b\n", "", 3, "already defined at line 2, column 5"},
		{"retry on a 4xx", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: {attempts: 1, on: [connect-failure, 404]}\n", "routes[0].retries.on[1]", 0, "status code from 500 to 599 (line 4)"},
		{"retry on a typo", "routes:\n  - name: a\n    upstream: {service: a}\n    retries:\n      attempts: 1\n      on: [connect_failure]\n", "routes[0].retries.on[0]", 0, "status code from 500 to 599 (line 6)"},
		{"retries a string", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: many\n", "routes[0].retries", 0, "must be an integer (line 4)"},
		{"retries a list", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: [1]\n", "routes[0].retries", 0, "must be a mapping (line 4)"},
		{"unknown retries field", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: {attempt: 1}\n", "routes[0].retries.attempt", 0, "unknown field (line 4)"},
		{"per-try timeout above the timeout", "routes:\n  - name: a\n    upstream: {service: a}\n    timeout: 1s\n    retries: {attempts: 1, per_try_timeout: 2s}\n", "routes[0].retries.per_try_timeout", 0, "route's timeout (1s) (line 5)"},
		{"backoff max below base", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: {attempts: 1, backoff: {base: 1s, max: 10ms}}\n", "routes[0].retries.backoff.max", 0, "between backoff.base"},
		{"budget over 100", "routes:\n  - name: a\n    upstream: {service: a}\n    retries: {attempts: 1, budget: {percent: 120}}\n", "routes[0].retries.budget.percent", 0, "between 0 and 100"},
		{"ejection percent over 100", "routes:\n  - name: a\n    upstream: {service: a}\n    outlier_detection: {max_ejection_percent: 101}\n", "routes[0].outlier_detection.max_ejection_percent", 0, "between 0 and 100 (line 4)"},
		{"negative panic threshold", "routes:\n  - name: a\n    upstream: {service: a}\n    outlier_detection: {panic_threshold: -1}\n", "routes[0].outlier_detection.panic_threshold", 0, "between 0 and 100"},
		{"ejection time not a duration", "routes:\n  - name: a\n    upstream: {service: a}\n    outlier_detection: {base_ejection_time: 30}\n", "routes[0].outlier_detection.base_ejection_time", 0, "duration"},
		{"health check without path", "routes:\n  - name: a\n    upstream: {service: a}\n    health_check: {interval: 5s}\n", "routes[0].health_check.path", 0, "(at most 1024 bytes) (line 4)"},
		{"health check too often", "routes:\n  - name: a\n    upstream: {service: a}\n    health_check: {path: /h, interval: 10ms}\n", "routes[0].health_check.interval", 0, "between 100ms and 1h"},
		{"health check timeout above interval", "routes:\n  - name: a\n    upstream: {service: a}\n    health_check: {path: /h, interval: 1s, timeout: 2s}\n", "routes[0].health_check.timeout", 0, "interval (1s)"},
		{"subsets of static addresses", "routes:\n  - name: a\n    upstream: {static: [\"127.0.0.1:1\"], subsets: [{labels: {t: c}, weight: 1}]}\n", "routes[0].upstream.subsets", 0, "need a service upstream"},
		{"subset weights all zero", "routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: {t: c}}]}\n", "routes[0].upstream.subsets", 0, "must not all be 0"},
		{"subset without labels", "routes:\n  - name: a\n    upstream: {service: a, subsets: [{weight: 1}]}\n", "routes[0].upstream.subsets[0].labels", 0, "between 1 and"},
		{"subset weight too high", "routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: {t: c}, weight: 10001}]}\n", "routes[0].upstream.subsets[0].weight", 0, "between 0 and 10000"},
		{"unknown subset field", "routes:\n  - name: a\n    upstream:\n      service: a\n      subsets:\n        - {labels: {t: c}, wieght: 1}\n", "routes[0].upstream.subsets[0].wieght", 0, "unknown field (line 6)"},
		{"duplicate subset names", "routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: {t: c}, weight: 1}, {labels: {t: c}, weight: 2}]}\n", "routes[0].upstream.subsets[1].name", 0, "duplicates the name of subsets[0]"},
		{"sticky by two keys", "routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: {t: c}, weight: 1}], sticky: {header: X-U, client_ip: true}}\n", "routes[0].upstream.sticky", 0, "exactly one"},
		{"sticky without subsets", "routes:\n  - name: a\n    upstream: {service: a, sticky: {header: X-U}}\n", "routes[0].upstream.sticky", 0, "needs subsets"},
		{"force without a key", "routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: {t: c}, weight: 1}], force: {}}\n", "routes[0].upstream.force", 0, "header, cookie or both"},
		{"force header not a token", "routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: {t: c}, weight: 1}], force: {header: \"X Subset\"}}\n", "routes[0].upstream.force.header", 0, "header name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := routesfile.Parse([]byte(tc.yaml))
			if !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("Parse error = %v, want one matching ErrInvalid", err)
			}
			if tc.field == "" {
				var pe *configsvc.ParseError
				if !errors.As(err, &pe) || (tc.line >= 0 && pe.Line != tc.line) || pe.Line <= 0 || !strings.Contains(pe.Msg, tc.msgPart) {
					t.Fatalf("error = %#v, want a ParseError at line %d containing %q", err, tc.line, tc.msgPart)
				}
				return
			}
			var fe *configsvc.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error = %v (%T), want *configsvc.FieldError", err, err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msgPart) {
				t.Fatalf("error field %q msg %q, want field %q msg containing %q", fe.Field, fe.Msg, tc.field, tc.msgPart)
			}
			// The line the message names is the error's Line, for an
			// editor to mark.
			wantLine := 0
			if _, after, ok := strings.Cut(fe.Msg, "(line "); ok {
				wantLine, _ = strconv.Atoi(strings.TrimSuffix(after, ")"))
			}
			if fe.File != configsvc.RoutesFile || fe.Line != wantLine {
				t.Fatalf("error %q at %s line %d, want %s line %d", fe.Msg, fe.File, fe.Line, configsvc.RoutesFile, wantLine)
			}
		})
	}
}

// TestParseAnchorsAndMerges: anchors, aliases and merge keys decode as
// YAML defines them.
func TestParseAnchorsAndMerges(t *testing.T) {
	routes, err := routesfile.Parse([]byte(`routes:
  - &orders
    name: orders
    match: {path_prefix: /orders}
    upstream: {service: orders}
    rate_limit: &rl {rps: 5, burst: 10}
  - <<: *orders
    name: orders-v2
    match: {path_prefix: /v2/orders}
    rate_limit: *rl
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 2 || routes[1].Name != "orders-v2" || routes[1].Upstream.Service != "orders" ||
		routes[1].RateLimit == nil || routes[1].RateLimit.Burst != 10 || routes[1].Match.PathPrefix != "/v2/orders" {
		t.Fatalf("routes = %+v", routes)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "routes:\n", "routes: []\n"} {
		routes, err := routesfile.Parse([]byte(in))
		if err != nil || len(routes) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no routes, nil", in, routes, err)
		}
	}
}

func TestValidateOnlyChecksTheRoutesFile(t *testing.T) {
	bad := []byte("routes: {")
	if err := routesfile.Validate(configsvc.Service(configsvc.SystemService), configsvc.RoutesFile, bad); !errors.Is(err, configsvc.ErrInvalid) {
		t.Errorf("routes.yaml of sluice-system: err = %v, want ErrInvalid", err)
	}
	for _, c := range []struct {
		ref  configsvc.Ref
		file string
	}{
		{configsvc.Service("orders"), configsvc.RoutesFile},
		{configsvc.Service(configsvc.SystemService), "other.yaml"},
		{configsvc.Group(configsvc.SystemService), configsvc.RoutesFile},
	} {
		if err := routesfile.Validate(c.ref, c.file, bad); err != nil {
			t.Errorf("Validate(%v, %s) = %v, want nil (not the route file)", c.ref, c.file, err)
		}
	}
}

// FuzzParse checks that no input panics the parser, and that whatever it
// accepts compiles into a table.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a}\n    rate_limit: {rps: 1e400}\n"))
	f.Add([]byte("routes: &a [*a]\n"))
	f.Add([]byte("routes:\n  - &r {name: a, upstream: {service: a}, rate_limit: &l {rps: 1}}\n  - {<<: *r, name: b, rate_limit: *l}\n"))
	f.Add([]byte("x: &x {<<: [*x]}\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a, weights: &w {a: 1}}\n    match: {headers: {<<: *w}}\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a}\n    retries: 2\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a}\n    retries: &r {attempts: 2, on: [503, reset], per_try_timeout: 1s, backoff: {base: 1ms}}\n  - {name: b, upstream: {service: b}, retries: *r}\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a}\n    retries: {<<: {attempts: 1}, on: [\"599\", 500]}\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a}\n    outlier_detection: {consecutive_5xx: 1, max_ejection_percent: 100, panic_threshold: 0}\n    health_check: {path: /h, interval: 100ms}\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: &l {t: c}, weight: 1}, {name: s, labels: *l, weight: 0}], sticky: {cookie: c}, force: {header: X-S}}\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: {service: a, subsets: [{labels: {t: \"\"}, weight: 10000}], sticky: {client_ip: true}}\n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		routes, err := routesfile.Parse(content)
		if err != nil {
			if !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if _, err := router.NewTable(routes); err != nil {
			t.Fatalf("Parse accepted routes NewTable refuses: %v", err)
		}
	})
}

// TestAttackRoutesAliasAmplification: a route of many headers, anchored
// and listed again by alias, made the old walker visit every header once
// per alias. format.ParseYAML's expansion budget refuses it up front.
func TestAttackRoutesAliasAmplification(t *testing.T) {
	var b strings.Builder
	b.WriteString("routes:\n  - &r\n    name: a\n    upstream: {service: a}\n    match:\n      headers: {")
	for i := range 2000 {
		fmt.Fprintf(&b, "h%d: v, ", i)
	}
	b.WriteString("}\n" + strings.Repeat("  - *r\n", 2000))
	content := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := routesfile.Parse(content)
	runtime.ReadMemStats(&after)
	var pe *configsvc.ParseError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "aliases and merge keys expand") {
		t.Fatalf("Parse = %v, want a *configsvc.ParseError naming the expansion limit", err)
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(256*len(content)+8<<20); got > limit {
		t.Fatalf("Parse of %d bytes allocated %d bytes, over %d", len(content), got, limit)
	}
}
