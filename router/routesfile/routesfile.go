package routesfile

import (
	"context"
	"errors"
	"strconv"
	"time"

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
			if line := lines[fe.Field]; line > 0 {
				fe.Msg += " (line " + strconv.Itoa(line) + ")"
				fe.Line = line
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

// file is routes.yaml as written. Its types are router's with the file's
// field names: the leaf structs convert to router's types directly (a
// field added there and not here fails to compile), and
// TestSchemaMirrorsRoute keeps route in step with router.Route.
type file struct {
	Routes []route `yaml:"routes"`
}

type route struct {
	Name           string          `yaml:"name"`
	Match          match           `yaml:"match"`
	Upstream       upstream        `yaml:"upstream"`
	StripPrefix    bool            `yaml:"strip_prefix"`
	Timeout        time.Duration   `yaml:"timeout"`
	Retries        int             `yaml:"retries"`
	RateLimit      *rateLimit      `yaml:"rate_limit"`
	CircuitBreaker *circuitBreaker `yaml:"circuit_breaker"`
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

func (r route) route() router.Route {
	return router.Route{
		Name:           r.Name,
		Match:          router.Match(r.Match),
		Upstream:       router.Upstream(r.Upstream),
		StripPrefix:    r.StripPrefix,
		Timeout:        r.Timeout,
		Retries:        r.Retries,
		RateLimit:      (*router.RateLimit)(r.RateLimit),
		CircuitBreaker: (*router.CircuitBreaker)(r.CircuitBreaker),
	}
}
