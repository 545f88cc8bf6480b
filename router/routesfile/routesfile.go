package routesfile

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/router"
)

// Parse decodes a route file and validates it (router.ValidateRoutes). An
// empty file, or one with no routes, is a valid empty table. Errors match
// configsvc.ErrInvalid: a *configsvc.ParseError for YAML syntax, a
// duplicate key or a file over the YAML budgets (format.ParseYAML), a
// *configsvc.FieldError naming the field (with File routes.yaml and, when
// the file shows it, its Line, also written in the message) for a bad or
// unknown field.
func Parse(content []byte) ([]router.Route, error) {
	return ParseContext(context.Background(), content)
}

// ParseContext is Parse that stops with ctx's error once ctx is done.
func ParseContext(ctx context.Context, content []byte) ([]router.Route, error) {
	docs, err := format.ParseYAML(ctx, configsvc.RoutesFile, content)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, nil
	}
	if len(docs) > 1 {
		return nil, &configsvc.ParseError{File: configsvc.RoutesFile, Format: configsvc.FormatYAML, Line: docs[1].Line, Msg: "only one YAML document is allowed"}
	}
	var f file
	lines, err := decodeStrict(docs[0], &f)
	if err != nil {
		return nil, err
	}
	routes := make([]router.Route, 0, len(f.Routes))
	for _, r := range f.Routes {
		routes = append(routes, r.route())
	}
	if len(routes) == 0 {
		return nil, nil
	}
	if err := router.ValidateRoutes(routes); err != nil {
		var fe *configsvc.FieldError
		if errors.As(err, &fe) {
			fe.File = configsvc.RoutesFile
			if line := lineOf(lines, fe.Field); line > 0 {
				fe.Msg += " (line " + strconv.Itoa(line) + ")"
				fe.Line = line
			}
		}
		return nil, err
	}
	return routes, nil
}

// lineOf returns the line of field, or of its nearest parent written in
// the file (`retries: 9` has no line for routes[0].retries.attempts).
func lineOf(lines map[string]int, field string) int {
	for field != "" {
		if line := lines[field]; line > 0 {
			return line
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return 0
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

// file is routes.yaml as written. Its types are router's with the file's
// field names: the leaf structs convert to router's types directly (a
// field added there and not here fails to compile), and
// TestSchemaMirrorsRoute keeps route and upstream in step with
// router.Route and router.Upstream.
type file struct {
	Routes []route `yaml:"routes"`
}

type route struct {
	Name             string            `yaml:"name"`
	Match            match             `yaml:"match"`
	Upstream         upstream          `yaml:"upstream"`
	StripPrefix      bool              `yaml:"strip_prefix"`
	Timeout          time.Duration     `yaml:"timeout"`
	Retries          *retries          `yaml:"retries"`
	RateLimit        *rateLimit        `yaml:"rate_limit"`
	CircuitBreaker   *circuitBreaker   `yaml:"circuit_breaker"`
	OutlierDetection *outlierDetection `yaml:"outlier_detection"`
	HealthCheck      *healthCheck      `yaml:"health_check"`
}

type match struct {
	Hosts      []string          `yaml:"hosts"`
	PathPrefix string            `yaml:"path_prefix"`
	Methods    []string          `yaml:"methods"`
	Headers    map[string]string `yaml:"headers"`
}

type upstream struct {
	Service  string          `yaml:"service"`
	Static   []string        `yaml:"static"`
	Balancer router.Balancer `yaml:"balancer"`
	Weights  map[string]int  `yaml:"weights"`
	Subsets  []subset        `yaml:"subsets"`
	Sticky   *sticky         `yaml:"sticky"`
	Force    *force          `yaml:"force"`
}

type subset struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
	Weight int               `yaml:"weight"`
}

type sticky struct {
	Header   string `yaml:"header"`
	Cookie   string `yaml:"cookie"`
	ClientIP bool   `yaml:"client_ip"`
}

type force struct {
	Header string `yaml:"header"`
	Cookie string `yaml:"cookie"`
}

type rateLimit struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
	Key   string  `yaml:"key"`
	Scope string  `yaml:"scope"`
}

type circuitBreaker struct {
	ConsecutiveFailures int           `yaml:"consecutive_failures"`
	OpenFor             time.Duration `yaml:"open_for"`
	HalfOpenRequests    int           `yaml:"half_open_requests"`
}

// retries is `retries: N` (the attempts) or a mapping of every field.
type retries struct {
	Attempts      int              `yaml:"attempts"`
	PerTryTimeout time.Duration    `yaml:"per_try_timeout"`
	On            []router.RetryOn `yaml:"on"` // status codes may be integers: any scalar is a string
	Backoff       *backoff         `yaml:"backoff"`
	NonIdempotent bool             `yaml:"non_idempotent"`
	Budget        *retryBudget     `yaml:"budget"`
}

// scalarType tells the schema check that a scalar retries is an integer.
func (*retries) scalarType() reflect.Type { return reflect.TypeOf(0) }

// UnmarshalYAML decodes `retries: N` as the attempts, a mapping field by field.
func (r *retries) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&r.Attempts)
	}
	type plain retries
	return n.Decode((*plain)(r))
}

type backoff struct {
	Base time.Duration `yaml:"base"`
	Max  time.Duration `yaml:"max"`
}

type retryBudget struct {
	Percent        float64 `yaml:"percent"`
	MinConcurrency int     `yaml:"min_concurrency"`
}

type outlierDetection struct {
	Consecutive5xx     int           `yaml:"consecutive_5xx"`
	BaseEjectionTime   time.Duration `yaml:"base_ejection_time"`
	MaxEjectionTime    time.Duration `yaml:"max_ejection_time"`
	MaxEjectionPercent *int          `yaml:"max_ejection_percent"`
	PanicThreshold     *int          `yaml:"panic_threshold"`
}

type healthCheck struct {
	Path               string        `yaml:"path"`
	Interval           time.Duration `yaml:"interval"`
	Timeout            time.Duration `yaml:"timeout"`
	HealthyThreshold   int           `yaml:"healthy_threshold"`
	UnhealthyThreshold int           `yaml:"unhealthy_threshold"`
}

func (r route) route() router.Route {
	return router.Route{
		Name:             r.Name,
		Match:            router.Match(r.Match),
		Upstream:         r.Upstream.upstream(),
		StripPrefix:      r.StripPrefix,
		Timeout:          r.Timeout,
		Retries:          r.Retries.policy(),
		RateLimit:        (*router.RateLimit)(r.RateLimit),
		CircuitBreaker:   (*router.CircuitBreaker)(r.CircuitBreaker),
		OutlierDetection: (*router.OutlierDetection)(r.OutlierDetection),
		HealthCheck:      (*router.HealthCheck)(r.HealthCheck),
	}
}

func (u upstream) upstream() router.Upstream {
	out := router.Upstream{
		Service: u.Service, Static: u.Static, Balancer: u.Balancer, Weights: u.Weights,
		Sticky: (*router.Sticky)(u.Sticky), Force: (*router.Force)(u.Force),
	}
	for _, s := range u.Subsets {
		out.Subsets = append(out.Subsets, router.Subset(s))
	}
	return out
}

func (r *retries) policy() *router.RetryPolicy {
	if r == nil {
		return nil
	}
	return &router.RetryPolicy{
		Attempts: r.Attempts, PerTryTimeout: r.PerTryTimeout, On: r.On,
		Backoff: (*router.Backoff)(r.Backoff), NonIdempotent: r.NonIdempotent,
		Budget: (*router.RetryBudget)(r.Budget),
	}
}
